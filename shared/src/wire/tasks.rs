//! Tasks: create, read (the seed's shape), list, cancel, the leader's claim and plan, the result.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::*;
use crate::status::*;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskCreateRequest {
    pub repo: String,
    pub task_type: String,
    pub title: String,
    pub goal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schemars(with = "Option<TaskConstraints>"))]
    pub constraints: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// The card's id, unique per repo: creating it again answers the existing task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Task ids or keys of the same repo.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Globs relative to the repo's root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write_scope: Vec<String>,
    #[serde(default)]
    pub review: bool,
}

/// `tasks.diff`: the task's branch as a unified diff against its base commit, as the last step
/// that committed left it (the runner's `branch_diff` checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskDiff {
    pub task_id: String,
    pub branch: String,
    /// Whether there is a diff to show; else `reason` says why not.
    pub available: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_commit: Option<String>,
    /// The run whose checkpoint it is, and when it was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// `git diff --no-color <base> HEAD`; cut near 1 MB with a note saying so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

/// What `constraints` of `tasks.create` may hold. The request keeps them as an object (the task
/// stores it as given, and the runner and planner read it), so this type is its documentation
/// and its JSON Schema; `body_fields` holds the same names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskConstraints {
    /// Assigns the task to that host at once.
    pub target_host: Option<String>,
    /// Where the branch starts (default `HEAD`; `task:<key>` names a dependency's branch).
    pub base_ref: Option<String>,
    /// Each step's timeout, 1–604800 seconds.
    pub timeout_sec: Option<i64>,
    /// Each step's attempts, 1–20.
    pub max_attempts: Option<i64>,
    /// What happens to the branch once its acceptance passed.
    pub deliver: Option<crate::status::DeliveryMode>,
    /// Where `deliver` pushes: a remote's name or a URL (default `origin`).
    pub remote: Option<String>,
    /// An agent step that changed nothing and wrote no report succeeds.
    pub allow_no_change: Option<bool>,
    /// Stop a step that shows no progress for this long (1–604800 seconds).
    pub stall_after_sec: Option<i64>,
    /// Agent rounds of a `codex` task, 1–20 (default 3).
    pub max_rounds: Option<i64>,
    /// A shell command run once in each new worktree before the first step.
    pub setup: Option<String>,
}

/// The body of `tasks.approve` (optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskApproveRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The body of `tasks.reject`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskRejectRequest {
    pub reason: String,
    /// Another agent round with the reason as feedback (SPEC §13), once rounds exist.
    #[serde(default)]
    pub retry: bool,
    /// Review comments on lines of the branch's diff; with `retry`, the agent's next round
    /// reads them in its feedback file as `path:line: comment`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<LineComment>,
}

/// A reviewer's comment on one line of the branch's diff (the line's number in the new file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LineComment {
    pub path: String,
    pub line: i64,
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
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
    /// The card's id (e.g. `T-013`), unique per repo.
    #[serde(default)]
    pub key: Option<String>,
    /// The task ids this task waits for: it starts once all have succeeded.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Where the task may write (globs relative to the repo's root); empty: anywhere.
    #[serde(default)]
    pub write_scope: Vec<String>,
    /// The task ends in `review` and waits for approve or reject.
    #[serde(default)]
    pub review: bool,
    /// Why a queued task (or a running task's ready step) is not moving; `None` when nothing
    /// holds it back. Computed when read, never stored.
    #[serde(default)]
    pub waiting_reason: Option<WaitingReason>,
    /// The agent round it is in (its steps' highest), in `tasks.list` once planned: the
    /// console's board shows it on the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<i64>,
}

/// What a coding agent wrote in its `{report_file}` under the card's headings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct AgentReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risks: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_handoff: Option<String>,
}

/// `tasks.report`: the report and the same as markdown in the card's section format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskReportPage {
    pub task_id: String,
    pub key: Option<String>,
    pub status: TaskStatus,
    pub report: TaskReport,
    pub markdown: String,
}

/// A task's report, in the card's sections (SPEC §12).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct TaskReport {
    pub files_changed: Vec<String>,
    pub commands_run: Vec<String>,
    pub result: String,
    pub risks: String,
    pub next_handoff: String,
}

/// What a task produced: its branch on its host, and where it was delivered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskEvent {
    pub event_id: i64,
    pub kind: String,
    pub message: String,
    pub created_at: i64,
}

/// Why a queued task, or a ready step, is not moving (SPEC §13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct WaitingReason {
    pub code: WaitingCode,
    pub message: String,
    /// Since when (unix seconds), as far as the control plane knows.
    pub since: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskCreated {
    pub task_id: String,
    pub status: TaskStatus,
    pub base_ref: String,
    pub branch_name: String,
    pub task: Task,
    /// What the task as created will not do that its creator may expect (e.g. a `codex` task
    /// without acceptance: only the agent's exit code judges it).
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    pub next_cursor: Option<String>,
}

/// `tasks.read`: the task's own fields at the top (the seed's read shape), with its steps,
/// runs and history beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
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
    /// The card's report sections, once a step has run.
    #[serde(default)]
    pub report: Option<TaskReport>,
    /// Its runs' usage files summed (SPEC §13), once one recorded any.
    #[serde(default)]
    pub usage: Option<UsageTotal>,
}

/// Why, and on whose behalf, an administrator changes something: the optional body of
/// `tasks.cancel` and of `system.pause` / `resume` / `drain`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ChangeReason {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskReviewed {
    /// `approved` or `rejected`.
    pub decision: String,
    /// The reviewer's reason (reject) or comment (approve).
    pub reason: Option<String>,
    /// Whether the reject started another agent round (SPEC §13); false until rounds exist.
    pub retried: bool,
    pub task: Task,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TaskCanceled {
    pub task: Task,
    /// Runs in flight that were told to stop (they learn it from their next step heartbeat).
    pub runs_told_to_stop: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TasksClaimRequest {
    pub controller_id: String,
    pub host: String,
    pub term: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct TasksClaimed {
    pub tasks: Vec<Task>,
    pub mode: SystemMode,
    pub term: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
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
