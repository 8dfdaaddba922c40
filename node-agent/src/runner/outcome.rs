//! How a run ended, decided once its process is gone. Pure: the runner's own stop request
//! (timeout, cancel, lost) explains a signalled group; otherwise the exit status tells.

use super::run_dir::{Outcome, RunPhase, StopReason, StopRequest};

/// What is known of the process's end.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessEnd {
    /// The step command's exit code as its wrapper recorded it.
    pub recorded_exit: Option<i64>,
    /// The wrapper's own exit code, when this agent was its parent.
    pub wrapper_exit: Option<i64>,
    /// The signal that ended the wrapper, when this agent was its parent.
    pub wrapper_signal: Option<i32>,
    /// The step's own line on why it failed (`$BAA_FAILURE_FILE`), if it wrote one.
    pub reason: Option<String>,
    /// The usage limit a failed coding agent's output announced (SPEC §13).
    pub limit: Option<super::limits::LimitHit>,
}

/// The limits a run was held to: `timeout_sec` and, if any, `stall_after_sec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub timeout_sec: i64,
    pub stall_after_sec: Option<i64>,
}

pub fn decide(stop: Option<StopRequest>, end: &ProcessEnd, limits: Limits) -> Outcome {
    let exit_code = end.recorded_exit.or(end.wrapper_exit);
    let timeout_sec = limits.timeout_sec;
    if let Some(stop) = stop {
        let (phase, message) = match stop.reason {
            StopReason::Timeout => (
                RunPhase::TimedOut,
                format!("timed out after {timeout_sec} s: the process group was stopped (SIGTERM, then SIGKILL after the grace period)"),
            ),
            StopReason::Stalled => (
                RunPhase::TimedOut,
                format!(
                    "stalled: no output, no change in the worktree and no CPU time for {} s (stall_after_sec): the process group was stopped",
                    limits.stall_after_sec.unwrap_or(0)
                ),
            ),
            StopReason::Canceled => (RunPhase::Canceled, "canceled: the process group was stopped".to_string()),
            StopReason::Lost => (RunPhase::Lost, "the control plane no longer counts this run; its process group was stopped".to_string()),
        };
        return Outcome { phase, exit_code, message, needs_human: false };
    }
    match (exit_code, end.wrapper_signal) {
        (Some(0), _) => Outcome { phase: RunPhase::Succeeded, exit_code: Some(0), message: "exit code 0".into(), needs_human: false },
        (Some(code), _) => Outcome {
            phase: RunPhase::Failed,
            exit_code: Some(code),
            message: match (&end.limit, &end.reason) {
                (Some(limit), _) => format!("exit code {code}: usage limit: {}", limit.message),
                (None, Some(reason)) => format!("exit code {code}: {reason}"),
                (None, None) => format!("exit code {code}"),
            },
            needs_human: false,
        },
        (None, Some(signal)) => Outcome {
            phase: RunPhase::Failed,
            exit_code: None,
            message: format!("killed by signal {signal}, not by the runner"),
            needs_human: false,
        },
        (None, None) => Outcome {
            phase: RunPhase::Failed,
            exit_code: None,
            message: "the process ended while no agent was watching and left no exit status".into(),
            needs_human: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { timeout_sec: 5, stall_after_sec: Some(3) };

    fn end(recorded_exit: Option<i64>, wrapper_exit: Option<i64>, wrapper_signal: Option<i32>) -> ProcessEnd {
        ProcessEnd { recorded_exit, wrapper_exit, wrapper_signal, ..ProcessEnd::default() }
    }

    #[test]
    fn the_exit_code_decides_when_the_runner_stopped_nothing() {
        assert_eq!(decide(None, &end(Some(0), Some(0), None), LIMITS).phase, RunPhase::Succeeded);
        let failed = decide(None, &end(Some(3), Some(3), None), LIMITS);
        assert_eq!((failed.phase, failed.exit_code), (RunPhase::Failed, Some(3)));
        assert_eq!(decide(None, &end(None, None, Some(9)), LIMITS).message, "killed by signal 9, not by the runner");
        assert_eq!(decide(None, &end(None, None, None), LIMITS).phase, RunPhase::Failed);
        let explained = ProcessEnd { reason: Some("merging baa/e (T-E) conflicts in: a.txt".into()), ..end(Some(3), Some(3), None) };
        assert_eq!(decide(None, &explained, LIMITS).message, "exit code 3: merging baa/e (T-E) conflicts in: a.txt");
    }

    #[test]
    fn a_stop_request_explains_a_signalled_group() {
        let stop = |reason| Some(StopRequest { reason, requested_at_ms: 0, terminate_sent_at_ms: Some(0), kill_sent_at_ms: None });
        assert_eq!(decide(stop(StopReason::Timeout), &end(None, None, Some(15)), LIMITS).phase, RunPhase::TimedOut);
        assert_eq!(decide(stop(StopReason::Canceled), &end(None, None, Some(15)), LIMITS).phase, RunPhase::Canceled);
        assert_eq!(decide(stop(StopReason::Lost), &end(Some(0), None, None), LIMITS).phase, RunPhase::Lost);
        let stalled = decide(stop(StopReason::Stalled), &end(None, None, Some(15)), LIMITS);
        assert_eq!(stalled.phase, RunPhase::TimedOut);
        assert!(stalled.message.starts_with("stalled: ") && stalled.message.contains(" 3 s "), "{}", stalled.message);
    }
}
