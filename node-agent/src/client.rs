//! The Control API client: bearer token, envelope unwrap, typed errors, request ids, and
//! retries with backoff and jitter for idempotent calls only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use shared::wire::*;
use shared::ErrorCode;
use thiserror::Error;

use crate::config::Secret;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum ClientError {
    /// No answer: connection refused, timeout, broken connection.
    #[error("control plane unreachable: {0}")]
    Unreachable(String),
    /// An error envelope from the control plane; `code` is `None` for a code this agent does
    /// not know (a newer control plane), whose text is kept in `code_text`.
    #[error("{status} {code_text}: {message}")]
    Api { status: u16, code: Option<ErrorCode>, code_text: String, message: String },
    /// An answer that is not the expected JSON.
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl ClientError {
    /// Worth retrying an idempotent call: no answer, or the server failed.
    fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable(_) => true,
            ClientError::Api { status, .. } => *status >= 500,
            ClientError::Decode(_) => false,
        }
    }

    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// An envelope's error, as the control plane sent it.
    pub fn api(status: u16, code_text: &str, message: &str) -> ClientError {
        let code = serde_json::from_value(Value::String(code_text.to_string())).ok();
        ClientError::Api { status, code, code_text: code_text.to_string(), message: message.to_string() }
    }
}

/// The conductor's one call: `agents.sync`. A trait so the drivers can be tested against an
/// in-memory control plane under a paused clock.
#[allow(async_fn_in_trait)]
pub trait ControlPlane {
    async fn sync(&self, request: &AgentSyncRequest) -> Result<AgentSyncResponse, ClientError>;
}

pub struct ControlClient {
    http: reqwest::Client,
    base: String,
    token: Option<Secret>,
    node_id: String,
    sequence: AtomicU64,
}

const ATTEMPTS_FOR_IDEMPOTENT_CALLS: u32 = 3;

impl ControlClient {
    /// `timeout` bounds each request; keep it under the lease renew interval.
    pub fn new(base: &str, token: Option<Secret>, node_id: &str, timeout: Duration) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(2)
            .user_agent(concat!("baa-node-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ClientError::Unreachable(error.to_string()))?;
        Ok(ControlClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            node_id: node_id.to_string(),
            sequence: AtomicU64::new(0),
        })
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B, idempotent: bool) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|error| ClientError::Decode(error.to_string()))?;
        let attempts = if idempotent { ATTEMPTS_FOR_IDEMPOTENT_CALLS } else { 1 };
        let mut last_error = ClientError::Unreachable("no attempt".into());
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt, self.sequence.load(Ordering::Relaxed))).await;
            }
            match self.send(path, &body).await {
                Ok(value) => return serde_json::from_value(value).map_err(|error| ClientError::Decode(format!("{path}: {error}"))),
                Err(error) if error.is_transient() => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    async fn send(&self, path: &str, body: &[u8]) -> Result<Value, ClientError> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .header("x-request-id", format!("{}-{sequence}", self.node_id))
            .body(body.to_vec());
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        // The error text of reqwest names the URL, never headers: no token can leak from here.
        let response = request.send().await.map_err(|error| ClientError::Unreachable(error.without_url().to_string()))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|error| ClientError::Unreachable(error.without_url().to_string()))?;
        let envelope: Value =
            serde_json::from_slice(&bytes).map_err(|_| ClientError::Decode(format!("{path}: status {status}, not a JSON envelope")))?;
        if envelope["ok"] == Value::Bool(true) {
            return Ok(envelope["data"].clone());
        }
        Err(ClientError::api(status, envelope["error"].as_str().unwrap_or("unknown"), envelope["message"].as_str().unwrap_or("")))
    }
}

/// 100 ms, 200 ms, 400 ms … plus up to 50 % jitter, so agents that failed together do not
/// retry together.
fn backoff(attempt: u32, salt: u64) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let base = 100u64 << attempt.min(6);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(salt ^ attempt as u64);
    Duration::from_millis(base + hasher.finish() % (base / 2 + 1))
}

impl ControlPlane for ControlClient {
    // Not retried here: the conductor decides what a failed sync means (the lease machine
    // counts it), and a sync repeated later carries the same items again.
    async fn sync(&self, request: &AgentSyncRequest) -> Result<AgentSyncResponse, ClientError> {
        self.post("/v1/agents/sync", request, false).await
    }
}
