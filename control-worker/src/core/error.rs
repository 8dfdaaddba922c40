//! The one error type of the core; every variant of [`ErrorCode`] maps to its status.

use serde_json::{Map, Value};
use shared::ErrorCode;

use super::db::DbError;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Map<String, Value>,
    /// For 405: the methods the path has.
    pub allow: Option<String>,
    /// For 500: what went wrong, for the server log only; never sent to the caller.
    pub internal: Option<String>,
    /// A status other than the code's own (a malformed Authorization header is 400, not 401).
    pub status: Option<u16>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), details: Map::new(), allow: None, internal: None, status: None }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// A validation error: `field` broke `rule` (e.g. "must be a non-empty string").
    pub fn invalid_field(field: &str, rule: &str) -> Self {
        ApiError::new(ErrorCode::InvalidRequest, format!("{field} {rule}")).with_field(field).with_detail("rule", rule)
    }

    /// A field the request may not carry: "unknown field base_ref; did you mean constraints.base_ref?".
    pub fn unknown_field(field: &str, rule: &str) -> Self {
        let explanation = rule.strip_prefix("unknown field").unwrap_or(rule);
        ApiError::new(ErrorCode::InvalidRequest, format!("unknown field {field}{explanation}")).with_field(field).with_detail("rule", rule)
    }

    pub fn with_field(self, field: &str) -> Self {
        self.with_detail("field", field)
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Conflict, message)
    }

    pub fn invalid_transition(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidTransition, message)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        let mut error = ApiError::new(ErrorCode::InternalError, "an unexpected error occurred; see the server log for this request id");
        error.internal = Some(detail.into());
        error
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        ApiError::internal(error.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<super::blobs::BlobError> for ApiError {
    fn from(error: super::blobs::BlobError) -> Self {
        ApiError::internal(error.to_string())
    }
}

impl From<super::log_object::ObjectFormatError> for ApiError {
    fn from(error: super::log_object::ObjectFormatError) -> Self {
        ApiError::internal(error.to_string())
    }
}
