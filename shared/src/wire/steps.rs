//! Steps and runs: claim, heartbeat, logs, checkpoints, complete, fail, reap.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::*;
use crate::status::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Step {
    pub step_id: String,
    pub task_id: String,
    pub step_index: i64,
    pub step_kind: StepKind,
    pub worker_kind: String,
    pub title: String,
    pub command: Option<String>,
    pub prompt: Option<String>,
    pub timeout_sec: i64,
    pub status: StepStatus,
    pub attempt: i64,
    pub max_attempts: i64,
    pub target_host: Option<String>,
    pub worker_id: Option<String>,
    pub current_run_id: Option<String>,
    pub heartbeat_deadline_at: Option<i64>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub exit_code: Option<i64>,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub metadata: Map<String, Value>,
    /// The agent round the step belongs to (SPEC §13): 1 for the plan's steps; a failed
    /// acceptance step of a `codex` task with rounds left adds the next round's.
    #[serde(default = "first_round")]
    pub round: i64,
    /// Why a ready step is not running yet (in `tasks.read`); `None` otherwise.
    #[serde(default)]
    pub waiting_reason: Option<WaitingReason>,
}

fn first_round() -> i64 {
    1
}

/// One branch a merge step merges: a dependency of its `integrate` task as it ended, in
/// `depends_on` order, set by the control plane when the task is planned (the step's
/// `metadata.merge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct MergeSource {
    pub task_id: String,
    #[serde(default)]
    pub key: Option<String>,
    pub branch: String,
    /// The dependency's `result.head_commit`: what is merged.
    #[serde(default)]
    pub head_commit: Option<String>,
    /// The host whose copy of the repository holds the branch.
    #[serde(default)]
    pub host: Option<String>,
    /// Where the dependency's delivery pushed the branch, if it did: how another host gets it.
    #[serde(default)]
    pub pushed_to: Option<String>,
}

impl MergeSource {
    /// How people know the dependency: its key, else its id.
    pub fn label(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.task_id)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Run {
    pub run_id: String,
    pub step_id: String,
    pub task_id: String,
    pub worker_id: String,
    pub host: String,
    pub attempt: i64,
    pub status: RunStatus,
    pub claimed_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub last_heartbeat_at: Option<i64>,
    pub exit_code: Option<i64>,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub result: Option<Value>,
    pub progress: Option<Value>,
    /// What the coding agent wrote in its usage file (SPEC §13).
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StepsClaimRequest {
    pub worker_id: String,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_kinds: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ttl_sec: Option<i64>,
    /// The host's coding-agent account: no agent step is claimed while it is parked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// One claimed step with everything a runner needs to start it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ClaimedStep {
    pub step: Step,
    pub run_id: String,
    pub attempt: i64,
    pub task: Task,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StepsClaimed {
    pub steps: Vec<ClaimedStep>,
    pub mode: SystemMode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StepHeartbeatRequest {
    pub worker_id: String,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ttl_sec: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Map<String, Value>>,
    /// The task's `base_ref` as this host resolved it: recorded once, on the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_commit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StepHeartbeatResponse {
    pub step_id: String,
    pub run_id: String,
    pub status: StepStatus,
    /// The step was canceled: the runner stops the process and reports the run.
    pub canceled: bool,
    pub heartbeat_deadline_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct CheckpointRequest {
    pub worker_id: String,
    pub run_id: String,
    pub seq: i64,
    pub checkpoint_type: CheckpointType,
    pub format: CheckpointFormat,
    pub content: String,
    pub size: i64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Checkpoint {
    pub run_id: String,
    pub step_id: String,
    pub task_id: String,
    pub seq: i64,
    pub checkpoint_type: CheckpointType,
    pub format: CheckpointFormat,
    /// Empty when `content_expired`.
    pub content: String,
    pub size: i64,
    pub sha256: String,
    pub created_at: i64,
    /// The content was moved to object storage and deleted there by log retention (SPEC §17).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub content_expired: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct CheckpointStored {
    pub run_id: String,
    pub seq: i64,
    /// False when the same checkpoint had already been stored (a retried upload).
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LogChunkUpload {
    pub seq: i64,
    pub stream: LogStream,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StepLogsRequest {
    pub worker_id: String,
    pub run_id: String,
    pub chunks: Vec<LogChunkUpload>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StepLogsStored {
    pub run_id: String,
    /// Chunks stored now.
    pub accepted: i64,
    /// Chunks whose `(run_id, seq)` was already stored and were skipped.
    pub duplicates: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StepCompleteRequest {
    pub worker_id: String,
    pub run_id: String,
    pub summary: String,
    pub exit_code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The task's branch after this step; merged into the task's `result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_result: Option<TaskResult>,
    /// What the coding agent wrote in its report file (SPEC §12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<AgentReport>,
    /// What the coding agent wrote in its usage file (SPEC §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StepFailRequest {
    pub worker_id: String,
    pub run_id: String,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default)]
    pub needs_human: bool,
    /// The runner killed the step for running past its `timeout_sec`.
    #[serde(default)]
    pub timed_out: bool,
    /// The task's branch after this attempt; merged into the task's `result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_result: Option<TaskResult>,
    /// What the coding agent wrote in its report file (SPEC §12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<AgentReport>,
    /// What the coding agent wrote in its usage file (SPEC §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The coding agent hit its account's usage limit (SPEC §13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaHit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StepSettled {
    pub step: Step,
    pub run: Run,
    pub task_status: TaskStatus,
    /// True when the step was put back to `ready` for another attempt.
    pub requeued: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StepsReapRequest {
    pub controller_id: String,
    pub term: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ReapedStep {
    pub step_id: String,
    pub run_id: Option<String>,
    pub requeued: bool,
    pub step_status: StepStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct StepsReaped {
    pub reaped: Vec<ReapedStep>,
    /// Tasks left in `planning` by a previous leader, put back to `queued`.
    pub requeued_tasks: Vec<String>,
    /// Tasks whose assigned host was lost, started over on any host.
    #[serde(default)]
    pub restarted_tasks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LogChunk {
    pub cursor: i64,
    pub task_id: String,
    pub step_id: String,
    pub run_id: String,
    pub seq: i64,
    pub stream: LogStream,
    pub text: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LogPage {
    pub chunks: Vec<LogChunk>,
    /// Pass as `after` to read on; the last chunk's cursor, or the `after` given when empty.
    pub next_cursor: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct RunDetail {
    pub run: Run,
    pub checkpoints: Vec<Checkpoint>,
}

/// One run as the fleet timeline draws it: a bar on its host's lane from claim (or start) to end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TimelineRun {
    pub run_id: String,
    pub task_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_key: Option<String>,
    pub task_title: String,
    pub step_id: String,
    pub step_kind: StepKind,
    pub step_title: String,
    pub round: i64,
    pub host: String,
    pub worker_id: String,
    pub attempt: i64,
    pub status: RunStatus,
    pub claimed_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `runs.list`: the runs that were live at some moment of `[since, until]`, oldest claim first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TimelinePage {
    pub since: i64,
    pub until: i64,
    pub runs: Vec<TimelineRun>,
    /// More runs than `limit` fall in the window: the newest are left out.
    pub truncated: bool,
}
