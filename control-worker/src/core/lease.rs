//! The global leader lease: acquire, renew, hand-over to the preferred controller, release,
//! and the fence every leader-only write is checked against.
//!
//! Each decision is one atomic batch: a row is created free (term 0) if missing, then one
//! `UPDATE … FROM (decision) … RETURNING` computes what the caller gets from the row as it is
//! and applies it. Two callers can never both be told they lead in the same term: SQLite and D1
//! both serialise the two writes, and the second one sees the first one's holder.
//!
//! Hand-over without overlap: when the preferred controller (the primary) asks while a standby
//! holds a live lease, only its wish is recorded (`preferred_holder_id`, `preferred_seen_at`).
//! The standby's next renewal then gives the lease up instead of renewing it (`hand_over`) and
//! is told it no longer leads; the preferred controller acquires with `term + 1` once the
//! expiry the standby was last granted has passed. Not before: the answer that tells the
//! standby can be late or lost, and until it arrives the standby believes it leads — up to its
//! local deadline, which always falls before that expiry (SPEC §5). So no instant has two
//! nodes that believe they lead (the simulation found the ordering where an immediate
//! hand-over broke this), and the standby's in-flight writes carry the old term and are
//! refused by the fence. A lease is free only once expired: a release expires it at once. A
//! wish is honoured only while fresh (seen within the caller's TTL), so a primary that asked
//! once and died does not starve the standby, and a standby never takes a live lease from
//! anyone: no flapping.

use super::blobs::Blobs;
use shared::status::LeaseOperation;
use shared::wire::{LeaderAcquireResponse, LeaderReleaseResponse, Lease};
use shared::ErrorCode;

use super::clock::{Clock, Random};
use super::db::{Db, Row, Statement};
use super::error::{ApiError, ApiResult};
use super::input::{Fields, MAX_SHORT_TEXT_LEN};
use super::records::{self, lease_columns};
use super::{Call, Core, Reply};

pub const MAX_TTL_SEC: i64 = 3_600;

pub(super) const ENSURE_ROW_SQL: &str =
    "INSERT INTO leader_lease (lease_name, holder_id, holder_host, term, lease_expires_at, renewed_at, last_operation) \
     VALUES ('global', NULL, NULL, 0, 0, 0, 'none') ON CONFLICT (lease_name) DO NOTHING";

// ?1 caller id, ?2 caller host, ?3 now, ?4 ttl, ?5 caller is preferred (0/1), ?6 the term the
// caller believes it leads in (0: none; NULL: not said, as `leader.acquire`). A holder that
// says it leads in another term, or in none (it restarted, or its local deadline passed), is
// given a new term rather than a renewal: messages it sent in the old term — a late release, a
// late leader write — are then refused by the fence. A caller that
// changes nothing (someone else leads, and it is not the preferred one recording its wish)
// writes nothing: a standby asking every few seconds costs rows read, not rows written.
const ACQUIRE_SQL: &str = concat!(
    "UPDATE leader_lease SET \
       holder_id = CASE decision.op WHEN 'acquire' THEN ?1 WHEN 'hand_over' THEN NULL ELSE holder_id END, \
       holder_host = CASE decision.op WHEN 'acquire' THEN ?2 WHEN 'renew' THEN ?2 WHEN 'hand_over' THEN NULL ELSE holder_host END, \
       term = CASE decision.op WHEN 'acquire' THEN term + 1 ELSE term END, \
       lease_expires_at = CASE decision.op WHEN 'acquire' THEN ?3 + ?4 WHEN 'renew' THEN ?3 + ?4 ELSE lease_expires_at END, \
       renewed_at = CASE decision.op WHEN 'none' THEN renewed_at ELSE ?3 END, \
       acquired_at = CASE decision.op WHEN 'acquire' THEN ?3 ELSE acquired_at END, \
       preferred_holder_id = CASE WHEN ?5 = 1 THEN ?1 ELSE preferred_holder_id END, \
       preferred_seen_at = CASE WHEN ?5 = 1 THEN ?3 ELSE preferred_seen_at END, \
       last_operation = decision.op \
     FROM (SELECT CASE \
             WHEN holder_id = ?1 AND lease_expires_at > ?3 THEN \
               CASE WHEN ?5 = 0 AND preferred_holder_id IS NOT NULL AND preferred_holder_id <> ?1 \
                         AND preferred_seen_at > ?3 - ?4 THEN 'hand_over' \
                    WHEN ?6 IS NULL OR ?6 = term THEN 'renew' ELSE 'acquire' END \
             WHEN lease_expires_at <= ?3 THEN \
               CASE WHEN ?5 = 1 OR preferred_holder_id IS NULL OR preferred_holder_id = ?1 \
                         OR preferred_seen_at IS NULL OR preferred_seen_at <= ?3 - ?4 THEN 'acquire' ELSE 'none' END \
             ELSE 'none' END AS op \
           FROM leader_lease WHERE lease_name = 'global') AS decision \
     WHERE leader_lease.lease_name = 'global' AND (decision.op <> 'none' OR ?5 = 1) \
     RETURNING ",
    lease_columns!()
);

// ?1 caller id, ?2 now, ?3 term or NULL.
const RELEASE_SQL: &str = concat!(
    "UPDATE leader_lease SET holder_id = NULL, holder_host = NULL, lease_expires_at = ?2, renewed_at = ?2, \
       last_operation = 'release', \
       preferred_seen_at = CASE WHEN preferred_holder_id = ?1 THEN NULL ELSE preferred_seen_at END \
     WHERE lease_name = 'global' AND holder_id = ?1 AND lease_expires_at > ?2 AND (?3 IS NULL OR term = ?3) \
     RETURNING ",
    lease_columns!()
);

pub const SELECT_LEASE_SQL: &str = concat!("SELECT ", lease_columns!(), " FROM leader_lease WHERE lease_name = 'global'");

/// The lease when none was ever acquired.
pub fn empty_lease() -> Lease {
    Lease {
        lease_name: "global".into(),
        holder_id: None,
        holder_host: None,
        term: 0,
        lease_expires_at: 0,
        renewed_at: 0,
        preferred_holder_id: None,
        metadata_json: None,
    }
}

/// The statements of an acquire (or renew) by `controller_id`, which believes it leads in
/// `leading` (`Some(None)`: in no term; `None`: not said): the first returns the lease when it
/// wrote it, the third the lease as it stands.
pub(super) fn acquire_statements(
    controller_id: &str,
    host: &str,
    ttl_sec: i64,
    preferred: bool,
    leading: Option<Option<i64>>,
    now: i64,
) -> Vec<Statement> {
    let leading = leading.map(|term| term.unwrap_or(0));
    vec![
        Statement::new(ENSURE_ROW_SQL, vec![]),
        Statement::new(ACQUIRE_SQL, vec![controller_id.into(), host.into(), now.into(), ttl_sec.into(), preferred.into(), leading.into()]),
        Statement::new(SELECT_LEASE_SQL, vec![]),
    ]
}

/// The lease and what the acquire did, from the rows of [`acquire_statements`] at `at`.
pub(super) fn acquired(results: &[Vec<Row>], at: usize) -> ApiResult<(Lease, LeaseOperation)> {
    if let Some(row) = results[at + 1].first() {
        let operation = LeaseOperation::parse(&row.text("last_operation")?).ok_or_else(|| ApiError::internal("unknown lease operation"))?;
        return Ok((records::lease(row)?, operation));
    }
    let lease = records::first(&results[at + 2], records::lease)?.ok_or_else(|| ApiError::internal("lease row missing"))?;
    Ok((lease, LeaseOperation::None))
}

/// The statements of a release by `controller_id` (in `term`, if given): the first returns the
/// lease when it was released, the second the lease as it stands.
pub(super) fn release_statements(controller_id: &str, term: Option<i64>, now: i64) -> Vec<Statement> {
    vec![Statement::new(RELEASE_SQL, vec![controller_id.into(), now.into(), term.into()]), Statement::new(SELECT_LEASE_SQL, vec![])]
}

pub async fn acquire<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let controller_id = call.principal.acting_node("controller_id", fields.opt_node_id("controller_id")?)?;
    let host = call.principal.acting_host(fields.str("host", MAX_SHORT_TEXT_LEN)?)?;
    let ttl_sec = fields.i64("ttl_sec", 1, MAX_TTL_SEC)?;
    let preferred = fields.bool_or_false("preferred")?;
    let results = core.db.batch(acquire_statements(&controller_id, &host, ttl_sec, preferred, None, call.now)).await?;
    let (lease, operation) = acquired(&results, 0)?;
    let is_leader = lease.holder_id.as_deref() == Some(controller_id.as_str()) && lease.lease_expires_at > call.now;
    Reply::ok(&LeaderAcquireResponse {
        holder_id: lease.holder_id.clone(),
        holder_host: lease.holder_host.clone(),
        term: lease.term,
        lease_expires_at: lease.lease_expires_at,
        renewed_at: lease.renewed_at,
        is_leader,
        operation,
        lease,
    })
}

pub async fn release<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let controller_id = call.principal.acting_node("controller_id", fields.opt_node_id("controller_id")?)?;
    let term = fields.opt_i64("term", 0, super::db::MAX_SAFE_INTEGER)?;
    let results = core.db.batch(release_statements(&controller_id, term, call.now)).await?;
    if let Some(row) = results[0].first() {
        let lease = records::lease(row)?;
        return Reply::ok(&LeaderReleaseResponse { released: true, term: lease.term, lease });
    }
    let lease = records::first(&results[1], records::lease)?.unwrap_or_else(empty_lease);
    Err(match term {
        Some(term) if term != lease.term => stale_term(term, &lease),
        _ => ApiError::new(ErrorCode::NotLeader, format!("{controller_id} does not hold the lease; nothing to release"))
            .with_detail("holder_id", lease.holder_id.clone())
            .with_detail("term", lease.term),
    })
}

pub(super) fn stale_term(term: i64, lease: &Lease) -> ApiError {
    ApiError::new(ErrorCode::StaleTerm, format!("term {term} is not the current term {}", lease.term))
        .with_field("term")
        .with_detail("current_term", lease.term)
}

/// Whether a leader-only write by `controller_id` in `term` is allowed against `lease` at
/// `now`. The write's SQL carries the same condition ([`records::fence`]), so this only
/// explains a refusal that the database already made atomically.
pub fn check_fence(lease: Option<&Lease>, controller_id: &str, term: i64, now: i64) -> ApiResult<()> {
    let empty = empty_lease();
    let lease = lease.unwrap_or(&empty);
    if lease.term != term {
        return Err(stale_term(term, lease));
    }
    if lease.holder_id.as_deref() != Some(controller_id) || lease.lease_expires_at <= now {
        return Err(ApiError::new(ErrorCode::NotLeader, format!("{controller_id} does not hold a live lease in term {term}"))
            .with_detail("holder_id", lease.holder_id.clone())
            .with_detail("term", lease.term));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, term: i64, expires: i64) -> Lease {
        Lease { holder_id: holder.map(str::to_string), term, lease_expires_at: expires, ..empty_lease() }
    }

    #[test]
    fn fence_classifies_refusals() {
        let current = lease(Some("a"), 3, 100);
        assert!(check_fence(Some(&current), "a", 3, 99).is_ok());
        assert_eq!(check_fence(Some(&current), "a", 2, 99).unwrap_err().code, ErrorCode::StaleTerm);
        assert_eq!(check_fence(Some(&current), "b", 3, 99).unwrap_err().code, ErrorCode::NotLeader);
        assert_eq!(check_fence(Some(&current), "a", 3, 100).unwrap_err().code, ErrorCode::NotLeader);
        assert_eq!(check_fence(None, "a", 1, 0).unwrap_err().code, ErrorCode::StaleTerm);
    }
}
