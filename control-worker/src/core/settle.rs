//! Settling failed and lost step attempts in one batch, with no read before the write.
//!
//! A settlement first *marks* the attempts it settles: one statement writes a fresh marker into
//! their `claim_token`, and only while they are active (a compare-and-set on the attempt: this
//! worker's current run, or the leader's expired ones). The statements after it act only on
//! marked rows, so a settlement that lost a race to another one changes nothing.
//!
//! What a marked step becomes is the retry policy's ([`super::retry`]): its answer depends on
//! the attempt counters only through `attempt < max_attempts`, so both of its answers are
//! computed here and the SQL picks one per row. That is what lets `steps.fail`, the reaper and
//! `agents.sync` settle without first reading the step.

use super::db::{Statement, Value};
use super::records::fence;
use super::retry::{outcomes, Failure};
use super::rounds;

// ?1 marker, ?2 step, ?3 run, ?4 worker: this worker's current, active attempt.
const MARK_ATTEMPT_SQL: &str = "UPDATE steps SET claim_token = ?1 \
     WHERE step_id = ?2 AND current_run_id = ?3 AND worker_id = ?4 AND status IN ('claimed', 'running')";

// ?1 marker, ?2 controller, ?3 term, ?4 now, ?5 limit, ?6 controller liveness. Attempts whose
// heartbeat deadline passed, fenced by the leader's term. A step whose task's host is down
// altogether (no live controller on it) is left to the host-lost rule of the reaper: only its
// host may run it, and failing it for want of a heartbeat would end the task before that host
// could come back.
const MARK_EXPIRED_SQL: &str = concat!(
    "UPDATE steps SET claim_token = ?1 WHERE step_id IN ( \
         SELECT s.step_id FROM steps s WHERE s.status IN ('claimed', 'running') AND s.heartbeat_deadline_at <= ?4 \
           AND EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = s.task_id AND (t.assigned_host IS NULL \
             OR EXISTS (SELECT 1 FROM controllers c WHERE c.host = t.assigned_host AND c.last_heartbeat_at >= ?4 - ?6))) \
         ORDER BY s.heartbeat_deadline_at, s.step_id LIMIT ?5) \
       AND status IN ('claimed', 'running') AND ",
    fence!("2", "3", "4")
);

/// What a lost attempt's step and run record as their error (computed from the old row).
macro_rules! lost_message {
    ($step:literal) => {
        concat!("'heartbeat deadline ' || ", $step, "heartbeat_deadline_at || ' passed; attempt ' || ", $step, "attempt || ' lost'")
    };
}

// ?1 marker, ?2 now, ?3 run status, ?4 exit code, ?5 error (NULL: the lost-attempt message).
const SETTLE_MARKED_RUNS_SQL: &str = concat!(
    "UPDATE runs SET status = ?3, finished_at = ?2, exit_code = COALESCE(?4, exit_code), \
       error = COALESCE(?5, (SELECT ",
    lost_message!("s."),
    " FROM steps s WHERE s.step_id = runs.step_id)) \
     WHERE status IN ('claimed', 'running') \
       AND run_id IN (SELECT current_run_id FROM steps WHERE claim_token = ?1 AND status IN ('claimed', 'running'))"
);

// ?1 marker, ?2 now, ?3 step status while attempts remain, ?4 after the last attempt, ?5 exit
// code, ?6 error (NULL: the lost-attempt message). A step put back to `ready` forgets its
// worker and run; its attempt count stays, so the next run id is new.
const SETTLE_MARKED_STEPS_SQL: &str = concat!(
    "UPDATE steps SET status = d.next, \
       worker_id = CASE WHEN d.next = 'ready' THEN NULL ELSE worker_id END, \
       current_run_id = CASE WHEN d.next = 'ready' THEN NULL ELSE current_run_id END, \
       ready_at = CASE WHEN d.next = 'ready' THEN ?2 ELSE ready_at END, \
       finished_at = CASE WHEN d.next = 'ready' THEN NULL ELSE ?2 END, \
       heartbeat_deadline_at = NULL, exit_code = ?5, error = COALESCE(?6, ",
    lost_message!(""),
    ") \
     FROM (SELECT step_id AS marked_id, CASE WHEN attempt < max_attempts THEN ?3 ELSE ?4 END AS next \
           FROM steps WHERE claim_token = ?1 AND status IN ('claimed', 'running')) AS d \
     WHERE steps.step_id = d.marked_id \
     RETURNING step_id, status, step_id || '.a' || attempt AS run_id"
);

// ?1 marker, ?2 now, ?3 task status after the last attempt. A marked step that was not put back
// to `ready` ends its task, saying which step and why — unless the task goes on with a ready
// step (the next agent round).
const END_TASKS_OF_MARKED_SQL: &str = "UPDATE tasks SET status = ?3, finished_at = ?2, updated_at = ?2, \
       status_reason = (SELECT 'step ' || s.step_index || ' ' || s.status || ': ' || s.error FROM steps s \
         WHERE s.task_id = tasks.task_id AND s.claim_token = ?1) \
     WHERE ?3 IS NOT NULL AND status = 'running' \
       AND task_id IN (SELECT task_id FROM steps WHERE claim_token = ?1 AND status NOT IN ('ready', 'waiting_quota')) \
       AND NOT EXISTS (SELECT 1 FROM steps n WHERE n.task_id = tasks.task_id AND n.status = 'ready')";

// ?1 marker, ?2 now.
const CANCEL_PENDING_OF_MARKED_SQL: &str = "UPDATE steps SET status = 'canceled', finished_at = ?2 \
     WHERE status = 'pending' \
       AND task_id IN (SELECT task_id FROM steps WHERE claim_token = ?1 AND status NOT IN ('ready', 'waiting_quota'))";

/// How the marked attempts ended.
#[derive(Clone, Copy)]
pub struct AttemptEnd<'a> {
    pub failure: Failure,
    pub exit_code: Option<i64>,
    /// `None` for lost attempts: each records its own deadline and attempt.
    pub error: Option<&'a str>,
    /// The fresh marker of this settlement.
    pub marker: &'a str,
    pub now: i64,
}

/// Marks one attempt: `worker`'s current, active run `run_id` of `step_id`.
pub fn mark_attempt(marker: &str, step_id: &str, run_id: &str, worker_id: &str) -> Statement {
    Statement::new(MARK_ATTEMPT_SQL, vec![marker.into(), step_id.into(), run_id.into(), worker_id.into()])
}

/// Marks up to `limit` attempts whose heartbeat deadline passed, for the leader of `term`.
pub fn mark_expired(marker: &str, controller_id: &str, term: i64, now: i64, limit: i64, liveness_sec: i64) -> Statement {
    Statement::new(MARK_EXPIRED_SQL, vec![marker.into(), controller_id.into(), term.into(), now.into(), limit.into(), liveness_sec.into()])
}

/// The statements that settle every attempt marked with `end.marker`. The second of them
/// returns one row per settled step: `step_id`, its new `status` and the settled `run_id`.
pub fn settle_marked(end: &AttemptEnd<'_>) -> Vec<Statement> {
    let outcomes = outcomes(end.failure);
    let (remaining, last) = (outcomes.while_attempts_remain, outcomes.last_attempt);
    let marker: Value = end.marker.into();
    let error: Value = end.error.into();
    let mut statements = vec![
        Statement::new(
            SETTLE_MARKED_RUNS_SQL,
            vec![marker.clone(), end.now.into(), last.run_status.as_str().into(), end.exit_code.into(), error.clone()],
        ),
        Statement::new(
            SETTLE_MARKED_STEPS_SQL,
            vec![
                marker.clone(),
                end.now.into(),
                remaining.step_status.as_str().into(),
                last.step_status.as_str().into(),
                end.exit_code.into(),
                error,
            ],
        ),
    ];
    // The failed attempt's round is over: its pending steps are canceled, then the next round
    // may grow (after them, so it is not canceled with them), then the tasks that did not go on end.
    statements.push(Statement::new(CANCEL_PENDING_OF_MARKED_SQL, vec![marker.clone(), end.now.into()]));
    statements.extend(rounds::grow_after_failure(end.marker, end.now));
    statements
        .push(Statement::new(END_TASKS_OF_MARKED_SQL, vec![marker, end.now.into(), last.task_status.map(|status| status.as_str()).into()]));
    statements
}

/// Index, within [`settle_marked`]'s statements, of the one returning the settled steps.
pub const SETTLED_STEPS_INDEX: usize = 1;
