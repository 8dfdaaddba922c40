//! The retry policy: what a failed or lost step attempt becomes. A pure function of the step's
//! attempt counters and how the attempt ended; the handlers apply its answer atomically.

use shared::status::{RunStatus, StepStatus, TaskStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The process failed (non-zero exit, could not start, ...).
    Error,
    /// The runner killed it for running past `timeout_sec`.
    TimedOut,
    /// Its heartbeat deadline passed: the host or the runner went away (reaped by the leader).
    Lost,
    /// The agent reported it cannot go on without something outside its reach.
    Blocked,
    /// The agent asked for a person.
    NeedsHuman,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub step_status: StepStatus,
    pub run_status: RunStatus,
    /// `Some` when the task ends with this attempt; `None` when it goes on.
    pub task_status: Option<TaskStatus>,
}

impl Settlement {
    pub fn requeued(&self) -> bool {
        self.step_status == StepStatus::Ready
    }
}

/// `attempt` is the attempt that just ended (1-based); `max_attempts` the step's limit.
/// Blocked and needs-human never retry (another attempt would meet the same wall); any other
/// failure is retried while attempts remain, then fails the step and its task.
pub fn settle(attempt: i64, max_attempts: i64, failure: Failure) -> Settlement {
    let run_status = match failure {
        Failure::Error => RunStatus::Failed,
        Failure::TimedOut => RunStatus::TimedOut,
        Failure::Lost => RunStatus::Lost,
        Failure::Blocked | Failure::NeedsHuman => RunStatus::Blocked,
    };
    if matches!(failure, Failure::Blocked | Failure::NeedsHuman) {
        return Settlement { step_status: StepStatus::Blocked, run_status, task_status: Some(TaskStatus::Blocked) };
    }
    if attempt < max_attempts {
        return Settlement { step_status: StepStatus::Ready, run_status, task_status: None };
    }
    let step_status = if failure == Failure::TimedOut { StepStatus::TimedOut } else { StepStatus::Failed };
    Settlement { step_status, run_status, task_status: Some(TaskStatus::Failed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_while_attempts_remain_then_fails() {
        assert!(settle(1, 3, Failure::Error).requeued());
        assert!(settle(2, 3, Failure::Lost).requeued());
        let last = settle(3, 3, Failure::Lost);
        assert_eq!(last.step_status, StepStatus::Failed);
        assert_eq!(last.run_status, RunStatus::Lost);
        assert_eq!(last.task_status, Some(TaskStatus::Failed));
        assert_eq!(settle(1, 1, Failure::TimedOut).step_status, StepStatus::TimedOut);
    }

    #[test]
    fn blocked_never_retries() {
        for failure in [Failure::Blocked, Failure::NeedsHuman] {
            let settlement = settle(1, 5, failure);
            assert_eq!(settlement.step_status, StepStatus::Blocked);
            assert_eq!(settlement.task_status, Some(TaskStatus::Blocked));
        }
    }
}
