//! A standby's sync held until the lease changes hands (SPEC §14). A standby with nothing to
//! do would otherwise hear of a released lease only at its next sync, up to the idle interval
//! later; polling every second would cost 86,400 requests a day. Instead the control plane
//! keeps the answer while the lease stays with another live holder, looking at the lease row
//! every [`HOLD_POLL_MS`], and answers as soon as it is released, expires or changes holder —
//! with `next_sync_ms` 0, so the standby comes back at once to take it (or, during a
//! hand-back, to be held again behind the new holder). Held or not, the
//! standby syncs once per idle interval: the hold only moves its waiting to this side.
//!
//! Only a caller that asks (`hold_ms`, what its own request timeout allows) and has nothing
//! else going on is held: no runs, no output, nothing granted, nothing deferred.

use super::super::blobs::Blobs;
use shared::wire::Lease;

use super::super::clock::{Clock, Random};
use super::super::db::{Db, Statement};
use super::super::error::ApiResult;
use super::super::lease::{empty_lease, SELECT_LEASE_SQL};
use super::super::{records, Core};

/// How often a held sync looks at the lease row: one row read each time.
pub const HOLD_POLL_MS: i64 = 500;
/// The longest hold, whatever the caller allows.
pub const MAX_HOLD_MS: i64 = 25_000;

/// What decides whether, and how long, a sync is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldFacts {
    /// What the caller allows (0: never hold).
    pub requested_ms: i64,
    /// The pace the answer would have set.
    pub next_ms: i64,
    /// The caller wants the lease and did not get it (another live node holds it, or it is
    /// kept for the preferred node).
    pub standby: bool,
    /// The caller has nothing else going on: no runs or output, nothing granted or deferred.
    pub quiet: bool,
}

/// How long to hold the answer: 0, or up to the pace the answer would have set.
pub fn hold_ms(facts: &HoldFacts) -> i64 {
    if !facts.standby || !facts.quiet || facts.requested_ms <= 0 {
        return 0;
    }
    facts.requested_ms.min(facts.next_ms).clamp(0, MAX_HOLD_MS)
}

/// Holds for up to `hold_ms` while `lease` stands; the `next_sync_ms` to answer: 0 once the
/// lease changed, otherwise what is left of `next_ms` after the hold.
pub async fn hold<D: Db, C: Clock, R: Random, B: Blobs>(
    core: &Core<D, C, R, B>,
    lease: &Lease,
    hold_ms: i64,
    next_ms: i64,
) -> ApiResult<i64> {
    let mut waited = 0;
    let held_at = core.clock.now();
    while waited < hold_ms {
        let step = HOLD_POLL_MS.min(hold_ms - waited);
        core.clock.sleep_ms(step as u64).await;
        waited += step;
        let rows = core.db.query(Statement::new(SELECT_LEASE_SQL, vec![])).await?;
        let now_lease = records::first(&rows, records::lease)?.unwrap_or_else(empty_lease);
        let changed = now_lease.holder_id != lease.holder_id || now_lease.term != lease.term;
        // Expired during the hold (a lease handed over has no holder but is not free until then).
        let expired = now_lease.lease_expires_at > held_at && now_lease.lease_expires_at <= core.clock.now();
        if changed || expired {
            return Ok(0);
        }
    }
    Ok((next_ms - waited).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_quiet_standby_that_asks_is_held_and_never_past_its_pace() {
        let facts = HoldFacts { requested_ms: 8_000, next_ms: 10_000, standby: true, quiet: true };
        assert_eq!(hold_ms(&facts), 8_000);
        assert_eq!(hold_ms(&HoldFacts { next_ms: 3_500, ..facts }), 3_500, "a standby due at the lease's expiry");
        assert_eq!(hold_ms(&HoldFacts { requested_ms: 60_000, next_ms: 60_000, ..facts }), MAX_HOLD_MS);
        assert_eq!(hold_ms(&HoldFacts { requested_ms: 0, ..facts }), 0, "not asked");
        assert_eq!(hold_ms(&HoldFacts { standby: false, ..facts }), 0, "the leader, or a free lease");
        assert_eq!(hold_ms(&HoldFacts { quiet: false, ..facts }), 0, "runs, output or work waiting");
    }
}
