//! The real control plane in memory, for the drivers' tests: the same `Core` on SQLite in
//! memory, its clock following tokio's (paused, virtual) clock, called without a socket. It can
//! be cut off (every call unreachable) to play an outage.

use std::cell::Cell;

use control_worker::core::blobs::MemoryBlobs;
use control_worker::core::clock::{Clock, SeededRandom};
use control_worker::core::config::Config;
use control_worker::core::http::{ApiRequest, ApiResponse};
use control_worker::core::Core;
use control_worker::native::SqliteDb;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::wire::{AgentSyncRequest, AgentSyncResponse};
use tokio::time::Instant;

use crate::client::{ClientError, ControlPlane};

pub const SERVICE_TOKEN: &str = "memory-service-token";
pub const ADMIN_TOKEN: &str = "memory-admin-token";
/// The control plane's unix time when the test starts.
pub const START: i64 = 1_800_000_000;

/// The configuration of a test agent against the memory plane.
pub fn config(node_id: &str, role: &str, ttl_sec: u32) -> crate::config::AgentConfig {
    let raw = crate::cli::RawArgs {
        node_id: Some(node_id.into()),
        role: Some(role.into()),
        host: Some(if role == "primary" { "mini" } else { "mac" }.into()),
        control_api_base: Some("http://memory".into()),
        lease_ttl_sec: Some(ttl_sec.to_string()),
        lease_renew_interval_ms: Some("1000".into()),
        ..crate::cli::RawArgs::default()
    };
    crate::config::AgentConfig::resolve(&raw, |_| None).unwrap()
}

/// An agent starting with no runs directory to look at.
pub fn no_runs() -> crate::conductor::CountRuns {
    crate::conductor::CountRuns(std::path::PathBuf::from("/nonexistent/baa-runs"), 0)
}

/// The control plane's clock in these tests: tokio's (paused, virtual) clock from [`START`], in
/// whole seconds as in production; a held sync sleeps in virtual time.
pub struct TokioClock {
    started: Instant,
}

impl Clock for TokioClock {
    fn now(&self) -> i64 {
        START + (Instant::now() - self.started).as_secs() as i64
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await
    }
}

pub struct MemoryPlane {
    pub core: Core<SqliteDb, TokioClock, SeededRandom, MemoryBlobs>,
    /// When the control plane's clock read [`START`].
    pub started: Instant,
    down: Cell<bool>,
    /// Syncs that reached the control plane.
    pub syncs: Cell<u64>,
}

impl MemoryPlane {
    /// A fresh control plane with `settings` (`CONTROL_API_*` names) on top of the test tokens.
    pub fn new(settings: &[(&str, &str)]) -> MemoryPlane {
        let mut pairs = vec![("BAA_SHARED_TOKEN", SERVICE_TOKEN), ("CONTROL_API_BROWSER_ADMIN_TOKEN", ADMIN_TOKEN)];
        pairs.extend_from_slice(settings);
        let (config, _) = Config::from_pairs(&pairs).expect("test configuration");
        let db = SqliteDb::open_in_memory().expect("in-memory SQLite");
        let started = Instant::now();
        MemoryPlane {
            core: Core::new(db, MemoryBlobs::new(), TokioClock { started }, SeededRandom::new(7), config),
            started,
            down: Cell::new(false),
            syncs: Cell::new(0),
        }
    }

    pub fn set_down(&self, down: bool) {
        self.down.set(down);
    }

    /// Calls a route as `token`; the envelope's data, or its error.
    pub async fn call<T: DeserializeOwned>(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Result<T, ClientError> {
        let request = ApiRequest::json(method, path, token, body.as_ref());
        decode(&self.core.handle(request).await)
    }

    /// Creates a shell task; returns its id.
    pub async fn create_task(&self, title: &str) -> String {
        self.create_task_with(serde_json::json!({"title": title})).await
    }

    /// Creates a shell task with `fields` over the defaults; returns its id.
    pub async fn create_task_with(&self, fields: Value) -> String {
        let mut body = serde_json::json!({"repo": "/srv/repo", "task_type": "shell", "title": "task", "goal": "true"});
        for (key, value) in fields.as_object().into_iter().flatten() {
            body[key] = value.clone();
        }
        let created: Value = self.call("POST", "/v1/tasks", ADMIN_TOKEN, Some(body)).await.expect("task created");
        created["task_id"].as_str().unwrap().to_string()
    }

    pub async fn task(&self, task_id: &str) -> Value {
        self.call("GET", &format!("/v1/tasks/{task_id}"), ADMIN_TOKEN, None).await.expect("task read")
    }
}

/// An answer's envelope: its data, or its error, as the agent's client reads them.
pub fn decode<T: DeserializeOwned>(response: &ApiResponse) -> Result<T, ClientError> {
    let envelope: Value = serde_json::from_slice(&response.body).map_err(|error| ClientError::Decode(error.to_string()))?;
    if envelope["ok"] == Value::Bool(true) {
        return serde_json::from_value(envelope["data"].clone()).map_err(|error| ClientError::Decode(error.to_string()));
    }
    Err(ClientError::api(response.status, envelope["error"].as_str().unwrap_or(""), envelope["message"].as_str().unwrap_or("")))
}

impl ControlPlane for &MemoryPlane {
    async fn sync(&self, request: &AgentSyncRequest) -> Result<AgentSyncResponse, ClientError> {
        if self.down.get() {
            return Err(ClientError::Unreachable("connection refused".into()));
        }
        self.syncs.set(self.syncs.get() + 1);
        let body = serde_json::to_value(request).map_err(|error| ClientError::Decode(error.to_string()))?;
        self.call("POST", "/v1/agents/sync", SERVICE_TOKEN, Some(body)).await
    }
}
