//! Error codes of the error envelope and the HTTP status each one answers with.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidJson,
    MissingBearerToken,
    InvalidAuthorizationHeader,
    UnknownToken,
    Forbidden,
    RouteNotFound,
    TaskNotFound,
    StepNotFound,
    RunNotFound,
    MethodNotAllowed,
    Conflict,
    StaleTerm,
    NotLeader,
    InvalidTransition,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// A finished run's output deleted by the deployment's log retention (SPEC §17).
    LogsExpired,
    /// The native server's own refusals: a body slower than the minimum rate, too many
    /// headers, no room for another connection.
    RequestTimeout,
    RequestHeaderFieldsTooLarge,
    ServerBusy,
    AuthNotConfigured,
    RepositoryNotConfigured,
    InternalError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::MissingBearerToken => "missing_bearer_token",
            ErrorCode::InvalidAuthorizationHeader => "invalid_authorization_header",
            ErrorCode::UnknownToken => "unknown_token",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RouteNotFound => "route_not_found",
            ErrorCode::TaskNotFound => "task_not_found",
            ErrorCode::StepNotFound => "step_not_found",
            ErrorCode::RunNotFound => "run_not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::StaleTerm => "stale_term",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::LogsExpired => "logs_expired",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::RequestHeaderFieldsTooLarge => "request_header_fields_too_large",
            ErrorCode::ServerBusy => "server_busy",
            ErrorCode::AuthNotConfigured => "auth_not_configured",
            ErrorCode::RepositoryNotConfigured => "repository_not_configured",
            ErrorCode::InternalError => "internal_error",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest | ErrorCode::InvalidJson => 400,
            ErrorCode::MissingBearerToken | ErrorCode::InvalidAuthorizationHeader | ErrorCode::UnknownToken => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::RouteNotFound | ErrorCode::TaskNotFound | ErrorCode::StepNotFound | ErrorCode::RunNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict | ErrorCode::StaleTerm | ErrorCode::NotLeader | ErrorCode::InvalidTransition => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::LogsExpired => 410,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::RequestHeaderFieldsTooLarge => 431,
            ErrorCode::ServerBusy => 503,
            ErrorCode::AuthNotConfigured | ErrorCode::RepositoryNotConfigured => 503,
            ErrorCode::InternalError => 500,
        }
    }
}
