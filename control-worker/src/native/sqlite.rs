//! The `Db` trait on rusqlite. One connection, used from one thread; SQLite itself serialises
//! writers across connections and processes, so several connections may share one file.

use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params_from_iter, Connection, TransactionBehavior};

use crate::core::db::{Db, DbError, Row, Statement, Value};

pub struct SqliteDb {
    connection: RefCell<Connection>,
}

fn backend(error: rusqlite::Error) -> DbError {
    DbError::Backend(error.to_string())
}

impl SqliteDb {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path) -> Result<SqliteDb, DbError> {
        let connection = Connection::open(path).map_err(backend)?;
        Self::configure(connection)
    }

    /// Rows inserted, updated or deleted through this connection since it opened.
    pub fn total_changes(&self) -> u64 {
        self.connection.borrow().total_changes()
    }

    pub fn open_in_memory() -> Result<SqliteDb, DbError> {
        Self::configure(Connection::open_in_memory().map_err(backend)?)
    }

    fn configure(mut connection: Connection) -> Result<SqliteDb, DbError> {
        // WAL lets readers go on while one writer writes; the busy timeout makes concurrent
        // writers (other connections, other processes) wait instead of failing.
        connection.busy_timeout(Duration::from_secs(10)).map_err(backend)?;
        connection.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
        connection.pragma_update(None, "synchronous", "NORMAL").map_err(backend)?;
        connection.set_prepared_statement_cache_capacity(128);
        super::migrate::apply(&mut connection)?;
        Ok(SqliteDb { connection: RefCell::new(connection) })
    }

    /// Runs a closure with the raw connection (migrations, schema dumps in tests).
    pub fn with_connection<T>(&self, action: impl FnOnce(&mut Connection) -> T) -> T {
        action(&mut self.connection.borrow_mut())
    }
}

fn to_sql(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Integer(number) => SqlValue::Integer(*number),
        Value::Real(number) => SqlValue::Real(*number),
        Value::Text(text) => SqlValue::Text(text.clone()),
    }
}

fn run_statement(connection: &Connection, statement: &Statement) -> Result<Vec<Row>, DbError> {
    let mut prepared = connection.prepare_cached(statement.sql).map_err(backend)?;
    let names: Vec<String> = prepared.column_names().iter().map(|name| name.to_string()).collect();
    let mut rows = prepared.query(params_from_iter(statement.params.iter().map(to_sql))).map_err(backend)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let mut columns = Vec::with_capacity(names.len());
        for (index, name) in names.iter().enumerate() {
            let value = match row.get_ref(index).map_err(backend)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(number) => Value::Integer(number),
                ValueRef::Real(number) => Value::Real(number),
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
            };
            columns.push((name.clone(), value));
        }
        out.push(Row { columns });
    }
    Ok(out)
}

impl Db for SqliteDb {
    async fn query(&self, statement: Statement) -> Result<Vec<Row>, DbError> {
        run_statement(&self.connection.borrow(), &statement)
    }

    async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<Vec<Row>>, DbError> {
        let mut connection = self.connection.borrow_mut();
        // IMMEDIATE takes the write lock up front: a deferred transaction that reads and then
        // writes can fail with SQLITE_BUSY without waiting when another connection writes.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
        let results = statements.iter().map(|statement| run_statement(&transaction, statement)).collect::<Result<Vec<_>, _>>()?;
        transaction.commit().map_err(backend)?;
        Ok(results)
    }
}
