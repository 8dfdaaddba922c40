//! The built-in planner: a task → its steps, by `task_type`. Pure.
//!
//! - `shell`: one step runs the goal as a shell command (`sh -c`) in the worktree.
//! - `codex`: one step runs the host's coding-agent command with the goal handed over.
//! - `integrate`: one merge step merges the dependencies' branches, in `depends_on` order
//!   (the control plane lists them in the step's `metadata.merge`).
//! - then each `acceptance` entry becomes a test step (a shell command whose output is kept);
//! - then, with `constraints.deliver` `push` or `pr`, a deliver step.

use shared::status::{DeliveryMode, StepKind, TaskType};
use shared::wire::{PlannedStep, Task, TaskPlan};

pub const PLANNER_PROVIDER: &str = "builtin";
pub const SHELL_TIMEOUT_SEC: i64 = 1_800;
pub const AGENT_TIMEOUT_SEC: i64 = 3_600;
pub const TEST_TIMEOUT_SEC: i64 = 900;
pub const DELIVER_TIMEOUT_SEC: i64 = 600;
pub const MERGE_TIMEOUT_SEC: i64 = 600;

pub fn plan(task: &Task) -> TaskPlan {
    // `constraints.timeout_sec`, checked by the control plane at creation, overrides the
    // defaults for every step of the task.
    let timeout = |default: i64| {
        Some(task.constraints.get("timeout_sec").and_then(|value| value.as_i64()).filter(|sec| *sec >= 1).unwrap_or(default))
    };
    let first = match task.task_type {
        TaskType::Shell => PlannedStep {
            step_kind: StepKind::Shell,
            worker_kind: "shell".into(),
            title: "run the goal".into(),
            command: Some(task.goal.clone()),
            prompt: None,
            timeout_sec: timeout(SHELL_TIMEOUT_SEC),
            max_attempts: Some(1),
            metadata: None,
        },
        TaskType::Codex => PlannedStep {
            step_kind: StepKind::Agent,
            worker_kind: "codex".into(),
            title: "coding agent".into(),
            command: None,
            prompt: Some(task.goal.clone()),
            timeout_sec: timeout(AGENT_TIMEOUT_SEC),
            max_attempts: Some(1),
            metadata: None,
        },
        TaskType::Integrate => PlannedStep {
            step_kind: StepKind::Merge,
            worker_kind: "shell".into(),
            title: format!("merge {} branches", task.depends_on.len()),
            command: None,
            prompt: None,
            timeout_sec: timeout(MERGE_TIMEOUT_SEC),
            max_attempts: Some(1),
            metadata: None,
        },
    };
    let tests = task.acceptance.iter().enumerate().map(|(index, command)| PlannedStep {
        step_kind: StepKind::Test,
        worker_kind: "shell".into(),
        title: format!("acceptance {}: {}", index + 1, command.chars().take(200).collect::<String>()),
        command: Some(command.clone()),
        prompt: None,
        timeout_sec: timeout(TEST_TIMEOUT_SEC),
        max_attempts: Some(1),
        metadata: None,
    });
    // Delivery comes last, after every acceptance step passed; a push may meet a passing
    // network fault, so it gets a second attempt.
    let mode = task.constraints.get("deliver").and_then(|mode| mode.as_str()).and_then(DeliveryMode::parse).unwrap_or(DeliveryMode::None);
    let deliver = (mode != DeliveryMode::None).then(|| PlannedStep {
        step_kind: StepKind::Deliver,
        worker_kind: "shell".into(),
        title: if mode == DeliveryMode::Pr { "deliver: push and open a pull request".into() } else { "deliver: push the branch".into() },
        command: None,
        prompt: None,
        timeout_sec: timeout(DELIVER_TIMEOUT_SEC),
        max_attempts: Some(2),
        metadata: None,
    });
    TaskPlan {
        task_id: task.task_id.clone(),
        planner_provider: PLANNER_PROVIDER.into(),
        planning_strategy: format!("task_type:{}", task.task_type),
        base_ref: None,
        branch_name: None,
        steps: std::iter::once(first).chain(tests).chain(deliver).collect(),
    }
}
