//! When an agent should sync next: `next_sync_ms`, chosen by the control plane from what the
//! sync found (SPEC §14). A pure function of the facts, tested as a table.

/// Soon: there is work for this host right now (steps granted, tasks to plan, items the batch
/// had no room for, a lease just won).
pub const SOON_MS: i64 = 250;
/// The pace of a host with output waiting: a step that prints steadily costs a third of a
/// request a second, so a fleet with one printing step stays under half a request a second.
pub const OUTPUT_PACE_MS: i64 = 3_000;
/// The pace of a host running steps: it hears of a cancel within this.
pub const BUSY_PACE_MS: i64 = 5_000;
/// Never sooner than this when nothing is waiting (a standby whose lease look is due).
pub const FLOOR_MS: i64 = 200;

/// What the pace depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceFacts {
    /// The configured idle interval.
    pub idle_ms: i64,
    /// Steps granted, tasks claimed for planning, items deferred, or a lease just won.
    pub work_waiting: bool,
    /// The host said it has more output than it sent.
    pub more_output: bool,
    /// The host holds runs (it sent their heartbeats).
    pub holds_runs: bool,
    /// The caller leads after this sync; its lease's TTL.
    pub is_leader: bool,
    pub ttl_sec: i64,
    /// The caller wants the lease but another live holder has it until `lease_expires_at`.
    pub standby_until: Option<i64>,
    /// The control plane's now (unix seconds).
    pub now: i64,
}

pub fn next_sync_ms(facts: &PaceFacts) -> i64 {
    if facts.work_waiting {
        return SOON_MS;
    }
    let mut next = facts.idle_ms;
    if facts.more_output {
        next = next.min(OUTPUT_PACE_MS);
    }
    if facts.holds_runs {
        next = next.min(BUSY_PACE_MS);
    }
    if facts.is_leader {
        // Renew well before expiry: three chances within one TTL.
        next = next.min(facts.ttl_sec * 1000 / 3);
    }
    if let Some(expires_at) = facts.standby_until {
        // Come back just after the holder's lease expires, so a crashed leader is replaced
        // within TTL + 1 s. Times are whole seconds; the expiry check is `expires_at <= now`,
        // so half a second past the expiry second is the earliest sync that can take it.
        next = next.min((expires_at - facts.now) * 1000 + 500);
    }
    next.max(FLOOR_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> PaceFacts {
        PaceFacts {
            idle_ms: 10_000,
            work_waiting: false,
            more_output: false,
            holds_runs: false,
            is_leader: false,
            ttl_sec: 30,
            standby_until: None,
            now: 1_000,
        }
    }

    #[test]
    fn the_pace_follows_the_facts() {
        let cases: Vec<(&str, PaceFacts, i64)> = vec![
            ("idle", idle(), 10_000),
            ("work waiting", PaceFacts { work_waiting: true, ..idle() }, SOON_MS),
            ("output waiting", PaceFacts { more_output: true, ..idle() }, OUTPUT_PACE_MS),
            ("running steps", PaceFacts { holds_runs: true, ..idle() }, BUSY_PACE_MS),
            ("running steps with output", PaceFacts { holds_runs: true, more_output: true, ..idle() }, OUTPUT_PACE_MS),
            ("leader, ttl 30 s", PaceFacts { is_leader: true, ..idle() }, 10_000),
            ("leader, ttl 9 s", PaceFacts { is_leader: true, ttl_sec: 9, ..idle() }, 3_000),
            ("standby, lease far", PaceFacts { standby_until: Some(1_030), ..idle() }, 10_000),
            ("standby, lease expires in 4 s", PaceFacts { standby_until: Some(1_004), ..idle() }, 4_500),
            ("standby, lease expires now", PaceFacts { standby_until: Some(1_000), ..idle() }, 500),
            ("short idle (embedded)", PaceFacts { idle_ms: 1_000, ..idle() }, 1_000),
            ("never below the floor", PaceFacts { idle_ms: 50, ..idle() }, FLOOR_MS),
        ];
        for (name, facts, expected) in cases {
            assert_eq!(next_sync_ms(&facts), expected, "{name}");
        }
    }
}
