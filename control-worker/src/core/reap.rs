//! The leader's reaping (`steps.reap`, fenced by term): attempts whose heartbeat deadline
//! passed, tasks left in `planning` by a leader that went away, silent runs of canceled steps,
//! and tasks whose assigned host was lost (SPEC §11), which start over on any host. One batch,
//! every statement fenced by the leader's term; `agents.sync` runs the same statements.

use super::blobs::Blobs;
use shared::status::StepStatus;
use shared::wire::{ReapedStep, StepsReaped};

use super::clock::{Clock, Random};
use super::config::Config;
use super::db::{Db, Row, Statement, Value as DbValue, MAX_SAFE_INTEGER};
use super::error::{ApiError, ApiResult};
use super::input::Fields;
use super::lease::{check_fence, SELECT_LEASE_SQL};
use super::records::{self, fence};
use super::retry::Failure;
use super::settle::{self, AttemptEnd};
use super::{Call, Core, Reply};

/// How many lost steps one reap settles; the leader reaps again on its next tick.
pub const REAP_BATCH: i64 = 100;

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

/// The reaper's statements for the leader `controller_id` in `term` at `now`, every one
/// fenced by that term: one batch, no read before it. Within them, the step rows of the
/// settlement are at [`ReapStatements::settled`], the restarted tasks at `restarted`, the
/// requeued at `requeued`.
pub(super) struct ReapStatements {
    pub statements: Vec<Statement>,
    pub requeued: usize,
    pub restarted: usize,
    pub settled: usize,
}

pub(super) fn reap_statements(controller_id: &str, term: i64, now: i64, marker: &str, config: &Config) -> ReapStatements {
    let mut statements = vec![
        Statement::new(REQUEUE_ORPHANED_PLANNING_SQL, vec![controller_id.into(), term.into(), now.into(), PLANNING_ORPHAN_SEC.into()]),
        Statement::new(CLOSE_ABANDONED_CANCELED_RUNS_SQL, vec![controller_id.into(), term.into(), now.into()]),
    ];
    let host_lost_args: Vec<DbValue> = vec![controller_id.into(), term.into(), now.into(), config.host_lost_after_sec.into()];
    for sql in [RECORD_HOST_LOST_SQL, LOSE_RUNS_OF_LOST_HOST_SQL, RESTART_STEPS_OF_LOST_HOST_SQL, UNASSIGN_TASKS_OF_LOST_HOST_SQL] {
        statements.push(Statement::new(sql, host_lost_args.clone()));
    }
    let restarted = statements.len() - 1;
    // Steps whose account's usage limit has reset are ready again (SPEC §13).
    statements.push(super::quota::ready_after_reset(controller_id, term, now));
    statements.push(settle::mark_expired(marker, controller_id, term, now, REAP_BATCH, config.controller_liveness_sec));
    let settled = statements.len() + settle::SETTLED_STEPS_INDEX;
    statements.extend(settle::settle_marked(&AttemptEnd { failure: Failure::Lost, exit_code: None, error: None, marker, now }));
    ReapStatements { statements, requeued: 0, restarted, settled }
}

/// What one reap did, read from the rows of its statements, which ran from `offset` on.
pub(super) fn reaped(results: &[Vec<Row>], offset: usize, plan: &ReapStatements) -> ApiResult<StepsReaped> {
    let results = &results[offset..];
    let task_ids = |rows: &[Row]| rows.iter().map(|row| row.text("task_id")).collect::<Result<Vec<_>, _>>();
    let mut reaped = Vec::new();
    for row in &results[plan.settled] {
        let step_status = StepStatus::parse(&row.text("status")?).ok_or_else(|| ApiError::internal("unknown step status"))?;
        reaped.push(ReapedStep {
            step_id: row.text("step_id")?,
            run_id: Some(row.text("run_id")?),
            requeued: step_status == StepStatus::Ready,
            step_status,
        });
    }
    Ok(StepsReaped { reaped, requeued_tasks: task_ids(&results[plan.requeued])?, restarted_tasks: task_ids(&results[plan.restarted])? })
}

pub async fn reap<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let controller_id = call.principal.acting_node("controller_id", fields.opt_node_id("controller_id")?)?;
    let term = fields.i64("term", 1, MAX_SAFE_INTEGER)?;
    let marker = core.new_id("reap");
    let mut plan = reap_statements(&controller_id, term, call.now, &marker, &core.config);
    let mut statements = vec![Statement::new(SELECT_LEASE_SQL, vec![])];
    statements.append(&mut plan.statements);
    let results = core.db.batch(statements).await?;
    // Every statement is fenced: when this says no, none of them changed anything.
    let lease = records::first(&results[0], records::lease)?;
    check_fence(lease.as_ref(), &controller_id, term, call.now)?;
    Reply::ok(&reaped(&results, 1, &plan)?)
}
