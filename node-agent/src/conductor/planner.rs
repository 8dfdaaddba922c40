//! The built-in planner: a task → its steps, by `task_type`. Pure.
//!
//! - first, a `setup` step: `constraints.setup`, or the repository's executable `.baa/setup`,
//!   run once in the new worktree (the runner finds the file; without either it ends at once);
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
pub const SETUP_TIMEOUT_SEC: i64 = 1_800;

pub fn plan(task: &Task) -> TaskPlan {
    // `constraints.timeout_sec`, checked by the control plane at creation, overrides the
    // defaults for every step of the task.
    let timeout = |default: i64| {
        Some(task.constraints.get("timeout_sec").and_then(|value| value.as_i64()).filter(|sec| *sec >= 1).unwrap_or(default))
    };
    // `constraints.max_attempts` (checked at creation too) raises every step's attempts.
    let attempts = |default: i64| {
        Some(task.constraints.get("max_attempts").and_then(|value| value.as_i64()).filter(|attempts| *attempts >= 1).unwrap_or(default))
    };
    let first = match task.task_type {
        TaskType::Shell => PlannedStep {
            step_kind: StepKind::Shell,
            worker_kind: "shell".into(),
            title: "run the goal".into(),
            command: Some(task.goal.clone()),
            prompt: None,
            timeout_sec: timeout(SHELL_TIMEOUT_SEC),
            max_attempts: attempts(1),
            metadata: None,
        },
        TaskType::Codex => PlannedStep {
            step_kind: StepKind::Agent,
            worker_kind: "codex".into(),
            title: "coding agent".into(),
            command: None,
            prompt: Some(task.goal.clone()),
            timeout_sec: timeout(AGENT_TIMEOUT_SEC),
            max_attempts: attempts(1),
            metadata: None,
        },
        TaskType::Integrate => PlannedStep {
            step_kind: StepKind::Merge,
            worker_kind: "shell".into(),
            title: format!("merge {} branches", task.depends_on.len()),
            command: None,
            prompt: None,
            timeout_sec: timeout(MERGE_TIMEOUT_SEC),
            max_attempts: attempts(1),
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
        max_attempts: attempts(1),
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
        max_attempts: attempts(2),
        metadata: None,
    });
    // A new worktree is set up before anything runs in it (SPEC §13).
    let setup = PlannedStep {
        step_kind: StepKind::Setup,
        worker_kind: "shell".into(),
        title: "setup".into(),
        command: task.constraints.get("setup").and_then(|setup| setup.as_str()).map(str::to_string),
        prompt: None,
        timeout_sec: timeout(SETUP_TIMEOUT_SEC),
        max_attempts: attempts(1),
        metadata: None,
    };
    TaskPlan {
        task_id: task.task_id.clone(),
        planner_provider: PLANNER_PROVIDER.into(),
        planning_strategy: format!("task_type:{}", task.task_type),
        base_ref: None,
        branch_name: None,
        steps: [setup, first].into_iter().chain(tests).chain(deliver).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(task_type: &str, constraints: serde_json::Value) -> Task {
        serde_json::from_value(json!({
            "task_id": "t", "repo": "/srv/repo", "task_type": task_type, "title": "T", "goal": "make it so", "priority": 50,
            "status": "planning", "constraints": constraints, "acceptance": ["make test"], "metadata": {}, "target_host": null,
            "base_ref": "HEAD", "branch_name": "baa/t", "planner_provider": null, "planning_strategy": null, "claimed_by": null,
            "claim_term": null, "created_at": 0, "updated_at": 0, "started_at": null, "finished_at": null, "status_reason": null,
            "depends_on": ["a", "b"],
        }))
        .unwrap()
    }

    fn kinds(plan: &TaskPlan) -> Vec<&str> {
        plan.steps.iter().map(|step| step.step_kind.as_str()).collect()
    }

    #[test]
    fn setup_first_then_the_work_the_acceptance_and_delivery() {
        assert_eq!(kinds(&plan(&task("shell", json!({})))), ["setup", "shell", "test"]);
        assert_eq!(kinds(&plan(&task("codex", json!({"deliver": "push"})))), ["setup", "agent", "test", "deliver"]);
        let integrate = plan(&task("integrate", json!({})));
        assert_eq!(kinds(&integrate), ["setup", "merge", "test"]);
        assert_eq!(integrate.steps[1].title, "merge 2 branches");
        let setup = plan(&task("shell", json!({"setup": "python3 -m venv .venv", "timeout_sec": 60})));
        assert_eq!(setup.steps[0].command.as_deref(), Some("python3 -m venv .venv"));
        assert!(setup.steps.iter().all(|step| step.timeout_sec == Some(60)));
        assert_eq!(plan(&task("shell", json!({}))).steps[0].command, None, "the runner looks for .baa/setup");
    }

    #[test]
    fn max_attempts_raises_every_steps_attempts() {
        let attempts = |plan: TaskPlan| plan.steps.iter().map(|step| step.max_attempts.unwrap()).collect::<Vec<_>>();
        assert_eq!(attempts(plan(&task("shell", json!({"deliver": "push"})))), [1, 1, 1, 2]);
        assert_eq!(attempts(plan(&task("shell", json!({"deliver": "push", "max_attempts": 3})))), [3, 3, 3, 3]);
    }
}
