//! The fleet: pause, resume, drain, and the system state.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::*;
use crate::status::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ModeChange {
    pub change_id: i64,
    pub mode: SystemMode,
    pub previous_mode: SystemMode,
    pub requested_by: String,
    pub reason: Option<String>,
    /// The role of the token that made the change.
    pub principal: String,
    pub request_id: String,
    pub changed_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SystemChanged {
    pub accepted: bool,
    pub status: String,
    pub summary: String,
    pub mode: SystemMode,
    pub change: ModeChange,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct SystemState {
    pub mode: SystemMode,
    pub holder_id: Option<String>,
    pub holder_host: Option<String>,
    pub term: i64,
    pub lease_expires_at: Option<i64>,
    /// A holder is set and its lease has not expired.
    pub leader_live: bool,
    pub controllers: Vec<Controller>,
    pub live_controllers: Vec<String>,
    pub task_counts: Map<String, Value>,
    pub step_counts: Map<String, Value>,
    /// Draining, and no task is planning or running and no step is claimed or running.
    pub drained: bool,
    pub recent_mode_changes: Vec<ModeChange>,
    pub version: String,
    pub now: i64,
    /// Accounts parked by a usage limit until their reset (SPEC §13).
    #[serde(default)]
    pub parked_accounts: Vec<ParkedAccount>,
}

/// A coding agent's account parked by a usage limit: no host claims agent steps for it until
/// `parked_until` (or `accounts.resume`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ParkedAccount {
    pub account: String,
    pub parked_until: i64,
    /// The agent's limit message.
    pub message: String,
    pub parked_at: i64,
    /// The host whose agent hit the limit.
    pub parked_by: String,
}

/// `accounts.resume`: the account, no longer parked, and the steps made ready again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AccountResumed {
    pub account: String,
    pub resumed_steps: Vec<String>,
}

/// One entry of the event feed (SPEC §13): what happened, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct FeedEvent {
    pub event_id: i64,
    /// `task_created`, `task_started`, `round_started`, `task_succeeded`, `task_failed`,
    /// `task_blocked`, `task_review`, `task_canceled`, `host_lost`, `host_back`, `account_parked`,
    /// `account_resumed`, `mode_changed`.
    pub kind: String,
    pub task_id: Option<String>,
    /// What it is about: the task's title, the account, the mode.
    pub subject: String,
    pub message: String,
    pub created_at: i64,
}

impl FeedEvent {
    /// One line for people (a chat message): `task_failed · Fix the parser: failed: step 1 …`.
    pub fn text(&self) -> String {
        format!("{} · {}: {}", self.kind, self.subject, self.message)
    }
}

/// `events.list`: the events after a cursor, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct EventPage {
    pub events: Vec<FeedEvent>,
    /// The `after` to ask with next (the last event's id, or the one given).
    pub next_after: i64,
}

/// What one bounded slice of storage upkeep did (SPEC §17): `system.maintain`, and each run
/// of the Worker's Cron Trigger or the native timer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct MaintenanceReport {
    /// Finished runs whose output and large checkpoints moved to object storage.
    pub compacted_runs: Vec<String>,
    /// Log and checkpoint objects written (and verified).
    pub objects_written: i64,
    /// Bytes of log text and checkpoint content moved out of the database.
    pub bytes_moved: i64,
    /// Compressed bytes those objects hold.
    pub object_bytes: i64,
    /// Log chunk rows deleted once their object was verified.
    pub log_rows_deleted: i64,
    /// Runs whose output passed the log retention and was deleted.
    pub expired_runs: Vec<String>,
    pub objects_deleted: i64,
    /// Events of the feed older than the event retention, deleted.
    pub events_deleted: i64,
    /// Database round trips and object-storage operations this slice made (bounded per slice).
    pub db_queries: i64,
    pub blob_operations: i64,
    /// Work remains that did not fit in this slice: run another.
    pub more: bool,
    pub log_retention_days: i64,
    pub event_retention_days: i64,
}

impl MaintenanceReport {
    /// Whether the slice changed anything (an operator's log shows only those).
    pub fn did_something(&self) -> bool {
        !self.compacted_runs.is_empty() || !self.expired_runs.is_empty() || self.events_deleted > 0
    }

    /// One line for an operator's log: what the slice did and what it cost.
    pub fn summary(&self) -> String {
        format!(
            "storage upkeep: {} runs compacted ({} bytes into {} objects of {} bytes), {} runs expired, {} events deleted; \
             {} database queries, {} object operations{}",
            self.compacted_runs.len(),
            self.bytes_moved,
            self.objects_written,
            self.object_bytes,
            self.expired_runs.len(),
            self.events_deleted,
            self.db_queries,
            self.blob_operations,
            if self.more { "; more remains" } else { "" }
        )
    }
}
