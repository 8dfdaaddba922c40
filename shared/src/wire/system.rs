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
