//! The `Db` trait on D1. Numbers cross into JavaScript as doubles, so integers are checked to
//! stay within ±2^53; rows come back as objects and whole numbers become integers again.

use std::sync::atomic::{AtomicU64, Ordering};

use control_worker::core::db::{Db, DbError, Row, Statement, Value, MAX_SAFE_INTEGER};
use serde_json::{Map, Value as Json};
use worker::wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result};

pub struct D1Db {
    database: D1Database,
}

impl D1Db {
    pub fn new(database: D1Database) -> Self {
        D1Db { database }
    }

    fn prepare(&self, statement: &Statement) -> Result<D1PreparedStatement, DbError> {
        let params = statement.params.iter().map(to_js).collect::<Result<Vec<JsValue>, DbError>>()?;
        self.database.prepare(statement.sql).bind(&params).map_err(backend)
    }
}

fn backend(error: worker::Error) -> DbError {
    DbError::Backend(error.to_string())
}

fn to_js(value: &Value) -> Result<JsValue, DbError> {
    Ok(match value {
        Value::Null => JsValue::NULL,
        Value::Integer(number) if number.abs() > MAX_SAFE_INTEGER => {
            return Err(DbError::Parameter(format!("{number} is beyond ±2^53, which D1 cannot bind exactly")))
        }
        Value::Integer(number) => JsValue::from_f64(*number as f64),
        Value::Real(number) => JsValue::from_f64(*number),
        Value::Text(text) => JsValue::from_str(text),
    })
}

fn from_json(value: Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(flag) => Value::Integer(flag as i64),
        Json::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(integer), _) => Value::Integer(integer),
            (None, Some(real)) if real.fract() == 0.0 && real.abs() <= MAX_SAFE_INTEGER as f64 => Value::Integer(real as i64),
            (None, Some(real)) => Value::Real(real),
            (None, None) => Value::Null,
        },
        Json::String(text) => Value::Text(text),
        other => Value::Text(other.to_string()),
    }
}

/// D1's own count of rows read and written, summed over the statements run since the last
/// [`take_usage`] (what Cloudflare bills; read only by the opt-in usage headers of the glue).
static ROWS_READ: AtomicU64 = AtomicU64::new(0);
static ROWS_WRITTEN: AtomicU64 = AtomicU64::new(0);

/// `(rows read, rows written)` since the last call, as D1 reported them.
pub fn take_usage() -> (u64, u64) {
    (ROWS_READ.swap(0, Ordering::Relaxed), ROWS_WRITTEN.swap(0, Ordering::Relaxed))
}

fn rows(result: &D1Result) -> Result<Vec<Row>, DbError> {
    if let Some(error) = result.error() {
        return Err(DbError::Backend(error));
    }
    if let Ok(Some(meta)) = result.meta() {
        ROWS_READ.fetch_add(meta.rows_read.unwrap_or(0) as u64, Ordering::Relaxed);
        ROWS_WRITTEN.fetch_add(meta.rows_written.unwrap_or(0) as u64, Ordering::Relaxed);
    }
    let objects: Vec<Map<String, Json>> = result.results().map_err(backend)?;
    Ok(objects
        .into_iter()
        .map(|object| Row { columns: object.into_iter().map(|(name, value)| (name, from_json(value))).collect() })
        .collect())
}

impl Db for D1Db {
    async fn query(&self, statement: Statement) -> Result<Vec<Row>, DbError> {
        let prepared = self.prepare(&statement)?;
        rows(&prepared.all().await.map_err(backend)?)
    }

    async fn batch(&self, statements: Vec<Statement>) -> Result<Vec<Vec<Row>>, DbError> {
        let prepared = statements.iter().map(|statement| self.prepare(statement)).collect::<Result<Vec<_>, _>>()?;
        let results = self.database.batch(prepared).await.map_err(backend)?;
        results.iter().map(rows).collect()
    }
}
