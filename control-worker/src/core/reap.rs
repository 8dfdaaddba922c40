//! The leader's reaping (`steps.reap`, fenced by term): attempts whose heartbeat deadline
//! passed, tasks left in `planning` by a leader that went away, silent runs of canceled steps,
//! and tasks whose assigned host was lost (SPEC §11), which start over on any host.

use shared::wire::{ReapedStep, StepsReaped};

use super::clock::{Clock, Random};
use super::db::{Db, Statement, Value as DbValue, MAX_SAFE_INTEGER};
use super::error::ApiResult;
use super::input::Fields;
use super::lease::{check_fence, SELECT_LEASE_SQL};
use super::records::{self, fence, step_columns};
use super::retry::{settle, Failure};
use super::steps::{settlement_statements, AttemptEnd};
use super::{Call, Core, Reply};

/// How many lost steps one reap settles; the leader reaps again on its next tick.
pub const REAP_BATCH: i64 = 100;

// ?1 now, ?2 limit, ?3 controller liveness. A step whose task's host is down altogether (no
// live controller on it) is left to the host-lost rule below: only its host may run it, and
// failing it for want of a heartbeat would end the task before that host could come back.
const EXPIRED_STEPS_SQL: &str = concat!(
    "SELECT ",
    step_columns!(),
    " FROM steps WHERE status IN ('claimed', 'running') AND heartbeat_deadline_at <= ?1 \
       AND EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = steps.task_id AND (t.assigned_host IS NULL \
         OR EXISTS (SELECT 1 FROM controllers c WHERE c.host = t.assigned_host AND c.last_heartbeat_at >= ?1 - ?3))) \
     ORDER BY heartbeat_deadline_at, step_id LIMIT ?2"
);

/// Running tasks whose assigned host has been silent for `host_lost_after_sec` (?4) at ?3,
/// and that may move (no `target_host`). Every statement of the host-lost rule selects the
/// same set; the last one changes it.
macro_rules! lost_host_tasks {
    () => {
        "SELECT t.task_id FROM tasks t WHERE t.status = 'running' AND t.assigned_host IS NOT NULL \
           AND t.target_host IS NULL AND t.assigned_at <= ?3 - ?4 \
           AND NOT EXISTS (SELECT 1 FROM controllers c WHERE c.host = t.assigned_host AND c.last_heartbeat_at > ?3 - ?4)"
    };
}

// The host-lost rule (§11), ?1 controller, ?2 term, ?3 now, ?4 host_lost_after_sec: the
// history says why; the lost host's runs are lost (a late write from it is refused); every
// step starts over, the first ready, keeping its attempt count so run ids stay unique and
// granting as many attempts again; the task is unassigned, its base commit kept.
const RECORD_HOST_LOST_SQL: &str = concat!(
    "INSERT INTO task_events (task_id, kind, message, created_at) \
     SELECT t.task_id, 'host_lost', 'host ' || t.assigned_host || ' lost (last heard from at ' || \
       COALESCE((SELECT MAX(c.last_heartbeat_at) FROM controllers c WHERE c.host = t.assigned_host), 'never') || \
       '); started over from ' || COALESCE(t.base_commit, t.base_ref) || ' on any host', ?3 \
     FROM tasks t WHERE t.task_id IN (",
    lost_host_tasks!(),
    ") AND ",
    fence!("1", "2", "3")
);
const LOSE_RUNS_OF_LOST_HOST_SQL: &str = concat!(
    "UPDATE runs SET status = 'lost', finished_at = ?3, error = 'its host was lost; the task started over on another host' \
     WHERE status IN ('claimed', 'running') AND task_id IN (",
    lost_host_tasks!(),
    ") AND ",
    fence!("1", "2", "3")
);
const RESTART_STEPS_OF_LOST_HOST_SQL: &str = concat!(
    "UPDATE steps SET status = CASE WHEN step_index = 0 THEN 'ready' ELSE 'pending' END, \
       ready_at = CASE WHEN step_index = 0 THEN ?3 END, max_attempts = max_attempts + attempt, \
       worker_id = NULL, current_run_id = NULL, claim_token = NULL, heartbeat_deadline_at = NULL, \
       started_at = NULL, finished_at = NULL, exit_code = NULL, summary = NULL, error = NULL \
     WHERE task_id IN (",
    lost_host_tasks!(),
    ") AND ",
    fence!("1", "2", "3")
);
const UNASSIGN_TASKS_OF_LOST_HOST_SQL: &str = concat!(
    "UPDATE tasks SET status_reason = 'started over: host ' || assigned_host || ' was lost', \
       assigned_host = NULL, assigned_at = NULL, result_json = NULL, updated_at = ?3 \
     WHERE task_id IN (",
    lost_host_tasks!(),
    ") AND ",
    fence!("1", "2", "3"),
    " RETURNING task_id"
);
/// A task still `planning` this long after its claim was orphaned by its leader: the scheduler
/// claims and plans in one pass, within milliseconds.
pub const PLANNING_ORPHAN_SEC: i64 = 30;
// ?1 controller, ?2 term, ?3 now, ?4 orphan age. A claim from an earlier term is orphaned at
// once; one from this term when it is old, because a leader restarted under the same id renews
// its predecessor's term and would otherwise never see the task again.
const REQUEUE_ORPHANED_PLANNING_SQL: &str = concat!(
    "UPDATE tasks SET status = 'queued', claimed_by = NULL, claim_term = NULL, claimed_at = NULL, updated_at = ?3 \
     WHERE status = 'planning' AND (claim_term IS NULL OR claim_term < ?2 OR claimed_at <= ?3 - ?4) AND ",
    fence!("1", "2", "3"),
    " RETURNING task_id"
);
// Runs of canceled steps whose worker never reported, once the step's deadline has passed.
const CLOSE_ABANDONED_CANCELED_RUNS_SQL: &str = concat!(
    "UPDATE runs SET status = 'canceled', finished_at = ?3, error = 'canceled; the worker did not report before its heartbeat deadline' \
     WHERE status IN ('claimed', 'running') AND run_id IN ( \
         SELECT current_run_id FROM steps WHERE status = 'canceled' AND heartbeat_deadline_at <= ?3) AND ",
    fence!("1", "2", "3")
);

pub async fn reap<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let controller_id = call.principal.acting_node("controller_id", fields.opt_node_id("controller_id")?)?;
    let term = fields.i64("term", 1, MAX_SAFE_INTEGER)?;
    let results = core
        .db
        .batch(vec![
            Statement::new(SELECT_LEASE_SQL, vec![]),
            Statement::new(EXPIRED_STEPS_SQL, vec![call.now.into(), REAP_BATCH.into(), core.config.controller_liveness_sec.into()]),
        ])
        .await?;
    let lease = records::first(&results[0], records::lease)?;
    check_fence(lease.as_ref(), &controller_id, term, call.now)?;
    let expired = records::all(&results[1], records::step)?;
    let fencing = Some((controller_id.as_str(), term));
    let mut statements = vec![
        Statement::new(SELECT_LEASE_SQL, vec![]),
        Statement::new(
            REQUEUE_ORPHANED_PLANNING_SQL,
            vec![controller_id.clone().into(), term.into(), call.now.into(), PLANNING_ORPHAN_SEC.into()],
        ),
        Statement::new(CLOSE_ABANDONED_CANCELED_RUNS_SQL, vec![controller_id.clone().into(), term.into(), call.now.into()]),
    ];
    let host_lost_args: Vec<DbValue> =
        vec![controller_id.clone().into(), term.into(), call.now.into(), core.config.host_lost_after_sec.into()];
    for sql in [RECORD_HOST_LOST_SQL, LOSE_RUNS_OF_LOST_HOST_SQL, RESTART_STEPS_OF_LOST_HOST_SQL, UNASSIGN_TASKS_OF_LOST_HOST_SQL] {
        statements.push(Statement::new(sql, host_lost_args.clone()));
    }
    let restarted_at = statements.len() - 1;
    let mut settled_at = Vec::new();
    for step in &expired {
        let Some(run_id) = step.current_run_id.as_deref() else { continue };
        let settlement = settle(step.attempt, step.max_attempts, Failure::Lost);
        let error = format!("heartbeat deadline {} passed; attempt {} lost", step.heartbeat_deadline_at.unwrap_or(0), step.attempt);
        let marker = core.new_id("reap");
        settled_at.push((statements.len(), step, run_id, settlement));
        statements.extend(settlement_statements(
            step,
            run_id,
            settlement,
            &AttemptEnd { exit_code: None, error: &error, marker: &marker, now: call.now },
            fencing,
        ));
    }
    let results = core.db.batch(statements).await?;
    let lease = records::first(&results[0], records::lease)?;
    check_fence(lease.as_ref(), &controller_id, term, call.now)?;
    let requeued_tasks = results[1].iter().map(|row| row.text("task_id")).collect::<Result<Vec<_>, _>>()?;
    let restarted_tasks = results[restarted_at].iter().map(|row| row.text("task_id")).collect::<Result<Vec<_>, _>>()?;
    let reaped = settled_at
        .into_iter()
        // The compare-and-set returns the step only when this reap settled it.
        .filter(|(index, ..)| !results[*index].is_empty())
        .map(|(_, step, run_id, settlement)| ReapedStep {
            step_id: step.step_id.clone(),
            run_id: Some(run_id.to_string()),
            requeued: settlement.requeued(),
            step_status: settlement.step_status,
        })
        .collect();
    Reply::ok(&StepsReaped { reaped, requeued_tasks, restarted_tasks })
}
