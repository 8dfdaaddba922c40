//! Task routes: create (with Idempotency-Key), list, read, cancel, and the leader's claim and
//! plan (both fenced by term), plus reading a task's logs.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::ids::{branch_name_for, repo_location};
use shared::status::{DeliveryMode, LogStream, StepKind, StepStatus, SystemMode, TaskStatus, TaskType};
use shared::wire::{LogPage, Step, Task, TaskCanceled, TaskCreated, TaskDetail, TaskPage, TasksClaimed, WaitingReason};
use shared::ErrorCode;

use super::auth::encode_hex;
use super::clock::{Clock, Random};
use super::db::{Db, Statement, MAX_SAFE_INTEGER};
use super::error::{ApiError, ApiResult};
use super::input::{parse_query, query_enum, query_i64, query_param, Fields, MAX_SHORT_TEXT_LEN, MAX_TEXT_LEN};
use super::lease::{check_fence, SELECT_LEASE_SQL};
use super::records::{self, fence, log_chunk_columns, run_columns, step_columns, task_columns, task_event_columns};
use super::system::SELECT_MODE_SQL;
use super::{Call, Core, Reply};

pub const DEFAULT_PRIORITY: i64 = 50;
pub const DEFAULT_BASE_REF: &str = "HEAD";
/// A week: the longest a step may run.
pub const MAX_STEP_TIMEOUT_SEC: i64 = 604_800;
pub const MAX_STEPS_PER_PLAN: usize = 50;
pub const DEFAULT_STEP_TIMEOUT_SEC: i64 = 1_800;

// `constraints.target_host` assigns the task to its host before any claim (§11).
const INSERT_TASK_SQL: &str = concat!(
    "INSERT INTO tasks (task_id, repo, task_type, title, goal, priority, status, constraints_json, acceptance_json, \
       metadata_json, target_host, base_ref, branch_name, idempotency_key, request_fingerprint, created_at, updated_at, \
       assigned_host, assigned_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?10, \
       CASE WHEN ?10 IS NULL THEN NULL ELSE ?15 END) \
     ON CONFLICT (idempotency_key) DO NOTHING \
     RETURNING ",
    task_columns!()
);

const SELECT_BY_IDEMPOTENCY_KEY_SQL: &str =
    concat!("SELECT ", task_columns!(), ", request_fingerprint FROM tasks WHERE idempotency_key = ?1");

pub const SELECT_TASK_SQL: &str = concat!("SELECT ", task_columns!(), " FROM tasks WHERE task_id = ?1");
const SELECT_TASK_STEPS_SQL: &str = concat!("SELECT ", step_columns!(), " FROM steps WHERE task_id = ?1 ORDER BY step_index");
const SELECT_TASK_RUNS_SQL: &str = concat!("SELECT ", run_columns!(), " FROM runs WHERE task_id = ?1 ORDER BY claimed_at, run_id");
const SELECT_TASK_EVENTS_SQL: &str = concat!("SELECT ", task_event_columns!(), " FROM task_events WHERE task_id = ?1 ORDER BY event_id");
// When the task's assigned host was last heard from (any controller on it).
const ASSIGNED_HOST_LAST_SEEN_SQL: &str = "SELECT MAX(c.last_heartbeat_at) AS last_heartbeat_at FROM controllers c \
     WHERE c.host = (SELECT assigned_host FROM tasks WHERE task_id = ?1)";

// ?1 status or NULL, ?2 cursor created_at or NULL, ?3 cursor task_id, ?4 limit. Newest first.
const LIST_TASKS_SQL: &str = concat!(
    "SELECT ",
    task_columns!(),
    " FROM tasks WHERE (?1 IS NULL OR status = ?1) \
       AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND task_id < ?3)) \
     ORDER BY created_at DESC, task_id DESC LIMIT ?4"
);

const CANCEL_TASK_SQL: &str = "UPDATE tasks SET status = 'canceled', finished_at = ?2, updated_at = ?2, status_reason = ?3 \
     WHERE task_id = ?1 AND status IN ('queued', 'planning', 'running') RETURNING task_id";
const ACTIVE_RUNS_OF_TASK_SQL: &str = "SELECT current_run_id FROM steps WHERE task_id = ?1 AND status IN ('claimed', 'running')";
// Steps in flight keep their run and deadline: the worker learns of the cancel from its next
// heartbeat and reports the run; the reaper settles the run if it never does.
const CANCEL_STEPS_SQL: &str = "UPDATE steps SET status = 'canceled', finished_at = ?2 \
     WHERE task_id = ?1 AND status IN ('pending', 'ready', 'claimed', 'running') \
       AND (SELECT status FROM tasks WHERE task_id = ?1) = 'canceled'";

// ?1 controller, ?2 term, ?3 now, ?4 limit, ?5 liveness window.
const CLAIM_TASKS_SQL: &str = concat!(
    "UPDATE tasks SET status = 'planning', claimed_by = ?1, claim_term = ?2, claimed_at = ?3, updated_at = ?3 \
     WHERE task_id IN ( \
         SELECT t.task_id FROM tasks t WHERE t.status = 'queued' \
           AND (t.target_host IS NULL OR EXISTS ( \
                SELECT 1 FROM controllers c WHERE c.host = t.target_host AND c.last_heartbeat_at >= ?3 - ?5)) \
         ORDER BY t.priority DESC, t.created_at, t.task_id LIMIT ?4) \
       AND status = 'queued' \
       AND (SELECT mode FROM system_state WHERE state_key = 'global') = 'running' \
       AND ",
    fence!("1", "2", "3"),
    " RETURNING ",
    task_columns!()
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
const INSERT_STEPS_SQL: &str = "INSERT INTO steps (step_id, task_id, step_index, step_kind, worker_kind, title, command, prompt, \
       timeout_sec, status, attempt, max_attempts, target_host, task_priority, created_at, ready_at, metadata_json) \
     SELECT json_extract(s.value, '$.step_id'), t.task_id, json_extract(s.value, '$.step_index'), \
       json_extract(s.value, '$.step_kind'), json_extract(s.value, '$.worker_kind'), json_extract(s.value, '$.title'), \
       json_extract(s.value, '$.command'), json_extract(s.value, '$.prompt'), json_extract(s.value, '$.timeout_sec'), \
       CASE WHEN json_extract(s.value, '$.step_index') = 0 THEN 'ready' ELSE 'pending' END, 0, \
       json_extract(s.value, '$.max_attempts'), t.target_host, t.priority, ?3, \
       CASE WHEN json_extract(s.value, '$.step_index') = 0 THEN ?3 END, json_extract(s.value, '$.metadata_json') \
     FROM tasks t, json_each(?2) s WHERE t.task_id = ?1 AND t.plan_id = ?4";

const TASK_EXISTS_SQL: &str = "SELECT task_id FROM tasks WHERE task_id = ?1";
const READ_LOGS_SQL: &str = concat!(
    "SELECT ",
    log_chunk_columns!(),
    " FROM log_chunks WHERE task_id = ?1 AND cursor > ?2 AND (?3 IS NULL OR step_id = ?3) \
       AND (?4 IS NULL OR run_id = ?4) AND (?5 IS NULL OR stream = ?5) ORDER BY cursor LIMIT ?6"
);

fn task_not_found(task_id: &str) -> ApiError {
    let shown = super::auth::shown(task_id);
    ApiError::new(ErrorCode::TaskNotFound, format!("no task {shown}")).with_detail("task_id", shown)
}

pub async fn create<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let repo = fields.str("repo", MAX_SHORT_TEXT_LEN)?;
    if repo_location(&repo).is_none() {
        return Err(ApiError::invalid_field(
            "repo",
            "must be an absolute path on the hosts or a git URL (https://, ssh://, file://, or user@host:path)",
        ));
    }
    let task_type = fields.enumerated("task_type", TaskType::parse, &TaskType::choices())?;
    let title = fields.str("title", MAX_SHORT_TEXT_LEN)?;
    let goal = fields.str("goal", MAX_TEXT_LEN)?;
    let priority = fields.opt_i64("priority", 0, 1_000_000)?.unwrap_or(DEFAULT_PRIORITY);
    let constraints = fields.opt_object("constraints")?.unwrap_or_default();
    let constraint_fields = Fields::nested(&constraints, "constraints".into());
    let target_host = constraint_fields.opt_str("target_host", 255)?;
    let base_ref = constraint_fields.opt_str("base_ref", 255)?.unwrap_or_else(|| DEFAULT_BASE_REF.into());
    // Read by the planner as each step's timeout; checked here so a bad value fails at once.
    constraint_fields.opt_i64("timeout_sec", 1, MAX_STEP_TIMEOUT_SEC)?;
    // Read by the planner (a final deliver step) and by the runner (the remote).
    constraint_fields.opt_enumerated("deliver", DeliveryMode::parse, &DeliveryMode::choices())?;
    constraint_fields.opt_str("remote", MAX_SHORT_TEXT_LEN)?;
    let acceptance = fields.opt_string_list("acceptance", 50, MAX_TEXT_LEN)?.unwrap_or_default();
    let metadata = fields.opt_object("metadata")?.unwrap_or_default();
    Fields::nested(&metadata, "metadata".into()).opt_str("requested_by", 256)?;
    let idempotency_key = match call.request.header("idempotency-key") {
        None => None,
        Some(key) if !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()) => Some(key.to_string()),
        Some(_) => return Err(ApiError::invalid_field("Idempotency-Key", "must be 1-255 visible ASCII characters")),
    };
    // serde_json maps are sorted by key, so equal bodies give equal fingerprints.
    let fingerprint = encode_hex(&Sha256::digest(Value::Object(body.clone()).to_string().as_bytes()));
    let task_id = core.new_id("task");
    let results = core
        .db
        .batch(vec![
            Statement::new(
                INSERT_TASK_SQL,
                vec![
                    task_id.clone().into(),
                    repo.into(),
                    task_type.as_str().into(),
                    title.into(),
                    goal.into(),
                    priority.into(),
                    Value::Object(constraints).to_string().into(),
                    json!(acceptance).to_string().into(),
                    Value::Object(metadata).to_string().into(),
                    target_host.into(),
                    base_ref.into(),
                    branch_name_for(&task_id).into(),
                    idempotency_key.clone().into(),
                    fingerprint.clone().into(),
                    call.now.into(),
                ],
            ),
            Statement::new(SELECT_BY_IDEMPOTENCY_KEY_SQL, vec![idempotency_key.into()]),
        ])
        .await?;
    let (row, replayed) = match (results[0].first(), results[1].first()) {
        (Some(row), _) => (row, false),
        (None, Some(existing)) => {
            if existing.opt_text("request_fingerprint")?.as_deref() != Some(fingerprint.as_str()) {
                return Err(
                    ApiError::conflict("this Idempotency-Key was already used with a different request body").with_field("Idempotency-Key")
                );
            }
            (existing, true)
        }
        (None, None) => return Err(ApiError::internal("task insert returned no row")),
    };
    let task = records::task(row)?;
    let mut reply = Reply::with_status(
        201,
        &TaskCreated {
            task_id: task.task_id.clone(),
            status: task.status,
            base_ref: task.base_ref.clone(),
            branch_name: task.branch_name.clone(),
            task,
        },
    )?;
    if replayed {
        reply.headers.push(("idempotent-replayed".into(), "true".into()));
    }
    Ok(reply)
}

pub async fn list<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let params = parse_query(&call.request.query);
    let status = query_enum(&params, "status", TaskStatus::parse, &TaskStatus::choices())?;
    let limit = query_i64(&params, "limit", 50, 1, 200)?;
    let cursor = match query_param(&params, "cursor") {
        None | Some("") => None,
        Some(text) => Some(
            text.split_once(':')
                .and_then(|(created_at, task_id)| Some((created_at.parse::<i64>().ok()?, task_id.to_string())))
                .ok_or_else(|| ApiError::invalid_field("cursor", "must be a next_cursor value from a previous page"))?,
        ),
    };
    let rows = core
        .db
        .query(Statement::new(
            LIST_TASKS_SQL,
            vec![
                status.map(|status| status.as_str()).into(),
                cursor.as_ref().map(|(created_at, _)| *created_at).into(),
                cursor.map(|(_, task_id)| task_id).into(),
                (limit + 1).into(),
            ],
        ))
        .await?;
    let mut tasks = records::all(&rows, records::task)?;
    let next_cursor = if tasks.len() as i64 > limit {
        tasks.truncate(limit as usize);
        tasks.last().map(|task| format!("{}:{}", task.created_at, task.task_id))
    } else {
        None
    };
    Reply::ok(&TaskPage { tasks, next_cursor })
}

pub async fn read<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let task_id = call.param("task_id");
    let results = core
        .db
        .batch(vec![
            Statement::new(SELECT_TASK_SQL, vec![task_id.into()]),
            Statement::new(SELECT_TASK_STEPS_SQL, vec![task_id.into()]),
            Statement::new(SELECT_TASK_RUNS_SQL, vec![task_id.into()]),
            Statement::new(SELECT_TASK_EVENTS_SQL, vec![task_id.into()]),
            Statement::new(ASSIGNED_HOST_LAST_SEEN_SQL, vec![task_id.into()]),
        ])
        .await?;
    let task = records::first(&results[0], records::task)?.ok_or_else(|| task_not_found(task_id))?;
    let host_last_seen = results[4].first().map(|row| row.opt_i64("last_heartbeat_at")).transpose()?.flatten();
    let waiting_reason = waiting_for_host(&task, host_last_seen, call.now, &core.config);
    let steps = records::all(&results[1], records::step)?;
    Reply::ok(&TaskDetail {
        current_step_index: current_step_index(&steps),
        steps,
        runs: records::all(&results[2], records::run)?,
        history: records::all(&results[3], records::task_event)?,
        waiting_reason,
        task,
    })
}

/// The step running or next to run; else the last one that ran; `None` before planning.
pub fn current_step_index(steps: &[Step]) -> Option<i64> {
    let active = steps.iter().find(|step| matches!(step.status, StepStatus::Ready | StepStatus::Claimed | StepStatus::Running));
    let last_ran = || steps.iter().rev().find(|step| step.attempt > 0);
    active.or_else(last_ran).or(steps.first()).map(|step| step.step_index)
}

/// A task not finished whose assigned host has gone quiet waits for it (with `target_host`)
/// or for the host-lost rule to start it over elsewhere.
fn waiting_for_host(task: &Task, host_last_seen: Option<i64>, now: i64, config: &super::config::Config) -> Option<WaitingReason> {
    let host = task.assigned_host.as_deref().filter(|_| !task.status.is_terminal())?;
    let since = host_last_seen.unwrap_or(task.created_at);
    if host_last_seen.is_some_and(|seen| now - seen <= config.controller_liveness_sec) {
        return None;
    }
    let message = if task.target_host.is_some() {
        format!("waiting for host {host} (constraints.target_host), not heard from since {since}")
    } else {
        format!(
            "host {host} not heard from since {since}; after {} s without it the task starts over on another host",
            config.host_lost_after_sec
        )
    };
    Some(WaitingReason { code: "host_lost".into(), message, since })
}

pub async fn cancel<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let task_id = call.param("task_id");
    let body = call.body(true)?;
    let fields = Fields::new(&body);
    let reason = fields.opt_str("reason", MAX_SHORT_TEXT_LEN)?;
    let requested_by = fields.opt_str("requested_by", 256)?.unwrap_or_else(|| call.principal.label.to_string());
    let status_reason = match &reason {
        Some(reason) => format!("canceled by {requested_by}: {reason}"),
        None => format!("canceled by {requested_by}"),
    };
    let results = core
        .db
        .batch(vec![
            Statement::new(CANCEL_TASK_SQL, vec![task_id.into(), call.now.into(), status_reason.into()]),
            // Runs in flight, read before their steps are canceled; reported only when this
            // request is the one that canceled the task.
            Statement::new(ACTIVE_RUNS_OF_TASK_SQL, vec![task_id.into()]),
            Statement::new(CANCEL_STEPS_SQL, vec![task_id.into(), call.now.into()]),
            Statement::new(SELECT_TASK_SQL, vec![task_id.into()]),
        ])
        .await?;
    let task = records::first(&results[3], records::task)?.ok_or_else(|| task_not_found(task_id))?;
    let canceled_now = !results[0].is_empty();
    if !canceled_now && task.status != TaskStatus::Canceled {
        return Err(ApiError::invalid_transition(format!("task {task_id} is {} and cannot be canceled", task.status))
            .with_detail("status", task.status.as_str()));
    }
    let runs_told_to_stop =
        if canceled_now { results[1].iter().filter_map(|row| row.opt_text("current_run_id").ok().flatten()).collect() } else { Vec::new() };
    Reply::ok(&TaskCanceled { task, runs_told_to_stop })
}

pub async fn claim<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let controller_id = call.principal.acting_node("controller_id", fields.opt_node_id("controller_id")?)?;
    call.principal.acting_host(fields.str("host", MAX_SHORT_TEXT_LEN)?)?;
    let term = fields.i64("term", 1, MAX_SAFE_INTEGER)?;
    let limit = fields.opt_i64("limit", 1, 20)?.unwrap_or(1);
    let results = core
        .db
        .batch(vec![
            Statement::new(SELECT_LEASE_SQL, vec![]),
            Statement::new(SELECT_MODE_SQL, vec![]),
            claim_tasks_statement(&controller_id, term, limit, core.config.controller_liveness_sec, call.now),
        ])
        .await?;
    let lease = records::first(&results[0], records::lease)?;
    check_fence(lease.as_ref(), &controller_id, term, call.now)?;
    let mode = records::first(&results[1], records::mode)?.unwrap_or(SystemMode::Running);
    let mut tasks = records::all(&results[2], records::task)?;
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
        let max_attempts = step.opt_i64("max_attempts", 1, 20)?.unwrap_or(1);
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

/// The leader's claim of up to `limit` queued tasks, fenced by its term; returns their rows.
pub(super) fn claim_tasks_statement(controller_id: &str, term: i64, limit: i64, liveness_sec: i64, now: i64) -> Statement {
    Statement::new(CLAIM_TASKS_SQL, vec![controller_id.into(), term.into(), now.into(), limit.into(), liveness_sec.into()])
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

pub async fn plan<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
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
        waiting_reason: None,
        task,
    })
}

pub async fn read_logs<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let task_id = call.param("task_id");
    let params = parse_query(&call.request.query);
    let after = query_i64(&params, "after", 0, 0, MAX_SAFE_INTEGER)?;
    let limit = query_i64(&params, "limit", 500, 1, 1000)?;
    let stream = query_enum(&params, "stream", LogStream::parse, &LogStream::choices())?;
    let text_filter = |name: &str| query_param(&params, name).filter(|value| !value.is_empty()).map(str::to_string);
    let results = core
        .db
        .batch(vec![
            Statement::new(TASK_EXISTS_SQL, vec![task_id.into()]),
            Statement::new(
                READ_LOGS_SQL,
                vec![
                    task_id.into(),
                    after.into(),
                    text_filter("step_id").into(),
                    text_filter("run_id").into(),
                    stream.map(|stream| stream.as_str()).into(),
                    limit.into(),
                ],
            ),
        ])
        .await?;
    if results[0].is_empty() {
        return Err(task_not_found(task_id));
    }
    let chunks = records::all(&results[1], records::log_chunk)?;
    let next_cursor = chunks.last().map_or(after, |chunk| chunk.cursor);
    Reply::ok(&LogPage { chunks, next_cursor })
}
