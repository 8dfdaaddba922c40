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
