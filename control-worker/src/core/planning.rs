//! The leader's claim and plan of queued tasks (`tasks.claim`, `tasks.plan`, and the same in
//! `agents.sync`), every write fenced by the leader's term.

use super::blobs::Blobs;
use serde_json::{json, Value};
use shared::status::{StepKind, SystemMode, TaskStatus};
use shared::wire::{Task, TaskDetail, TasksClaimed};

use super::clock::{Clock, Random};
use super::db::{Db, Statement, MAX_SAFE_INTEGER};
use super::error::{ApiError, ApiResult};
use super::input::{Fields, MAX_SHORT_TEXT_LEN, MAX_TEXT_LEN};
use super::lease::{check_fence, SELECT_LEASE_SQL};
use super::records::{self, fence, task_columns};
use super::system::SELECT_MODE_SQL;
use super::tasks::{
    current_step_index, task_not_found, DEFAULT_STEP_TIMEOUT_SEC, MAX_STEPS_PER_PLAN, MAX_STEP_TIMEOUT_SEC, SELECT_TASK_SQL,
    SELECT_TASK_STEPS_SQL,
};
use super::{Call, Core, Reply};

/// The most attempts a step may have.
pub const MAX_ATTEMPTS: i64 = 20;

// ?1 controller, ?2 term, ?3 now, ?4 limit, ?5 liveness window.
// A queued task is claimable when its target host (if any) is alive, every dependency has
// succeeded, and no task whose write scope may overlap its own is planning or running, or is
// queued ahead of it (so two conflicting tasks are never claimed in one batch). A task that
// starts from a dependency's result (`base_ref: task:<id>`) stays on that dependency's host and
// starts from its head commit.
const CLAIM_TASKS_SQL: &str = concat!(
    "UPDATE tasks SET status = 'planning', claimed_by = ?1, claim_term = ?2, claimed_at = ?3, updated_at = ?3, \
       assigned_host = COALESCE(assigned_host, CASE WHEN base_ref LIKE 'task:%' THEN \
         (SELECT p.assigned_host FROM tasks p WHERE p.task_id = substr(tasks.base_ref, 6)) END), \
       assigned_at = COALESCE(assigned_at, CASE WHEN base_ref LIKE 'task:%' THEN ?3 END), \
       base_commit = COALESCE(base_commit, CASE WHEN base_ref LIKE 'task:%' THEN \
         (SELECT json_extract(p.result_json, '$.head_commit') FROM tasks p WHERE p.task_id = substr(tasks.base_ref, 6)) END) \
     WHERE task_id IN ( \
         SELECT t.task_id FROM tasks t WHERE t.status = 'queued' \
           AND (t.target_host IS NULL OR EXISTS ( \
                SELECT 1 FROM controllers c WHERE c.host = t.target_host AND c.last_heartbeat_at >= ?3 - ?5)) \
           AND NOT EXISTS (SELECT 1 FROM task_dependencies d JOIN tasks p ON p.task_id = d.depends_on \
                WHERE d.task_id = t.task_id AND p.status <> 'succeeded') \
           AND NOT EXISTS (SELECT 1 FROM task_conflicts x JOIN tasks o ON o.task_id = x.other_id \
                WHERE x.task_id = t.task_id AND (o.status IN ('planning', 'running') \
                  OR (o.status = 'queued' AND (o.created_at < t.created_at OR (o.created_at = t.created_at AND o.task_id < t.task_id))))) \
         ORDER BY t.priority DESC, t.created_at, t.task_id LIMIT ?4) \
       AND status = 'queued' \
       AND (SELECT mode FROM system_state WHERE state_key = 'global') = 'running' \
       AND ",
    fence!("1", "2", "3"),
    " RETURNING ",
    task_columns!()
);

// A queued task one of whose dependencies failed, was canceled or is blocked can never start:
// it is blocked, naming the first such dependency. ?1 controller, ?2 term, ?3 now.
const BLOCK_TASKS_SQL: &str = concat!(
    "UPDATE tasks SET status = 'blocked', finished_at = ?3, updated_at = ?3, status_reason = ( \
       SELECT 'dependency ' || COALESCE(p.task_key, p.task_id) || ' (' || p.task_id || ') is ' || p.status \
       FROM task_dependencies d JOIN tasks p ON p.task_id = d.depends_on \
       WHERE d.task_id = tasks.task_id AND p.status IN ('failed', 'canceled', 'blocked') ORDER BY d.position LIMIT 1) \
     WHERE status = 'queued' AND task_id IN (SELECT d.task_id FROM task_dependencies d JOIN tasks p ON p.task_id = d.depends_on \
       WHERE p.status IN ('failed', 'canceled', 'blocked')) AND ",
    fence!("1", "2", "3"),
    " RETURNING task_id"
);

// ?1 controller, ?2 term, ?3 now, ?4 plan id, ?5 provider, ?6 strategy, ?7 base ref, ?8 branch, ?9 task.
const START_PLANNED_TASK_SQL: &str = concat!(
    "UPDATE tasks SET status = 'running', plan_id = ?4, planner_provider = ?5, planning_strategy = ?6, \
       base_ref = COALESCE(?7, base_ref), branch_name = COALESCE(?8, branch_name), started_at = ?3, updated_at = ?3 \
     WHERE task_id = ?9 AND status = 'planning' AND claimed_by = ?1 AND claim_term = ?2 AND ",
    fence!("1", "2", "3"),
    " RETURNING task_id"
);

// Inserts every planned step in one statement, only if this request's plan id was just set.
// A merge step's `metadata.merge` lists the branches it merges: the task's dependencies as they
// ended (they all succeeded before the task could be claimed, so their results are final), in
// `depends_on` order.
const INSERT_STEPS_SQL: &str = "INSERT INTO steps (step_id, task_id, step_index, step_kind, worker_kind, title, command, prompt, \
       timeout_sec, status, attempt, max_attempts, target_host, task_priority, created_at, ready_at, metadata_json) \
     SELECT json_extract(s.value, '$.step_id'), t.task_id, json_extract(s.value, '$.step_index'), \
       json_extract(s.value, '$.step_kind'), json_extract(s.value, '$.worker_kind'), json_extract(s.value, '$.title'), \
       json_extract(s.value, '$.command'), json_extract(s.value, '$.prompt'), json_extract(s.value, '$.timeout_sec'), \
       CASE WHEN json_extract(s.value, '$.step_index') = 0 THEN 'ready' ELSE 'pending' END, 0, \
       json_extract(s.value, '$.max_attempts'), t.target_host, t.priority, ?3, \
       CASE WHEN json_extract(s.value, '$.step_index') = 0 THEN ?3 END, \
       CASE WHEN json_extract(s.value, '$.step_kind') = 'merge' THEN json_set(json_extract(s.value, '$.metadata_json'), '$.merge', \
         (SELECT json_group_array(json_object('task_id', p.task_id, 'key', p.task_key, 'branch', p.branch_name, \
             'head_commit', json_extract(p.result_json, '$.head_commit'), 'host', p.assigned_host, \
             'pushed_to', json_extract(p.result_json, '$.pushed_to')) ORDER BY d.position) \
          FROM task_dependencies d JOIN tasks p ON p.task_id = d.depends_on WHERE d.task_id = t.task_id)) \
       ELSE json_extract(s.value, '$.metadata_json') END \
     FROM tasks t, json_each(?2) s WHERE t.task_id = ?1 AND t.plan_id = ?4";

pub async fn claim<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let controller_id = call.principal.acting_node("controller_id", fields.opt_node_id("controller_id")?)?;
    call.principal.acting_host(fields.str("host", MAX_SHORT_TEXT_LEN)?)?;
    let term = fields.i64("term", 1, MAX_SAFE_INTEGER)?;
    let limit = fields.opt_i64("limit", 1, 20)?.unwrap_or(1);
    let mut statements = vec![Statement::new(SELECT_LEASE_SQL, vec![]), Statement::new(SELECT_MODE_SQL, vec![])];
    statements.extend(claim_tasks_statements(&controller_id, term, limit, core.config.controller_liveness_sec, call.now));
    let results = core.db.batch(statements).await?;
    let lease = records::first(&results[0], records::lease)?;
    check_fence(lease.as_ref(), &controller_id, term, call.now)?;
    let mode = records::first(&results[1], records::mode)?.unwrap_or(SystemMode::Running);
    let mut tasks = records::all(&results[1 + CLAIM_TASKS_STATEMENTS], records::task)?;
    tasks.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.created_at.cmp(&b.created_at)).then(a.task_id.cmp(&b.task_id)));
    Reply::ok(&TasksClaimed { tasks, mode, term })
}

/// A validated plan of one task.
pub(super) struct PlanInput {
    pub planner_provider: String,
    pub planning_strategy: String,
    pub base_ref: Option<String>,
    pub branch_name: Option<String>,
    /// The steps as JSON for the one insert.
    pub steps_json: String,
}

pub(super) fn plan_input(fields: &Fields<'_>, task_id: &str) -> ApiResult<PlanInput> {
    let planner_provider = fields.str("planner_provider", 128)?;
    let planning_strategy = fields.str("planning_strategy", 128)?;
    let base_ref = fields.opt_str("base_ref", 255)?;
    let branch_name = fields.opt_str("branch_name", 255)?;
    let steps_name = fields.name("steps");
    let planned = fields.opt_array("steps")?.ok_or_else(|| ApiError::invalid_field(&steps_name, "is required: an array of steps"))?;
    if planned.is_empty() || planned.len() > MAX_STEPS_PER_PLAN {
        return Err(ApiError::invalid_field(&steps_name, &format!("must have from 1 to {MAX_STEPS_PER_PLAN} entries")));
    }
    let mut steps_json = Vec::with_capacity(planned.len());
    for (index, item) in planned.iter().enumerate() {
        let name = format!("{steps_name}[{index}]");
        let Value::Object(map) = item else { return Err(ApiError::invalid_field(&name, "must be an object")) };
        let step = Fields::nested(map, name);
        let step_kind = step.enumerated("step_kind", StepKind::parse, &StepKind::choices())?;
        let worker_kind = step.str("worker_kind", 64)?;
        let title = step.str("title", MAX_SHORT_TEXT_LEN)?;
        let command = step.opt_str("command", MAX_TEXT_LEN)?;
        let prompt = step.opt_str("prompt", MAX_TEXT_LEN)?;
        match step_kind {
            StepKind::Agent if prompt.is_none() => {
                return Err(ApiError::invalid_field(&step.name("prompt"), "is required for agent steps"))
            }
            StepKind::Shell | StepKind::Test if command.is_none() => {
                return Err(ApiError::invalid_field(&step.name("command"), "is required for shell and test steps"))
            }
            _ => {}
        }
        let timeout_sec = step.opt_i64("timeout_sec", 1, MAX_STEP_TIMEOUT_SEC)?.unwrap_or(DEFAULT_STEP_TIMEOUT_SEC);
        let max_attempts = step.opt_i64("max_attempts", 1, MAX_ATTEMPTS)?.unwrap_or(1);
        let metadata = step.opt_object("metadata")?.unwrap_or_default();
        steps_json.push(json!({
            "step_id": format!("{task_id}.s{index}"),
            "step_index": index,
            "step_kind": step_kind.as_str(),
            "worker_kind": worker_kind,
            "title": title,
            "command": command,
            "prompt": prompt,
            "timeout_sec": timeout_sec,
            "max_attempts": max_attempts,
            "metadata_json": Value::Object(metadata).to_string(),
        }));
    }
    Ok(PlanInput { planner_provider, planning_strategy, base_ref, branch_name, steps_json: Value::Array(steps_json).to_string() })
}

/// The plan's statements, fenced by the leader's term: the task starts (a row when it did: it
/// was claimed by this leader in this term and is still planning), then its steps are
/// inserted, only if that start was this plan's.
pub(super) fn plan_statements(controller_id: &str, term: i64, task_id: &str, plan: &PlanInput, plan_id: &str, now: i64) -> Vec<Statement> {
    vec![
        Statement::new(
            START_PLANNED_TASK_SQL,
            vec![
                controller_id.into(),
                term.into(),
                now.into(),
                plan_id.into(),
                plan.planner_provider.clone().into(),
                plan.planning_strategy.clone().into(),
                plan.base_ref.clone().into(),
                plan.branch_name.clone().into(),
                task_id.into(),
            ],
        ),
        Statement::new(INSERT_STEPS_SQL, vec![task_id.into(), plan.steps_json.clone().into(), now.into(), plan_id.into()]),
    ]
}

/// Statements of [`claim_tasks_statements`]: the claimed tasks' rows are the last one's.
pub const CLAIM_TASKS_STATEMENTS: usize = 2;

/// The leader's claim of up to `limit` queued tasks, fenced by its term, after blocking the
/// tasks whose dependencies failed; the claimed tasks' rows are the last statement's.
pub(super) fn claim_tasks_statements(controller_id: &str, term: i64, limit: i64, liveness_sec: i64, now: i64) -> Vec<Statement> {
    vec![
        Statement::new(BLOCK_TASKS_SQL, vec![controller_id.into(), term.into(), now.into()]),
        Statement::new(CLAIM_TASKS_SQL, vec![controller_id.into(), term.into(), now.into(), limit.into(), liveness_sec.into()]),
    ]
}

/// Why a plan was not applied, from the task as it stands.
fn plan_refused(task: &Task) -> ApiError {
    let task_id = &task.task_id;
    ApiError::invalid_transition(match task.status {
        TaskStatus::Planning => format!(
            "task {task_id} was claimed by {} in term {}, not by this caller in this term",
            task.claimed_by.as_deref().unwrap_or("nobody"),
            task.claim_term.map(|term| term.to_string()).unwrap_or_else(|| "none".into())
        ),
        status => format!("task {task_id} is {status}; only a task in planning can be planned"),
    })
    .with_detail("status", task.status.as_str())
}

pub async fn plan<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let task_id = call.param("task_id");
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let controller_id = call.principal.acting_node("controller_id", fields.opt_node_id("controller_id")?)?;
    let term = fields.i64("term", 1, MAX_SAFE_INTEGER)?;
    let plan = plan_input(&fields, task_id)?;
    let plan_id = core.new_id("plan");
    let mut statements = vec![Statement::new(SELECT_LEASE_SQL, vec![])];
    statements.extend(plan_statements(&controller_id, term, task_id, &plan, &plan_id, call.now));
    statements.push(Statement::new(SELECT_TASK_SQL, vec![task_id.into()]));
    statements.push(Statement::new(SELECT_TASK_STEPS_SQL, vec![task_id.into()]));
    let results = core.db.batch(statements).await?;
    let task = records::first(&results[3], records::task)?.ok_or_else(|| task_not_found(task_id))?;
    if results[1].is_empty() {
        let lease = records::first(&results[0], records::lease)?;
        check_fence(lease.as_ref(), &controller_id, term, call.now)?;
        return Err(plan_refused(&task));
    }
    let steps = records::all(&results[4], records::step)?;
    Reply::ok(&TaskDetail {
        current_step_index: current_step_index(&steps),
        steps,
        runs: Vec::new(),
        history: Vec::new(),
        // Just planned: no step has run.
        report: None,
        usage: None,
        task,
    })
}
