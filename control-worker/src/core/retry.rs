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
    /// The coding agent hit its account's usage limit (SPEC §13): the step waits for the
    /// reset, no attempt spent, and the task goes on.
    Quota,
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
        Failure::Quota => RunStatus::Failed,
    };
    if failure == Failure::Quota {
        return Settlement { step_status: StepStatus::WaitingQuota, run_status, task_status: None };
    }
    if matches!(failure, Failure::Blocked | Failure::NeedsHuman) {
        return Settlement { step_status: StepStatus::Blocked, run_status, task_status: Some(TaskStatus::Blocked) };
    }
    if attempt < max_attempts {
        return Settlement { step_status: StepStatus::Ready, run_status, task_status: None };
    }
    let step_status = if failure == Failure::TimedOut { StepStatus::TimedOut } else { StepStatus::Failed };
    Settlement { step_status, run_status, task_status: Some(TaskStatus::Failed) }
}

/// The policy's two answers for one kind of failure. `settle` depends on the attempt counters
/// only through `attempt < max_attempts`, so these two are all it can say; the settlement SQL
/// computes that comparison per row and applies the matching answer ([`super::settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcomes {
    pub while_attempts_remain: Settlement,
    pub last_attempt: Settlement,
}

pub fn outcomes(failure: Failure) -> Outcomes {
    Outcomes { while_attempts_remain: settle(1, 2, failure), last_attempt: settle(1, 1, failure) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILURES: [Failure; 6] =
        [Failure::Error, Failure::TimedOut, Failure::Lost, Failure::Blocked, Failure::NeedsHuman, Failure::Quota];

    /// What the settlement SQL relies on: the two outcomes say everything `settle` can say, the
    /// run's status does not depend on the attempt, and only a requeue or a wait for the
    /// account's reset leaves the task running.
    #[test]
    fn two_outcomes_cover_every_attempt() {
        for failure in FAILURES {
            let both = outcomes(failure);
            for attempt in 1..6 {
                for max_attempts in 1..6 {
                    let expected = if attempt < max_attempts { both.while_attempts_remain } else { both.last_attempt };
                    assert_eq!(settle(attempt, max_attempts, failure), expected, "{failure:?} {attempt}/{max_attempts}");
                }
            }
            assert_eq!(both.while_attempts_remain.run_status, both.last_attempt.run_status);
            for settlement in [both.while_attempts_remain, both.last_attempt] {
                let goes_on = settlement.requeued() || settlement.step_status == StepStatus::WaitingQuota;
                assert_eq!(settlement.task_status.is_none(), goes_on, "{failure:?}");
            }
            assert_eq!(both.last_attempt.task_status.is_some(), failure != Failure::Quota);
        }
    }

    #[test]
    fn a_usage_limit_waits_whatever_the_attempts() {
        for (attempt, max_attempts) in [(1, 1), (1, 3), (3, 3)] {
            let settlement = settle(attempt, max_attempts, Failure::Quota);
            assert_eq!((settlement.step_status, settlement.task_status), (StepStatus::WaitingQuota, None));
        }
    }

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
