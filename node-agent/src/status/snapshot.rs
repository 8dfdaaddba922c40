//! The one typed status snapshot: what `/v1/status` serves as JSON, what the page and
//! `/metrics` render, and what `start --run-once` prints. The conductor and the runner each fill
//! their part; the status board puts them together.

use serde::Serialize;
use shared::status::{ControllerRole, LeaseOperation, SystemMode};

use crate::conductor::lease::LeaseStatus;
use crate::conductor::ChecklistEntry;
use crate::config::RuntimePaths;
use crate::runner::RunView;

#[derive(Debug, Clone, Serialize)]
pub struct StatusSnapshot {
    #[serde(flatten)]
    pub conductor: ConductorStatus,
    pub runner: RunnerStatus,
    /// Wall-clock milliseconds when the snapshot was taken.
    pub now_ms: i64,
    pub embedded: EmbeddedStatus,
}

/// The conductor's part: identity, lease, mode, its loops, the checklist, configuration facts.
#[derive(Debug, Clone, Serialize)]
pub struct ConductorStatus {
    pub node_id: String,
    pub host: String,
    pub role: ControllerRole,
    pub preferred: bool,
    pub lease: LeaseView,
    pub mode: Option<SystemMode>,
    /// Accounts parked by a usage limit (SPEC §13), as the last sync said.
    pub parked_accounts: Vec<shared::wire::ParkedAccount>,
    pub loops: Loops,
    pub checklist: Vec<ChecklistEntry>,
    pub paths: RuntimePaths,
    pub control_api_base: Option<String>,
    pub local_api: Option<String>,
    pub token_set: bool,
    /// The configuration's warnings, and the runner's (a full disk).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeaseView {
    pub state: LeaseStatus,
    pub leader_id: Option<String>,
    pub term: i64,
    pub lease_expires_at: Option<i64>,
    pub last_operation: Option<LeaseOperation>,
    pub consecutive_failures: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Loops {
    pub sync: SyncView,
    pub lease: LeaseLoopView,
    pub scheduler: SchedulerView,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncView {
    pub syncs: u64,
    pub last_ok_ms_ago: Option<u64>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// The pace the control plane asked for last.
    pub next_sync_ms: Option<i64>,
    /// Statements the last sync took in the control plane's batch.
    pub statements: usize,
    pub max_interval_ms: u64,
    pub retry_after_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LeaseLoopView {
    pub ttl_sec: i64,
    pub renew_failure_threshold: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SchedulerView {
    /// This node leads and schedules.
    pub active: bool,
    pub claimed: u64,
    pub planned: u64,
    pub pending_plans: usize,
    pub reaped: u64,
    pub granted: u64,
    pub last_error: Option<String>,
}

/// The runner's part: its room, its runs in flight and the recently finished ones.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunnerStatus {
    pub warnings: Vec<String>,
    pub disk_low: bool,
    pub min_free_disk_bytes: u64,
    pub capacity: usize,
    pub active: usize,
    /// Steps granted to this runner since it started.
    pub claimed_total: u64,
    pub worker_kinds: Vec<String>,
    pub agent_command_set: bool,
    /// The coding CLI this host drives (`--agent`) and its version, or why it has none.
    pub agent_cli: Option<String>,
    /// How steps run (SPEC §19): `landlock: proven (…)`, `off`, or why the sandbox is not proven.
    pub sandbox: String,
    pub runs: Vec<RunInFlight>,
    pub recent: Vec<RunView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInFlight {
    #[serde(flatten)]
    pub view: RunView,
    /// CPU time the run's process group has spent, measured when the snapshot was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
}

/// Facts fixed at start about the control plane this process serves, if any.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmbeddedStatus {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<std::path::PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_file: Option<std::path::PathBuf>,
}

#[cfg(test)]
pub mod sample {
    //! A snapshot to render in tests.
    use super::*;

    pub fn snapshot() -> StatusSnapshot {
        StatusSnapshot {
            conductor: ConductorStatus {
                node_id: "mini-main".into(),
                host: "mini".into(),
                role: ControllerRole::Primary,
                preferred: true,
                lease: LeaseView {
                    state: LeaseStatus::Leader,
                    leader_id: Some("mini-main".into()),
                    term: 3,
                    lease_expires_at: None,
                    last_operation: None,
                    consecutive_failures: 0,
                },
                mode: Some(SystemMode::Running),
                parked_accounts: Vec::new(),
                loops: Loops {
                    sync: SyncView::default(),
                    lease: LeaseLoopView { ttl_sec: 30, renew_failure_threshold: 2 },
                    scheduler: SchedulerView::default(),
                },
                checklist: Vec::new(),
                paths: RuntimePaths {
                    root: "/tmp/baa".into(),
                    runs: "/tmp/baa/runs".into(),
                    worktrees: "/tmp/baa/worktrees".into(),
                    logs: "/tmp/baa/logs".into(),
                    tmp: "/tmp/baa/tmp".into(),
                    state: "/tmp/baa/state".into(),
                },
                control_api_base: Some("http://127.0.0.1:8787".into()),
                local_api: None,
                token_set: true,
                warnings: Vec::new(),
            },
            runner: RunnerStatus { capacity: 1, ..RunnerStatus::default() },
            now_ms: 0,
            embedded: EmbeddedStatus::default(),
        }
    }
}
