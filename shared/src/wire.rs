//! Request and response bodies of the Control API.
//!
//! Responses are wrapped in the envelope `{ok, request_id, data}` / `{ok, request_id, error,
//! message, details}`; the types here are what `data` holds, and the request bodies a client
//! sends. Times are integer unix seconds.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::status::*;

/// An error envelope as it travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub ok: bool,
    pub request_id: String,
    pub error: String,
    pub message: String,
    pub details: Map<String, Value>,
}

// ---------------------------------------------------------------- controllers and lease

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerHeartbeatRequest {
    pub controller_id: String,
    pub host: String,
    pub role: ControllerRole,
    pub priority: i64,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Controller {
    pub controller_id: String,
    pub host: String,
    pub role: ControllerRole,
    pub priority: i64,
    pub status: String,
    pub version: Option<String>,
    pub started_at: Option<i64>,
    pub metadata: Map<String, Value>,
    pub first_seen_at: i64,
    pub last_heartbeat_at: i64,
    /// Whether the last heartbeat is recent enough (within the control plane's liveness window).
    pub alive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerHeartbeatResponse {
    pub controller: Controller,
    /// The fleet mode at the time of the heartbeat, so agents learn of pause and drain.
    pub mode: SystemMode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllersList {
    pub controllers: Vec<Controller>,
    pub liveness_window_sec: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderAcquireRequest {
    pub controller_id: String,
    pub host: String,
    pub ttl_sec: i64,
    #[serde(default)]
    pub preferred: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub lease_name: String,
    pub holder_id: Option<String>,
    pub holder_host: Option<String>,
    pub term: i64,
    pub lease_expires_at: i64,
    pub renewed_at: i64,
    pub preferred_holder_id: Option<String>,
    pub metadata_json: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderAcquireResponse {
    pub holder_id: Option<String>,
    pub holder_host: Option<String>,
    pub term: i64,
    pub lease_expires_at: i64,
    pub renewed_at: i64,
    pub is_leader: bool,
    pub operation: LeaseOperation,
    pub lease: Lease,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderReleaseRequest {
    pub controller_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderReleaseResponse {
    pub released: bool,
    pub term: i64,
    pub lease: Lease,
}

// ---------------------------------------------------------------- tasks

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskCreateRequest {
    pub repo: String,
    pub task_type: String,
    pub title: String,
    pub goal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: String,
    pub repo: String,
    pub task_type: TaskType,
    pub title: String,
    pub goal: String,
    pub priority: i64,
    pub status: TaskStatus,
    pub constraints: Map<String, Value>,
    pub acceptance: Vec<String>,
    pub metadata: Map<String, Value>,
    pub target_host: Option<String>,
    pub base_ref: String,
    pub branch_name: String,
    pub planner_provider: Option<String>,
    pub planning_strategy: Option<String>,
    pub claimed_by: Option<String>,
    pub claim_term: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Why the task ended as it did (failure reason, cancel reason), when it has ended; why
    /// it started over, while it runs again.
    pub status_reason: Option<String>,
    /// The one host that runs every step of the task: set by its first step claim, or at
    /// creation by `constraints.target_host`.
    #[serde(default)]
    pub assigned_host: Option<String>,
    /// `base_ref` as resolved by the assigned host at the first step (40 hex digits).
    #[serde(default)]
    pub base_commit: Option<String>,
    /// The deliverable, once the task has run a step.
    #[serde(default)]
    pub result: Option<TaskResult>,
}

/// What a task produced: its branch on its host, and where it was delivered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskResult {
    pub base_commit: String,
    /// The branch's tip on its host.
    pub head_commit: String,
    pub branch: String,
    /// Commits on the branch since `base_commit`.
    pub commits: i64,
    pub files_changed: Vec<String>,
    pub insertions: i64,
    pub deletions: i64,
    pub host: String,
    pub repo: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
}

/// One entry of a task's history: assigned, started over, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub event_id: i64,
    pub kind: String,
    pub message: String,
    pub created_at: i64,
}

/// Why a task that is not finished is not moving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitingReason {
    pub code: String,
    pub message: String,
    pub since: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCreated {
    pub task_id: String,
    pub status: TaskStatus,
    pub base_ref: String,
    pub branch_name: String,
    pub task: Task,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub next_cursor: Option<String>,
}

/// `tasks.read`: the task's own fields at the top (the seed's read shape), with its steps,
/// runs and history beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: Task,
    /// The step running or next to run; the last step that ran once the task has ended;
    /// `None` before planning.
    pub current_step_index: Option<i64>,
    pub steps: Vec<Step>,
    pub runs: Vec<Run>,
    #[serde(default)]
    pub history: Vec<TaskEvent>,
    #[serde(default)]
    pub waiting_reason: Option<WaitingReason>,
}

/// Why, and on whose behalf, an administrator changes something: the optional body of
/// `tasks.cancel` and of `system.pause` / `resume` / `drain`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeReason {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskCanceled {
    pub task: Task,
    /// Runs in flight that were told to stop (they learn it from their next step heartbeat).
    pub runs_told_to_stop: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TasksClaimRequest {
    pub controller_id: String,
    pub host: String,
    pub term: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TasksClaimed {
    pub tasks: Vec<Task>,
    pub mode: SystemMode,
    pub term: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub step_kind: StepKind,
    pub worker_kind: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_sec: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPlanRequest {
    pub controller_id: String,
    pub term: i64,
    pub planner_provider: String,
    pub planning_strategy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_name: Option<String>,
    pub steps: Vec<PlannedStep>,
}

// ---------------------------------------------------------------- steps and runs

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepsClaimRequest {
    pub worker_id: String,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_kinds: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ttl_sec: Option<i64>,
}

/// One claimed step with everything a runner needs to start it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimedStep {
    pub step: Step,
    pub run_id: String,
    pub attempt: i64,
    pub task: Task,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepsClaimed {
    pub steps: Vec<ClaimedStep>,
    pub mode: SystemMode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct StepHeartbeatResponse {
    pub step_id: String,
    pub run_id: String,
    pub status: StepStatus,
    /// The step was canceled: the runner stops the process and reports the run.
    pub canceled: bool,
    pub heartbeat_deadline_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct Checkpoint {
    pub run_id: String,
    pub step_id: String,
    pub task_id: String,
    pub seq: i64,
    pub checkpoint_type: CheckpointType,
    pub format: CheckpointFormat,
    pub content: String,
    pub size: i64,
    pub sha256: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointStored {
    pub run_id: String,
    pub seq: i64,
    /// False when the same checkpoint had already been stored (a retried upload).
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogChunkUpload {
    pub seq: i64,
    pub stream: LogStream,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLogsRequest {
    pub worker_id: String,
    pub run_id: String,
    pub chunks: Vec<LogChunkUpload>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLogsStored {
    pub run_id: String,
    /// Chunks stored now.
    pub accepted: i64,
    /// Chunks whose `(run_id, seq)` was already stored and were skipped.
    pub duplicates: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSettled {
    pub step: Step,
    pub run: Run,
    pub task_status: TaskStatus,
    /// True when the step was put back to `ready` for another attempt.
    pub requeued: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepsReapRequest {
    pub controller_id: String,
    pub term: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReapedStep {
    pub step_id: String,
    pub run_id: Option<String>,
    pub requeued: bool,
    pub step_status: StepStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepsReaped {
    pub reaped: Vec<ReapedStep>,
    /// Tasks left in `planning` by a previous leader, put back to `queued`.
    pub requeued_tasks: Vec<String>,
    /// Tasks whose assigned host was lost, started over on any host.
    #[serde(default)]
    pub restarted_tasks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct LogPage {
    pub chunks: Vec<LogChunk>,
    /// Pass as `after` to read on; the last chunk's cursor, or the `after` given when empty.
    pub next_cursor: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    pub run: Run,
    pub checkpoints: Vec<Checkpoint>,
}

// ---------------------------------------------------------------- system

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct SystemChanged {
    pub accepted: bool,
    pub status: String,
    pub summary: String,
    pub mode: SystemMode,
    pub change: ModeChange,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}
