//! The agent's view of the leader lease as a pure state machine: fed with monotonic instants
//! and the lease decisions of `agents.sync` calls, it says when to call next and whether this
//! node may act as leader right now. It never reads a clock.
//!
//! Why a local deadline: the control plane's lease runs out at `lease_expires_at` whether or
//! not this node hears about it. A leader that cannot renew (network down, control plane slow)
//! must stop acting before another node can be granted the lease. The local deadline is the
//! moment the granting request was *sent* plus the TTL minus a margin: the server started the
//! TTL when it *received* the request, which is later, so the local deadline always falls
//! before the server's expiry. The margin covers the server's whole-second clock (its expiry
//! can be up to one second earlier than receipt + TTL) plus a tenth of the TTL for slack.

use std::time::{Duration, Instant};

use shared::status::LeaseOperation;
use shared::wire::LeaseDecision;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub renew_interval: Duration,
    pub ttl: Duration,
    pub failure_threshold: u32,
}

impl LeaseTiming {
    /// How long before the TTL runs out, counted from sending, this node stops leading.
    pub fn margin(&self) -> Duration {
        Duration::from_secs(1) + self.ttl / 10
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseStatus {
    Leader,
    Standby,
    /// `failure_threshold` consecutive attempts failed: the control plane is out of reach.
    Degraded,
}

impl LeaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseStatus::Leader => "leader",
            LeaseStatus::Standby => "standby",
            LeaseStatus::Degraded => "degraded",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeaseMachine {
    timing: LeaseTiming,
    /// Set while this node holds a grant: its term and local deadline.
    leadership: Option<(i64, Instant)>,
    /// The holder and term last reported by the control plane.
    pub holder_id: Option<String>,
    pub term: i64,
    pub lease_expires_at: Option<i64>,
    pub last_operation: Option<LeaseOperation>,
    pub consecutive_failures: u32,
    next_attempt: Instant,
}

impl LeaseMachine {
    pub fn new(timing: LeaseTiming, now: Instant) -> Self {
        LeaseMachine {
            timing,
            leadership: None,
            holder_id: None,
            term: 0,
            lease_expires_at: None,
            last_operation: None,
            consecutive_failures: 0,
            next_attempt: now,
        }
    }

    /// Whether an acquire/renew call is due.
    pub fn attempt_due(&self, now: Instant) -> bool {
        now >= self.next_attempt
    }

    /// Records that a call is being sent at `now`; unless an answer says otherwise
    /// ([`Self::call_again_at`]), the next one is due a renew interval later.
    pub fn start_attempt(&mut self, now: Instant) -> Instant {
        self.next_attempt = now + self.timing.renew_interval;
        now
    }

    /// The next call is due at `at` (the control plane's pace, after an answer); never later
    /// than what keeps a leader renewing before its local deadline.
    pub fn call_again_at(&mut self, at: Instant) {
        self.next_attempt = match self.leadership {
            // Two chances to renew before the deadline, whatever the pace asked.
            Some((_, deadline)) => at.min(deadline.checked_sub(self.timing.margin()).unwrap_or(deadline)),
            None => at,
        };
    }

    /// The control plane answered the call sent at `sent_at`.
    pub fn handle_answer(&mut self, sent_at: Instant, answer: &LeaseDecision) {
        self.consecutive_failures = 0;
        self.holder_id = answer.holder_id.clone();
        self.term = answer.term;
        self.lease_expires_at = Some(answer.lease_expires_at);
        self.last_operation = Some(answer.operation);
        self.leadership = match (answer.is_leader, answer.operation) {
            // Only a grant made by this very call counts its TTL from (no earlier than) its
            // sending.
            (true, LeaseOperation::Acquire | LeaseOperation::Renew) => {
                Some((answer.term, sent_at + self.timing.ttl.saturating_sub(self.timing.margin())))
            }
            // Told it holds the lease without a grant (a draining node's look at the lease): no
            // longer than it already could, and never a lease it did not know it had — a
            // request it gave up on may have acquired it, and the control plane's TTL started
            // then (the simulation found a stopping node leading on such a lease).
            (true, _) => self.leadership.filter(|(term, _)| *term == answer.term),
            (false, _) => None,
        };
    }

    /// The call sent earlier failed (no answer, or an error answer).
    pub fn handle_failure(&mut self) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
    }

    /// This node gave the lease up (release on shutdown).
    pub fn handle_released(&mut self) {
        self.leadership = None;
        self.holder_id = None;
    }

    /// The next instant after `now` at which something changes without any input: a call
    /// falls due, or the local deadline passes. A deadline already passed is no wake-up.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        match self.leadership {
            Some((_, deadline)) if deadline > now => deadline.min(self.next_attempt),
            _ => self.next_attempt,
        }
    }

    pub fn status(&self, now: Instant) -> LeaseStatus {
        if self.consecutive_failures >= self.timing.failure_threshold {
            LeaseStatus::Degraded
        } else if self.leading_term(now).is_some() {
            LeaseStatus::Leader
        } else {
            LeaseStatus::Standby
        }
    }

    /// The term this node may lead in right now: held, before the local deadline, and not
    /// degraded. Every leader-only write carries this term.
    pub fn leading_term(&self, now: Instant) -> Option<i64> {
        match self.leadership {
            Some((term, deadline)) if now < deadline && self.consecutive_failures < self.timing.failure_threshold => Some(term),
            _ => None,
        }
    }

    /// The term held (even past the local deadline), for a release on shutdown.
    pub fn held_term(&self) -> Option<i64> {
        self.leadership.map(|(term, _)| term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: LeaseTiming = LeaseTiming { renew_interval: Duration::from_secs(1), ttl: Duration::from_secs(3), failure_threshold: 2 };

    fn answer(is_leader: bool, holder: &str, term: i64, operation: LeaseOperation) -> LeaseDecision {
        LeaseDecision {
            is_leader,
            operation,
            term,
            holder_id: Some(holder.into()),
            holder_host: Some("h".into()),
            lease_expires_at: 100,
            renewed_at: 97,
        }
    }

    #[test]
    fn acquire_then_renew_keeps_leading() {
        let start = Instant::now();
        let mut machine = LeaseMachine::new(TIMING, start);
        assert!(machine.attempt_due(start));
        let sent = machine.start_attempt(start);
        assert!(!machine.attempt_due(start + Duration::from_millis(999)));
        machine.handle_answer(sent, &answer(true, "me", 1, LeaseOperation::Acquire));
        assert_eq!(machine.status(start), LeaseStatus::Leader);
        assert_eq!(machine.leading_term(start), Some(1));
        for second in 1..10 {
            let now = start + Duration::from_secs(second);
            assert!(machine.attempt_due(now));
            let sent = machine.start_attempt(now);
            machine.handle_answer(sent, &answer(true, "me", 1, LeaseOperation::Renew));
            assert_eq!(machine.leading_term(now + Duration::from_millis(900)), Some(1));
        }
    }

    #[test]
    fn the_local_deadline_ends_leadership_before_the_server_expiry_even_with_no_answer() {
        let start = Instant::now();
        let mut machine = LeaseMachine::new(TIMING, start);
        let sent = machine.start_attempt(start);
        machine.handle_answer(sent, &answer(true, "me", 4, LeaseOperation::Acquire));
        // Renewals go out but never come back (no handle_* call at all).
        machine.start_attempt(start + Duration::from_secs(1));
        // TTL 3 s, margin 1.3 s: leadership ends 1.7 s after the granting request was sent.
        assert_eq!(machine.leading_term(start + Duration::from_millis(1_699)), Some(4));
        assert_eq!(machine.leading_term(start + Duration::from_millis(1_700)), None);
        assert_eq!(machine.status(start + Duration::from_secs(2)), LeaseStatus::Standby);
        assert_eq!(machine.poll_timeout(start + Duration::from_millis(1_100)), start + Duration::from_millis(1_700));
        assert_eq!(
            machine.poll_timeout(start + Duration::from_millis(1_800)),
            start + Duration::from_secs(2),
            "a passed deadline is no wake-up"
        );
        // The server's expiry is at the earliest receipt + TTL - 1 s of whole-second rounding,
        // and receipt is after sending: strictly later than the local deadline.
        assert!(Duration::from_millis(1_700) < TIMING.ttl - Duration::from_secs(1) + Duration::from_millis(1));
    }

    #[test]
    fn consecutive_failures_degrade_and_stop_leadership_at_once() {
        let start = Instant::now();
        let mut machine = LeaseMachine::new(TIMING, start);
        let sent = machine.start_attempt(start);
        machine.handle_answer(sent, &answer(true, "me", 2, LeaseOperation::Acquire));
        machine.start_attempt(start + Duration::from_millis(500));
        machine.handle_failure();
        assert_eq!(machine.status(start + Duration::from_millis(600)), LeaseStatus::Leader, "one failure is tolerated");
        machine.start_attempt(start + Duration::from_millis(800));
        machine.handle_failure();
        let now = start + Duration::from_millis(900);
        assert_eq!(machine.status(now), LeaseStatus::Degraded);
        assert_eq!(machine.leading_term(now), None, "a degraded node does not schedule");
        // Leadership regained: the next answer clears the failures.
        let sent = machine.start_attempt(start + Duration::from_secs(1));
        machine.handle_answer(sent, &answer(true, "me", 3, LeaseOperation::Acquire));
        assert_eq!(machine.status(start + Duration::from_secs(1)), LeaseStatus::Leader);
        assert_eq!(machine.leading_term(start + Duration::from_secs(1)), Some(3));
    }

    #[test]
    fn a_standby_never_leads_and_a_hand_over_ends_leadership() {
        let start = Instant::now();
        let mut machine = LeaseMachine::new(TIMING, start);
        let sent = machine.start_attempt(start);
        machine.handle_answer(sent, &answer(false, "other", 1, LeaseOperation::None));
        assert_eq!(machine.status(start), LeaseStatus::Standby);
        assert_eq!(machine.leading_term(start), None);
        assert_eq!(machine.holder_id.as_deref(), Some("other"));
        let sent = machine.start_attempt(start + Duration::from_secs(1));
        machine.handle_answer(sent, &answer(true, "me", 2, LeaseOperation::Acquire));
        assert_eq!(machine.leading_term(start + Duration::from_secs(1)), Some(2));
        let sent = machine.start_attempt(start + Duration::from_secs(2));
        let mut handed = answer(false, "me", 2, LeaseOperation::HandOver);
        handed.holder_id = None;
        machine.handle_answer(sent, &handed);
        assert_eq!(machine.leading_term(start + Duration::from_secs(2)), None);
    }

    #[test]
    fn an_answer_that_only_looks_at_the_lease_starts_and_extends_nothing() {
        let start = Instant::now();
        let mut machine = LeaseMachine::new(TIMING, start);
        // A look (no acquire, no renew) says this node holds term 5: a request it gave up on
        // acquired it, some time ago. It does not lead on that.
        let sent = machine.start_attempt(start);
        machine.handle_answer(sent, &answer(true, "me", 5, LeaseOperation::None));
        assert_eq!(machine.leading_term(start), None);
        // Granted by a renew, then looked at later: the deadline stays the renew's.
        let sent = machine.start_attempt(start + Duration::from_secs(1));
        machine.handle_answer(sent, &answer(true, "me", 5, LeaseOperation::Renew));
        let sent = machine.start_attempt(start + Duration::from_millis(2_500));
        machine.handle_answer(sent, &answer(true, "me", 5, LeaseOperation::None));
        // TTL 3 s, margin 1.3 s: the renew sent at 1 s leads until 2.7 s, not 4.2 s.
        assert_eq!(machine.leading_term(start + Duration::from_millis(2_699)), Some(5));
        assert_eq!(machine.leading_term(start + Duration::from_millis(2_700)), None);
    }

    #[test]
    fn the_pace_of_the_control_plane_is_followed_but_a_leader_renews_before_its_deadline() {
        let timing = LeaseTiming { renew_interval: Duration::from_secs(5), ttl: Duration::from_secs(30), failure_threshold: 2 };
        let start = Instant::now();
        let mut machine = LeaseMachine::new(timing, start);
        let sent = machine.start_attempt(start);
        machine.handle_answer(sent, &answer(false, "other", 1, LeaseOperation::None));
        machine.call_again_at(start + Duration::from_secs(10));
        assert!(!machine.attempt_due(start + Duration::from_millis(9_999)), "a standby waits as asked");
        assert!(machine.attempt_due(start + Duration::from_secs(10)));
        let sent = machine.start_attempt(start + Duration::from_secs(10));
        machine.handle_answer(sent, &answer(true, "me", 2, LeaseOperation::Acquire));
        // Asked to come back in a minute: the local deadline (30 s - 4 s margin) comes first,
        // and the call is due a margin before it.
        machine.call_again_at(sent + Duration::from_secs(60));
        assert_eq!(machine.poll_timeout(sent), sent + Duration::from_secs(22));
    }
}
