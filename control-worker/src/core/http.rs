//! Transport-neutral request and response values, the JSON envelope, request ids and CORS.

use serde::Serialize;
use serde_json::{json, Value};

use super::config::Config;
use super::error::ApiError;

#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The raw query string without `?` (empty when none).
    pub query: String,
    /// Header names in any case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    /// A call of `path` (with its query string, if any) with a bearer `token` and a JSON body,
    /// as an in-process caller (a test, a benchmark, an in-memory control plane) makes it.
    pub fn json(method: &str, path: &str, token: &str, body: Option<&serde_json::Value>) -> ApiRequest {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        ApiRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: vec![("authorization".into(), format!("Bearer {token}")), ("content-type".into(), "application/json".into())],
            body: body.map(|body| body.to_string().into_bytes()).unwrap_or_default(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

#[derive(Debug, Clone, Default)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What the adapter should log about a fault (never sent): set on 500 answers.
    pub log_note: Option<String>,
    /// The request id this response carries, for the adapter's access log.
    pub request_id: String,
}

impl ApiResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn text(status: u16, body: &str, request_id: &str) -> Self {
        ApiResponse {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into()), ("x-request-id".into(), request_id.into())],
            body: body.as_bytes().to_vec(),
            log_note: None,
            request_id: request_id.into(),
        }
    }

    /// A body of any type (an HTML page, Prometheus text), never cached.
    pub fn content(status: u16, content_type: &str, body: Vec<u8>, request_id: &str) -> Self {
        ApiResponse {
            status,
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("x-request-id".into(), request_id.into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body,
            log_note: None,
            request_id: request_id.into(),
        }
    }

    pub fn success(status: u16, request_id: &str, data: &impl Serialize) -> Self {
        match serde_json::to_value(data) {
            Ok(data) => Self::json(status, request_id, &json!({"ok": true, "request_id": request_id, "data": data})),
            Err(error) => Self::failure(request_id, ApiError::internal(format!("serialising response: {error}"))),
        }
    }

    pub fn failure(request_id: &str, error: ApiError) -> Self {
        let envelope = json!({
            "ok": false,
            "request_id": request_id,
            "error": error.code.as_str(),
            "message": error.message,
            "details": Value::Object(error.details),
        });
        let mut response = Self::json(error.status.unwrap_or(error.code.http_status()), request_id, &envelope);
        if let Some(allow) = error.allow {
            response.headers.push(("allow".into(), allow));
        }
        response.log_note = error.internal;
        response
    }

    fn json(status: u16, request_id: &str, value: &Value) -> Self {
        ApiResponse {
            status,
            headers: vec![
                ("content-type".into(), "application/json; charset=utf-8".into()),
                ("x-request-id".into(), request_id.into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: serde_json::to_vec(value).unwrap_or_default(),
            log_note: None,
            request_id: request_id.into(),
        }
    }
}

pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The caller's `x-request-id` with anything but `[A-Za-z0-9._:-]` removed and capped at
/// 128 characters; `None` when nothing usable is left.
pub fn sanitize_request_id(raw: &str) -> Option<String> {
    let clean: String =
        raw.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')).take(MAX_REQUEST_ID_LEN).collect();
    (!clean.is_empty()).then_some(clean)
}

pub const CORS_ALLOWED_HEADERS: &str = "authorization, content-type, x-request-id, idempotency-key";

/// CORS headers for a request from `origin`, or none when the origin is not on the list.
pub fn cors_headers(config: &Config, origin: Option<&str>) -> Vec<(String, String)> {
    let Some(origin) = origin else { return Vec::new() };
    let origin = origin.trim_end_matches('/');
    if !config.allowed_origins.iter().any(|allowed| allowed == origin) {
        return Vec::new();
    }
    vec![
        ("access-control-allow-origin".into(), origin.to_string()),
        ("access-control-expose-headers".into(), "x-request-id".into()),
        ("vary".into(), "Origin".into()),
    ]
}

/// The extra headers of a preflight answer for an allowed origin.
pub fn preflight_headers(allow_methods: &str) -> Vec<(String, String)> {
    vec![
        ("access-control-allow-methods".into(), allow_methods.to_string()),
        ("access-control-allow-headers".into(), CORS_ALLOWED_HEADERS.into()),
        ("access-control-max-age".into(), "600".into()),
    ]
}
