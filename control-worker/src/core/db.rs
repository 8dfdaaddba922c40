//! The narrow SQL-level storage trait both backends implement (D1 in the Worker, rusqlite
//! natively), and the values and rows that cross it.
//!
//! One call of [`Db::query`] or [`Db::batch`] is one database round trip. A batch runs its
//! statements in order, atomically: all of them or none (D1's `batch()`, one SQLite
//! transaction). There is no `BEGIN`/`COMMIT`: D1 rejects them.

use thiserror::Error;

/// Largest integer that survives D1's trip through a JavaScript double.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Integer(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Integer(value as i64)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_string())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Value::Text(value.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map(Into::into).unwrap_or(Value::Null)
    }
}

/// One SQL text with its numbered parameters (`?1`, `?2`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<Value>,
}

impl Statement {
    pub fn new(sql: &'static str, params: Vec<Value>) -> Self {
        Statement { sql, params }
    }
}

/// One result row: column names with their values, in select order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub columns: Vec<(String, Value)>,
}

impl Row {
    pub fn get(&self, column: &str) -> Result<&Value, DbError> {
        self.columns
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, value)| value)
            .ok_or_else(|| DbError::Decode(format!("missing column {column}")))
    }

    pub fn opt_i64(&self, column: &str) -> Result<Option<i64>, DbError> {
        match self.get(column)? {
            Value::Null => Ok(None),
            Value::Integer(value) => Ok(Some(*value)),
            // D1 hands every number over as a double; whole ones are integers.
            Value::Real(value) if value.fract() == 0.0 && value.abs() <= MAX_SAFE_INTEGER as f64 => Ok(Some(*value as i64)),
            other => Err(DbError::Decode(format!("column {column}: expected integer, got {other:?}"))),
        }
    }

    pub fn i64(&self, column: &str) -> Result<i64, DbError> {
        self.opt_i64(column)?.ok_or_else(|| DbError::Decode(format!("column {column} is null")))
    }

    pub fn opt_text(&self, column: &str) -> Result<Option<String>, DbError> {
        match self.get(column)? {
            Value::Null => Ok(None),
            Value::Text(value) => Ok(Some(value.clone())),
            other => Err(DbError::Decode(format!("column {column}: expected text, got {other:?}"))),
        }
    }

    pub fn text(&self, column: &str) -> Result<String, DbError> {
        self.opt_text(column)?.ok_or_else(|| DbError::Decode(format!("column {column} is null")))
    }
}

#[derive(Debug, Error)]
pub enum DbError {
    /// The database refused or failed the statement. The text is for logs only.
    #[error("database error: {0}")]
    Backend(String),
    /// A row did not have the shape the core expects.
    #[error("row decode error: {0}")]
    Decode(String),
    /// A parameter cannot be represented by the backend (e.g. an integer beyond ±2^53 on D1).
    #[error("parameter out of range: {0}")]
    Parameter(String),
}

/// SQL-level storage. Implementations are thin: no business rule lives in them.
///
/// The futures are not `Send`: D1's JavaScript handles are not, and the native server runs the
/// core on one thread per connection to SQLite.
#[allow(async_fn_in_trait)]
pub trait Db {
    /// Runs one statement; returns its rows (`RETURNING` rows for writes, none otherwise).
    async fn query(&self, statement: Statement) -> Result<Vec<Row>, DbError>;

    /// Runs statements in order as one atomic unit; returns each statement's rows.
    async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<Vec<Row>>, DbError>;
}

impl<T: Db + ?Sized> Db for &T {
    async fn query(&self, statement: Statement) -> Result<Vec<Row>, DbError> {
        (**self).query(statement).await
    }

    async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<Vec<Row>>, DbError> {
        (**self).batch(statements).await
    }
}

/// Wraps a `Db` and counts its round trips (one per `query` or `batch`): the benchmark and the
/// round-trip test use it to hold the hot routes to one round trip each.
pub struct CountingDb<D> {
    pub inner: D,
    round_trips: std::cell::Cell<u64>,
    /// Every statement run since the last reset, in order (for query-plan checks).
    statements: std::cell::RefCell<Vec<Statement>>,
}

impl<D> CountingDb<D> {
    pub fn new(inner: D) -> Self {
        CountingDb { inner, round_trips: std::cell::Cell::new(0), statements: Default::default() }
    }

    pub fn round_trips(&self) -> u64 {
        self.round_trips.get()
    }

    pub fn reset(&self) {
        self.round_trips.set(0);
        self.statements.borrow_mut().clear();
    }

    /// The statements run since the last reset.
    pub fn statements(&self) -> Vec<Statement> {
        self.statements.borrow().clone()
    }
}

impl<D: Db> Db for CountingDb<D> {
    async fn query(&self, statement: Statement) -> Result<Vec<Row>, DbError> {
        self.round_trips.set(self.round_trips.get() + 1);
        self.statements.borrow_mut().push(statement.clone());
        self.inner.query(statement).await
    }

    async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<Vec<Row>>, DbError> {
        self.round_trips.set(self.round_trips.get() + 1);
        self.statements.borrow_mut().extend(statements.iter().cloned());
        self.inner.batch(statements).await
    }
}
