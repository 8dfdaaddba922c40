//! Task routes: create (with Idempotency-Key), list, read, cancel, and reading a task's logs.
//! (The leader's claim and plan are in [`super::planning`].)

use super::blobs::Blobs;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::ids::{branch_name_for, repo_location};
use shared::status::{DeliveryMode, StepStatus, TaskStatus, TaskType};
use shared::wire::{Step, Task, TaskCanceled, TaskCreated, TaskDetail, TaskPage, UsageTotal};
use shared::ErrorCode;

use super::auth::encode_hex;
use super::cards;
use super::clock::{Clock, Random};
use super::db::{Db, Statement};
use super::error::{ApiError, ApiResult};
use super::input::{parse_query, query_enum, query_i64, query_param, Fields, MAX_SHORT_TEXT_LEN, MAX_TEXT_LEN};
use super::records::{self, run_columns, step_columns, task_columns, task_event_columns};
use super::rounds;
use super::waiting;
use super::{Call, Core, Reply};

pub const DEFAULT_PRIORITY: i64 = 50;
pub const DEFAULT_BASE_REF: &str = "HEAD";
/// A week: the longest a step may run.
pub const MAX_STEP_TIMEOUT_SEC: i64 = 604_800;
pub const MAX_STEPS_PER_PLAN: usize = 50;
pub const DEFAULT_STEP_TIMEOUT_SEC: i64 = 1_800;

// `constraints.target_host` assigns the task to its host before any claim (§11). A repeated
// Idempotency-Key or card key inserts nothing (the task it names is the answer).
const INSERT_TASK_SQL: &str = concat!(
    "INSERT INTO tasks (task_id, repo, task_type, title, goal, priority, status, constraints_json, acceptance_json, \
       metadata_json, target_host, base_ref, branch_name, idempotency_key, request_fingerprint, created_at, updated_at, \
       assigned_host, assigned_at, task_key, depends_on_json, write_scope_json, review) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?10, \
       CASE WHEN ?10 IS NULL THEN NULL ELSE ?15 END, ?16, ?17, ?18, ?19) \
     ON CONFLICT DO NOTHING \
     RETURNING ",
    task_columns!()
);

const SELECT_BY_IDEMPOTENCY_KEY_SQL: &str =
    concat!("SELECT ", task_columns!(), ", request_fingerprint FROM tasks WHERE idempotency_key = ?1");

pub const SELECT_TASK_SQL: &str = concat!("SELECT ", task_columns!(), " FROM tasks WHERE task_id = ?1");
pub(super) const SELECT_TASK_STEPS_SQL: &str = concat!("SELECT ", step_columns!(), " FROM steps WHERE task_id = ?1 ORDER BY step_index");
const SELECT_TASK_RUNS_SQL: &str = concat!("SELECT ", run_columns!(), " FROM runs WHERE task_id = ?1 ORDER BY claimed_at, run_id");
const SELECT_TASK_EVENTS_SQL: &str = concat!("SELECT ", task_event_columns!(), " FROM task_events WHERE task_id = ?1 ORDER BY event_id");
// When the task's assigned host was last heard from (any controller on it).

// ?1 status or NULL, ?2 cursor created_at or NULL, ?3 cursor task_id, ?4 limit. Newest first.
const LIST_TASKS_SQL: &str = concat!(
    "SELECT ",
    task_columns!(),
    ", (SELECT MAX(s.round) FROM steps s WHERE s.task_id = tasks.task_id) AS round \
     FROM tasks WHERE (?1 IS NULL OR status = ?1) \
       AND (?2 IS NULL OR created_at < ?2 OR (created_at = ?2 AND task_id < ?3)) \
     ORDER BY created_at DESC, task_id DESC LIMIT ?4"
);

const CANCEL_TASK_SQL: &str = "UPDATE tasks SET status = 'canceled', finished_at = ?2, updated_at = ?2, status_reason = ?3 \
     WHERE task_id = ?1 AND status IN ('queued', 'planning', 'running', 'review') RETURNING task_id";
const ACTIVE_RUNS_OF_TASK_SQL: &str = "SELECT current_run_id FROM steps WHERE task_id = ?1 AND status IN ('claimed', 'running')";
// Steps in flight keep their run and deadline: the worker learns of the cancel from its next
// heartbeat and reports the run; the reaper settles the run if it never does.
const CANCEL_STEPS_SQL: &str = "UPDATE steps SET status = 'canceled', finished_at = ?2 \
     WHERE task_id = ?1 AND status IN ('pending', 'ready', 'claimed', 'running', 'waiting_quota') \
       AND (SELECT status FROM tasks WHERE task_id = ?1) = 'canceled'";

pub(super) const TASK_EXISTS_SQL: &str = "SELECT task_id FROM tasks WHERE task_id = ?1";

pub(super) fn task_not_found(task_id: &str) -> ApiError {
    let shown = super::auth::shown(task_id);
    ApiError::new(ErrorCode::TaskNotFound, format!("no task {shown}")).with_detail("task_id", shown)
}

pub async fn create<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
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
    let card = cards::read(&fields)?;
    if task_type == TaskType::Integrate && card.depends_on.is_empty() {
        return Err(ApiError::invalid_field("depends_on", "is required for integrate tasks: the tasks whose branches it merges"));
    }
    // Read by the planner as each step's timeout; checked here so a bad value fails at once.
    constraint_fields.opt_i64("timeout_sec", 1, MAX_STEP_TIMEOUT_SEC)?;
    // Read by the planner as each step's attempts (a failed, timed-out or lost attempt is
    // retried while attempts remain).
    constraint_fields.opt_i64("max_attempts", 1, super::planning::MAX_ATTEMPTS)?;
    // Read by the planner (a final deliver step) and by the runner (the remote).
    constraint_fields.opt_enumerated("deliver", DeliveryMode::parse, &DeliveryMode::choices())?;
    constraint_fields.opt_str("remote", MAX_SHORT_TEXT_LEN)?;
    // Read by the runner: an agent step that changed nothing and wrote no report succeeds.
    constraint_fields.bool_or_false("allow_no_change")?;
    // Read by the runner: a step without progress for this long is stopped as stalled.
    constraint_fields.opt_i64("stall_after_sec", 1, MAX_STEP_TIMEOUT_SEC)?;
    // Read by the settlement of a failed acceptance step: rounds of a codex task, the first included.
    constraint_fields.opt_i64("max_rounds", 1, rounds::MAX_ROUNDS)?;
    // Read by the planner: the setup step's command (else the repository's `.baa/setup`).
    constraint_fields.opt_str("setup", MAX_TEXT_LEN)?;
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
    let resolved = cards::resolve(core, &repo, &card, &base_ref).await?;
    if let Some(existing) = resolved.existing {
        return created_reply(existing, true);
    }
    let task_id = core.new_id("task");
    let branch = card.branch.clone().unwrap_or_else(|| branch_name_for(&task_id));
    let mut statements = vec![
        Statement::new(
            INSERT_TASK_SQL,
            vec![
                task_id.clone().into(),
                repo.clone().into(),
                task_type.as_str().into(),
                title.into(),
                goal.into(),
                priority.into(),
                Value::Object(constraints).to_string().into(),
                json!(acceptance).to_string().into(),
                Value::Object(metadata).to_string().into(),
                target_host.into(),
                resolved.base_ref.clone().into(),
                branch.into(),
                idempotency_key.clone().into(),
                fingerprint.clone().into(),
                call.now.into(),
                card.key.clone().into(),
                json!(resolved.depends_on).to_string().into(),
                json!(card.write_scope).to_string().into(),
                card.review.into(),
            ],
        ),
        Statement::new(SELECT_BY_IDEMPOTENCY_KEY_SQL, vec![idempotency_key.into()]),
        cards::by_key_statement(&repo, card.key.as_deref()),
    ];
    statements.extend(cards::record_statements(&task_id, &resolved));
    let results = core.db.batch(statements).await?;
    let (row, replayed) = match (results[0].first(), results[1].first(), results[2].first()) {
        (Some(row), _, _) => (row, false),
        (None, Some(existing), _) => {
            if existing.opt_text("request_fingerprint")?.as_deref() != Some(fingerprint.as_str()) {
                return Err(
                    ApiError::conflict("this Idempotency-Key was already used with a different request body").with_field("Idempotency-Key")
                );
            }
            (existing, true)
        }
        // Another request created a task with this key meanwhile: it is the answer.
        (None, None, Some(existing)) => (existing, true),
        (None, None, None) => return Err(ApiError::internal("task insert returned no row")),
    };
    created_reply(records::task(row)?, replayed)
}

/// Warned at creation: a coding-agent task without acceptance is judged by the agent's exit
/// code alone.
pub const NO_ACCEPTANCE_WARNING: &str =
    "no acceptance: only the coding agent's exit code will judge this task (give acceptance commands to check its work)";

fn created_reply(task: Task, replayed: bool) -> ApiResult<Reply> {
    let mut warnings = Vec::new();
    if task.task_type == TaskType::Codex && task.acceptance.is_empty() {
        warnings.push(NO_ACCEPTANCE_WARNING.to_string());
    }
    let mut reply = Reply::with_status(
        201,
        &TaskCreated {
            task_id: task.task_id.clone(),
            status: task.status,
            base_ref: task.base_ref.clone(),
            branch_name: task.branch_name.clone(),
            task,
            warnings,
        },
    )?;
    if replayed {
        reply.headers.push(("idempotent-replayed".into(), "true".into()));
    }
    Ok(reply)
}

pub async fn list<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
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
    for (task, row) in tasks.iter_mut().zip(&rows) {
        task.round = row.opt_i64("round")?;
    }
    let next_cursor = if tasks.len() as i64 > limit {
        tasks.truncate(limit as usize);
        tasks.last().map(|task| format!("{}:{}", task.created_at, task.task_id))
    } else {
        None
    };
    explain_waiting(core, &mut tasks, call.now).await?;
    Reply::ok(&TaskPage { tasks, next_cursor })
}

// ?1 JSON array of task ids: their steps ready or waiting for an account's reset.
const READY_STEPS_SQL: &str = concat!(
    "SELECT ",
    step_columns!(),
    " FROM steps WHERE task_id IN (SELECT value FROM json_each(?1)) AND status IN ('ready', 'waiting_quota')"
);

/// Sets the `waiting_reason` of the queued and running tasks of a page, from one more batch
/// (none when the page has no such task).
async fn explain_waiting<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, tasks: &mut [Task], now: i64) -> ApiResult<()> {
    let waiting: Vec<&str> = tasks
        .iter()
        .filter(|task| matches!(task.status, TaskStatus::Queued | TaskStatus::Running))
        .map(|task| task.task_id.as_str())
        .collect();
    if waiting.is_empty() {
        return Ok(());
    }
    let mut statements = waiting::facts_statements(&waiting, now);
    statements.push(Statement::new(READY_STEPS_SQL, vec![json!(waiting).to_string().into()]));
    let results = core.db.batch(statements).await?;
    let facts = waiting::read_facts(&results, 0, now, &core.config)?;
    let ready = records::all(&results[waiting::FACTS_STATEMENTS], records::step)?;
    for task in tasks.iter_mut() {
        let step = ready.iter().find(|step| step.task_id == task.task_id);
        task.waiting_reason = waiting::waiting_reason(&facts.of(task, step), &facts.fleet);
    }
    Ok(())
}

pub async fn read<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let task_id = call.param("task_id");
    let results = core
        .db
        .batch(
            [
                Statement::new(SELECT_TASK_SQL, vec![task_id.into()]),
                Statement::new(SELECT_TASK_STEPS_SQL, vec![task_id.into()]),
                Statement::new(SELECT_TASK_RUNS_SQL, vec![task_id.into()]),
                Statement::new(SELECT_TASK_EVENTS_SQL, vec![task_id.into()]),
            ]
            .into_iter()
            .chain(waiting::facts_statements(&[task_id], call.now))
            .collect(),
        )
        .await?;
    let row = results[0].first().ok_or_else(|| task_not_found(task_id))?;
    let mut task = records::task(row)?;
    let mut steps = records::all(&results[1], records::step)?;
    let facts = waiting::read_facts(&results, 4, call.now, &core.config)?;
    let ready = steps.iter().position(|step| matches!(step.status, StepStatus::Ready | StepStatus::WaitingQuota));
    task.waiting_reason = waiting::waiting_reason(&facts.of(&task, ready.map(|index| &steps[index])), &facts.fleet);
    if let Some(index) = ready.filter(|_| task.status == TaskStatus::Running) {
        steps[index].waiting_reason = task.waiting_reason.clone();
    }
    let report = super::report::task_report(&task, &steps, super::report::stored_agent_report(row)?);
    let runs = records::all(&results[2], records::run)?;
    Reply::ok(&TaskDetail {
        report,
        usage: UsageTotal::of(runs.iter().filter_map(|run| run.usage.as_ref())),
        current_step_index: current_step_index(&steps),
        steps,
        runs,
        history: records::all(&results[3], records::task_event)?,
        task,
    })
}

/// The step running or next to run; else the last one that ran; `None` before planning.
pub fn current_step_index(steps: &[Step]) -> Option<i64> {
    let active = steps.iter().find(|step| matches!(step.status, StepStatus::Ready | StepStatus::Claimed | StepStatus::Running));
    let last_ran = || steps.iter().rev().find(|step| step.attempt > 0);
    active.or_else(last_ran).or(steps.first()).map(|step| step.step_index)
}

pub async fn cancel<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
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
