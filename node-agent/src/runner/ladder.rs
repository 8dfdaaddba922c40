//! The stop ladder for a step's process group, as a pure function of the run's deadline, its
//! stop request and the time: past the deadline a stop is requested (timeout); a requested stop
//! sends SIGTERM to the whole group, then SIGKILL once the grace period has passed. Times are
//! wall-clock milliseconds kept in `state.json`, so an agent restarted mid-ladder carries on
//! where the last one stopped.

use super::run_dir::{StopReason, StopRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Terminate,
    Kill,
}

/// Asks for a stop; the first reason stands (a step canceled while timing out stays timed out).
pub fn request_stop(stop: Option<StopRequest>, reason: StopReason, now_ms: i64) -> StopRequest {
    stop.unwrap_or(StopRequest { reason, requested_at_ms: now_ms, terminate_sent_at_ms: None, kill_sent_at_ms: None })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LadderStep {
    /// The stop request after this step (`None`: the process may keep running).
    pub stop: Option<StopRequest>,
    /// A signal to send to the group now.
    pub send: Option<Signal>,
    /// When the ladder next has something to do, if ever.
    pub wake_at_ms: Option<i64>,
}

/// What to do at `now_ms` for a process that is still alive. A SIGKILL is repeated every
/// grace period for as long as the group survives it (a process in uninterruptible sleep).
pub fn advance(deadline_at_ms: Option<i64>, stop: Option<StopRequest>, now_ms: i64, grace_ms: i64) -> LadderStep {
    let mut stop = stop;
    if stop.is_none() && deadline_at_ms.is_some_and(|deadline| now_ms >= deadline) {
        stop = Some(request_stop(None, StopReason::Timeout, now_ms));
    }
    let Some(mut request) = stop else {
        return LadderStep { stop: None, send: None, wake_at_ms: deadline_at_ms };
    };
    let send = match (request.terminate_sent_at_ms, request.kill_sent_at_ms) {
        (None, _) => {
            request.terminate_sent_at_ms = Some(now_ms);
            Some(Signal::Terminate)
        }
        (Some(terminated), None) if now_ms >= terminated + grace_ms => {
            request.kill_sent_at_ms = Some(now_ms);
            Some(Signal::Kill)
        }
        (Some(_), Some(killed)) if now_ms >= killed + grace_ms => {
            request.kill_sent_at_ms = Some(now_ms);
            Some(Signal::Kill)
        }
        _ => None,
    };
    let wake_at_ms = match request.kill_sent_at_ms {
        Some(killed) => killed + grace_ms,
        None => request.terminate_sent_at_ms.unwrap_or(now_ms) + grace_ms,
    };
    LadderStep { stop: Some(request), send, wake_at_ms: Some(wake_at_ms) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: i64 = 5_000;

    #[test]
    fn nothing_happens_before_the_deadline() {
        let step = advance(Some(10_000), None, 9_999, GRACE);
        assert_eq!(step, LadderStep { stop: None, send: None, wake_at_ms: Some(10_000) });
        assert_eq!(advance(None, None, 1 << 40, GRACE).send, None);
    }

    #[test]
    fn a_timeout_terminates_then_kills_after_the_grace_period() {
        let first = advance(Some(10_000), None, 10_000, GRACE);
        assert_eq!(first.send, Some(Signal::Terminate));
        assert_eq!(first.stop.unwrap().reason, StopReason::Timeout);
        assert_eq!(first.wake_at_ms, Some(15_000));
        let waiting = advance(Some(10_000), first.stop, 14_999, GRACE);
        assert_eq!(waiting.send, None);
        let kill = advance(Some(10_000), waiting.stop, 15_000, GRACE);
        assert_eq!(kill.send, Some(Signal::Kill));
        assert_eq!(kill.stop.unwrap().kill_sent_at_ms, Some(15_000));
        assert_eq!(advance(Some(10_000), kill.stop, 19_999, GRACE).send, None);
        assert_eq!(advance(Some(10_000), kill.stop, 20_000, GRACE).send, Some(Signal::Kill));
    }

    #[test]
    fn a_cancel_starts_the_ladder_at_once_and_the_first_reason_stands() {
        let canceled = request_stop(None, StopReason::Canceled, 3_000);
        let step = advance(Some(10_000), Some(canceled), 3_000, GRACE);
        assert_eq!(step.send, Some(Signal::Terminate));
        let again = request_stop(step.stop, StopReason::Timeout, 10_000);
        assert_eq!(again.reason, StopReason::Canceled);
        assert_eq!(again.terminate_sent_at_ms, Some(3_000));
    }

    #[test]
    fn a_restarted_agent_continues_from_the_recorded_request() {
        // The last agent sent SIGTERM at 10 s and died; the next one starts at 30 s.
        let recorded =
            StopRequest { reason: StopReason::Timeout, requested_at_ms: 10_000, terminate_sent_at_ms: Some(10_000), kill_sent_at_ms: None };
        assert_eq!(advance(Some(10_000), Some(recorded), 30_000, GRACE).send, Some(Signal::Kill));
    }
}
