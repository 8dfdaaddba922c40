//! `agents.sync`: one round trip per tick carrying everything a host has to say and everything
//! it needs to hear (SPEC §14).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::*;
use crate::status::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LeaseIntent {
    pub wish: LeaseWish,
    pub ttl_sec: i64,
    #[serde(default)]
    pub preferred: bool,
    /// The term this node believes it leads in. The leader's writes of the sync (plans,
    /// reaping, claiming tasks) happen only when the lease, as renewed in the same batch, is
    /// this node's in this term; a release names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<i64>,
}

/// One run this host holds: a step heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct RunBeat {
    pub step_id: String,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_commit: Option<String>,
}

/// A finished run that succeeded: what `steps.complete` carries, with its step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct RunCompletion {
    pub step_id: String,
    pub run_id: String,
    pub summary: String,
    pub exit_code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_result: Option<TaskResult>,
    /// What the coding agent wrote in its report file (SPEC §12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<AgentReport>,
    /// What the coding agent wrote in its usage file (SPEC §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// A finished run that failed: what `steps.fail` carries, with its step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct RunFailure {
    pub step_id: String,
    pub run_id: String,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub needs_human: bool,
    #[serde(default)]
    pub timed_out: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_result: Option<TaskResult>,
    /// What the coding agent wrote in its report file (SPEC §12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<AgentReport>,
    /// The coding agent hit its account's usage limit (SPEC §13): the step waits, no attempt spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaHit>,
    /// What the coding agent wrote in its usage file (SPEC §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// What a coding agent says one run cost, from its `{usage_file}` (any of the fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct Usage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The coding CLI's session (SPEC §16), kept with the run: a later round resumes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The preset that ran (`codex`, `claude`, `gemini`, `aider`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// A task's usage: its runs' usage files summed (`tasks.read`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct UsageTotal {
    /// Runs that recorded a usage file.
    pub runs: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub models: Vec<String>,
}

impl UsageTotal {
    /// The sum of `usages`; `None` when no run recorded any.
    pub fn of<'a>(usages: impl IntoIterator<Item = &'a Usage>) -> Option<UsageTotal> {
        let mut total = UsageTotal::default();
        for usage in usages {
            total.runs += 1;
            total.input_tokens += usage.input_tokens.unwrap_or(0);
            total.output_tokens += usage.output_tokens.unwrap_or(0);
            total.cost_usd += usage.cost_usd.unwrap_or(0.0);
            if let Some(model) = usage.model.as_ref().filter(|model| !total.models.contains(model)) {
                total.models.push(model.clone());
            }
        }
        (total.runs > 0).then_some(total)
    }
}

/// A usage limit a coding agent ran into, as its host read it from the agent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct QuotaHit {
    /// The agent's account (`BAA_AGENT_ACCOUNT` of the host, by default the host).
    pub account: String,
    /// When the limit resets (unix seconds), if the message said; otherwise the control plane
    /// waits 15 min, then 1 h, then 4 h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resets_at: Option<i64>,
    /// The agent's line that said so.
    pub message: String,
}

/// Log chunks of one run: what `steps.logs` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct RunLogs {
    pub step_id: String,
    pub run_id: String,
    pub chunks: Vec<LogChunkUpload>,
}

/// One checkpoint of one run: what `steps.checkpoint` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct RunCheckpoint {
    pub step_id: String,
    pub run_id: String,
    pub seq: i64,
    pub checkpoint_type: CheckpointType,
    pub format: CheckpointFormat,
    pub content: String,
    pub size: i64,
    pub sha256: String,
}

/// The leader's plan of a task it claimed: what `tasks.plan` carries, with its task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskPlan {
    pub task_id: String,
    pub planner_provider: String,
    pub planning_strategy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_name: Option<String>,
    pub steps: Vec<PlannedStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AgentSyncRequest {
    /// The node: its controller id and its worker id. A node-bound token fills it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    pub host: String,
    pub role: ControllerRole,
    pub priority: i64,
    /// What the node says of itself (`leader`, `standby`, `degraded`).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    pub lease: LeaseIntent,
    /// Steps this host can start now (0 to 32); 0 asks for none.
    #[serde(default)]
    pub capacity: i64,
    #[serde(default)]
    pub worker_kinds: Vec<String>,
    /// Free disk is below the host's minimum: it starts nothing.
    #[serde(default)]
    pub disk_low: bool,
    /// The account its coding agent runs under (SPEC §13): while it is parked by a usage
    /// limit, the host is granted no agent step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The coding CLI this host drives and its version (`codex: codex-cli 0.171.0`), or why it
    /// has none (`codex: not available`); kept in the controller's metadata (SPEC §16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_cli: Option<String>,
    /// How this host runs repository code (SPEC §19): `landlock: proven`, `off`, or why its
    /// sandbox is not proven; kept in the controller's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ttl_sec: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunBeat>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completions: Vec<RunCompletion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<RunFailure>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<RunLogs>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<RunCheckpoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<TaskPlan>,
    /// The host has more output waiting than it sent in this sync.
    #[serde(default)]
    pub more_output: bool,
    /// The leader's notifier (SPEC §13): send the events after this id (only with a term).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_after: Option<i64>,
    /// The leader's notifier delivered every event up to this id (fenced by the term).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_delivered: Option<i64>,
    /// How long the answer may be held (0 to 25,000 ms; 0, the default, never): a standby with
    /// nothing else to do is answered as soon as the lease changes hands, or after the pace.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hold_ms: i64,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ItemVerdict {
    /// The run id, or the task id for a plan.
    pub id: String,
    pub verdict: Verdict,
    /// A run heartbeat: the step was canceled; stop the process and report the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canceled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_status: Option<StepStatus>,
    /// A log upload: chunks stored now, and chunks already stored before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicates: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<crate::ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ItemVerdict {
    pub fn new(id: &str, verdict: Verdict) -> ItemVerdict {
        ItemVerdict {
            id: id.to_string(),
            verdict,
            canceled: false,
            step_status: None,
            accepted: None,
            duplicates: None,
            code: None,
            message: None,
        }
    }
}

/// The lease as this sync left it, for the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LeaseDecision {
    pub is_leader: bool,
    pub operation: LeaseOperation,
    pub term: i64,
    pub holder_id: Option<String>,
    pub holder_host: Option<String>,
    pub lease_expires_at: i64,
    pub renewed_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct AgentSyncResponse {
    pub node_id: String,
    pub lease: LeaseDecision,
    pub mode: SystemMode,
    /// Accounts parked by a usage limit (SPEC §13), soonest reset first.
    #[serde(default)]
    pub parked_accounts: Vec<ParkedAccount>,
    /// With `events_after`: the next events of the feed (at most 20), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<FeedEvent>,
    /// The last event any leader's notifier delivered.
    #[serde(default)]
    pub notified_through: i64,
    /// Steps this host is to start now.
    pub granted: Vec<ClaimedStep>,
    /// One verdict per item sent, in the order sent.
    pub runs: Vec<ItemVerdict>,
    pub completions: Vec<ItemVerdict>,
    pub failures: Vec<ItemVerdict>,
    pub logs: Vec<ItemVerdict>,
    pub checkpoints: Vec<ItemVerdict>,
    pub plans: Vec<ItemVerdict>,
    pub leader_writes: LeaderWrites,
    /// Tasks the leader claimed in this sync: plan them and send the plans with the next sync.
    pub claimed_tasks: Vec<Task>,
    /// What the leader's reaping did in this sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaped: Option<StepsReaped>,
    /// Statements the sync ran in its one batch.
    pub statements: usize,
    /// When to sync next, chosen by the control plane: soon when it has work for this host or
    /// the host has output waiting, just after the lease's expiry for a standby, else the idle
    /// interval.
    pub next_sync_ms: i64,
}
