//! Step routes: a runner claims, heartbeats, uploads logs and checkpoints, completes or fails;
//! anyone with read access reads a run. (The leader's reaping is in [`super::reap`].)
//!
//! A run is one attempt of a step; its id is `<step_id>.a<attempt>`. Every write names the run
//! and is accepted only while that run is the step's current one, so a late answer from a lost
//! attempt is refused in SQL and can never be counted twice.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::ids::is_commit_id;
use shared::routes::MAX_UPLOAD_CONTENT_BYTES;
use shared::status::{CheckpointFormat, CheckpointType, LogStream, RunStatus, StepStatus, SystemMode, TaskStatus};
use shared::wire::{
    CheckpointStored, ClaimedStep, Run, RunDetail, Step, StepHeartbeatResponse, StepLogsStored, StepSettled, StepsClaimed, TaskResult,
};
use shared::ErrorCode;

use super::auth::encode_hex;
use super::clock::{Clock, Random};
use super::db::{Db, Row, Statement, Value as DbValue, MAX_SAFE_INTEGER};
use super::error::{ApiError, ApiResult};
use super::input::{Fields, MAX_SHORT_TEXT_LEN, MAX_TEXT_LEN};
use super::records::{self, checkpoint_columns, fence, run_columns, step_columns, task_columns};
use super::retry::{settle, Failure, Settlement};
use super::system::SELECT_MODE_SQL;
use super::{Call, Core, Reply};

pub const MAX_CLAIM_CAPACITY: i64 = 32;
pub const MAX_HEARTBEAT_TTL_SEC: i64 = 3_600;
pub const MAX_LOG_CHUNKS_PER_CALL: usize = 1_000;

// ?1 worker, ?2 claim token, ?3 now, ?4 heartbeat ttl, ?5 host, ?6 worker kinds JSON or NULL, ?7 capacity.
// A step of a task assigned to another host is never claimed: one host runs every step of a
// task, in one worktree (§11).
const CLAIM_STEPS_SQL: &str = concat!(
    "UPDATE steps SET status = 'claimed', attempt = attempt + 1, worker_id = ?1, \
       current_run_id = step_id || '.a' || (attempt + 1), claim_token = ?2, heartbeat_deadline_at = ?3 + ?4, \
       started_at = NULL, finished_at = NULL, exit_code = NULL, summary = NULL, error = NULL \
     WHERE step_id IN ( \
         SELECT s.step_id FROM steps s WHERE s.status = 'ready' \
           AND (s.target_host IS NULL OR s.target_host = ?5) \
           AND COALESCE((SELECT t.assigned_host FROM tasks t WHERE t.task_id = s.task_id), ?5) = ?5 \
           AND (?6 IS NULL OR s.worker_kind IN (SELECT value FROM json_each(?6))) \
         ORDER BY s.task_priority DESC, s.ready_at, s.step_id LIMIT ?7) \
       AND status = 'ready' \
       AND (SELECT mode FROM system_state WHERE state_key = 'global') <> 'paused' \
     RETURNING ",
    step_columns!()
);

const INSERT_CLAIMED_RUNS_SQL: &str = "INSERT INTO runs (run_id, step_id, task_id, worker_id, host, attempt, status, claimed_at) \
     SELECT current_run_id, step_id, task_id, worker_id, ?2, attempt, 'claimed', ?3 FROM steps WHERE claim_token = ?1";

// ?1 claim token, ?2 host, ?3 now. The first claim of a task assigns it to the claiming host;
// the history entry is written first, while the task is still unassigned.
const RECORD_ASSIGNMENT_SQL: &str = "INSERT INTO task_events (task_id, kind, message, created_at) \
     SELECT task_id, 'assigned', 'assigned to host ' || ?2, ?3 FROM tasks \
     WHERE task_id IN (SELECT task_id FROM steps WHERE claim_token = ?1) AND assigned_host IS NULL";
const ASSIGN_CLAIMED_TASKS_SQL: &str = "UPDATE tasks SET assigned_host = ?2, assigned_at = ?3 \
     WHERE task_id IN (SELECT task_id FROM steps WHERE claim_token = ?1) AND assigned_host IS NULL";

const TASKS_OF_CLAIM_SQL: &str =
    concat!("SELECT ", task_columns!(), " FROM tasks WHERE task_id IN (SELECT task_id FROM steps WHERE claim_token = ?1)");

// ?1 step, ?2 run, ?3 worker, ?4 now, ?5 ttl. A canceled step still answers, so the worker
// learns of the cancel; its deadline is no longer extended.
const HEARTBEAT_STEP_SQL: &str = "UPDATE steps SET \
       heartbeat_deadline_at = CASE WHEN status IN ('claimed', 'running') THEN ?4 + ?5 ELSE heartbeat_deadline_at END, \
       started_at = CASE WHEN status = 'claimed' THEN ?4 ELSE started_at END, \
       status = CASE WHEN status = 'claimed' THEN 'running' ELSE status END \
     WHERE step_id = ?1 AND current_run_id = ?2 AND worker_id = ?3 AND status IN ('claimed', 'running', 'canceled') \
     RETURNING step_id, status, heartbeat_deadline_at";

const HEARTBEAT_RUN_SQL: &str = "UPDATE runs SET last_heartbeat_at = ?4, progress_json = COALESCE(?5, progress_json), \
       started_at = COALESCE(started_at, ?4), status = CASE WHEN status = 'claimed' THEN 'running' ELSE status END \
     WHERE run_id = ?2 AND step_id = ?1 AND worker_id = ?3 AND status IN ('claimed', 'running')";

// ?1 step, ?2 run, ?3 worker, ?4 result JSON or NULL, ?5 base commit or NULL. Runs before
// the statement that settles the attempt, under the same condition (this worker's current,
// active run), so only an attempt that counts writes the task's result. The base commit is
// recorded once: every later step and retry builds on the first one.
const RECORD_TASK_RESULT_SQL: &str = "UPDATE tasks SET result_json = COALESCE(?4, result_json), \
       base_commit = COALESCE(base_commit, ?5) \
     WHERE task_id = (SELECT task_id FROM steps WHERE step_id = ?1 AND current_run_id = ?2 AND worker_id = ?3 \
       AND status IN ('claimed', 'running'))";

const SELECT_STEP_SQL: &str = concat!("SELECT ", step_columns!(), " FROM steps WHERE step_id = ?1");
const SELECT_RUN_SQL: &str = concat!("SELECT ", run_columns!(), " FROM runs WHERE run_id = ?1");
const SELECT_RUN_CHECKPOINTS_SQL: &str = concat!("SELECT ", checkpoint_columns!(), " FROM checkpoints WHERE run_id = ?1 ORDER BY seq");

// ?1 run, ?2 seq, ?3 step, ?4 worker, ?5 type, ?6 format, ?7 content, ?8 size, ?9 sha256, ?10 now.
const INSERT_CHECKPOINT_SQL: &str =
    "INSERT INTO checkpoints (run_id, seq, step_id, task_id, checkpoint_type, format, content, size, sha256, created_at) \
     SELECT r.run_id, ?2, r.step_id, r.task_id, ?5, ?6, ?7, ?8, ?9, ?10 FROM runs r \
     WHERE r.run_id = ?1 AND r.step_id = ?3 AND r.worker_id = ?4 \
     ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq";
const SELECT_CHECKPOINT_DIGEST_SQL: &str = "SELECT sha256 FROM checkpoints WHERE run_id = ?1 AND seq = ?2";

// ?1 run, ?2 step, ?3 worker, ?4 now, ?5 chunks JSON. All chunks in one statement.
const INSERT_LOG_CHUNKS_SQL: &str = "INSERT INTO log_chunks (run_id, seq, task_id, step_id, stream, text, created_at) \
     SELECT r.run_id, json_extract(c.value, '$.seq'), r.task_id, r.step_id, json_extract(c.value, '$.stream'), \
       json_extract(c.value, '$.text'), ?4 \
     FROM runs r, json_each(?5) c WHERE r.run_id = ?1 AND r.step_id = ?2 AND r.worker_id = ?3 \
     ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq";
const RUN_OF_WORKER_SQL: &str = "SELECT run_id FROM runs WHERE run_id = ?1 AND step_id = ?2 AND worker_id = ?3";

// ?1 step, ?2 run, ?3 worker, ?4 now, ?5 exit code, ?6 summary, ?7 result JSON.
const COMPLETE_STEP_SQL: &str = "UPDATE steps SET status = 'succeeded', finished_at = ?4, exit_code = ?5, summary = ?6, \
       heartbeat_deadline_at = NULL \
     WHERE step_id = ?1 AND current_run_id = ?2 AND worker_id = ?3 AND status IN ('claimed', 'running') RETURNING step_id";
const COMPLETE_RUN_SQL: &str = "UPDATE runs SET \
       status = CASE (SELECT status FROM steps WHERE step_id = ?1) WHEN 'canceled' THEN 'canceled' ELSE 'succeeded' END, \
       finished_at = ?4, exit_code = ?5, summary = ?6, result_json = ?7, started_at = COALESCE(started_at, ?4) \
     WHERE run_id = ?2 AND step_id = ?1 AND worker_id = ?3 AND status IN ('claimed', 'running') \
       AND (SELECT current_run_id FROM steps WHERE step_id = ?1) = ?2 \
       AND (SELECT status FROM steps WHERE step_id = ?1) IN ('succeeded', 'canceled')";
const READY_NEXT_STEP_SQL: &str = "UPDATE steps SET status = 'ready', ready_at = ?2 \
     WHERE task_id = (SELECT task_id FROM steps WHERE step_id = ?1) \
       AND step_index = (SELECT step_index + 1 FROM steps WHERE step_id = ?1) \
       AND status = 'pending' AND (SELECT status FROM steps WHERE step_id = ?1) = 'succeeded' \
       AND (SELECT t.status FROM tasks t JOIN steps s ON s.task_id = t.task_id WHERE s.step_id = ?1) = 'running'";
const FINISH_SUCCEEDED_TASK_SQL: &str = "UPDATE tasks SET status = 'succeeded', finished_at = ?2, updated_at = ?2 \
     WHERE task_id = (SELECT task_id FROM steps WHERE step_id = ?1) AND status = 'running' \
       AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.task_id = tasks.task_id AND s.status <> 'succeeded')";
const TASK_STATUS_OF_STEP_SQL: &str = "SELECT status FROM tasks WHERE task_id = (SELECT task_id FROM steps WHERE step_id = ?1)";

// Settling a failed or lost attempt: a compare-and-set on the attempt the decision was made
// for; the following statements act only if it won (they look for its fresh marker).
// ?1 step, ?2 run, ?3 attempt, ?4 now, ?5 new status, ?6 exit code, ?7 error, ?8 marker,
// ?9 fencing controller or NULL, ?10 fencing term.
const SETTLE_STEP_SQL: &str = concat!(
    "UPDATE steps SET status = ?5, \
       worker_id = CASE WHEN ?5 = 'ready' THEN NULL ELSE worker_id END, \
       current_run_id = CASE WHEN ?5 = 'ready' THEN NULL ELSE current_run_id END, \
       ready_at = CASE WHEN ?5 = 'ready' THEN ?4 ELSE ready_at END, \
       finished_at = CASE WHEN ?5 = 'ready' THEN NULL ELSE ?4 END, \
       heartbeat_deadline_at = NULL, exit_code = ?6, error = ?7, claim_token = ?8 \
     WHERE step_id = ?1 AND current_run_id = ?2 AND attempt = ?3 AND status IN ('claimed', 'running') \
       AND (?9 IS NULL OR ",
    fence!("9", "10", "4"),
    ") RETURNING step_id"
);
// ?1 run, ?2 step, ?3 run status, ?4 now, ?5 exit code, ?6 error, ?7 marker.
const SETTLE_RUN_SQL: &str = "UPDATE runs SET status = ?3, finished_at = ?4, exit_code = COALESCE(?5, exit_code), error = ?6 \
     WHERE run_id = ?1 AND status IN ('claimed', 'running') \
       AND EXISTS (SELECT 1 FROM steps WHERE step_id = ?2 AND claim_token = ?7)";
// ?1 step, ?2 task status, ?3 now, ?4 reason, ?5 marker.
const END_TASK_SQL: &str = "UPDATE tasks SET status = ?2, finished_at = ?3, updated_at = ?3, status_reason = ?4 \
     WHERE task_id = (SELECT task_id FROM steps WHERE step_id = ?1) AND status = 'running' \
       AND EXISTS (SELECT 1 FROM steps WHERE step_id = ?1 AND claim_token = ?5)";
const CANCEL_PENDING_STEPS_SQL: &str = "UPDATE steps SET status = 'canceled', finished_at = ?2 \
     WHERE task_id = (SELECT task_id FROM steps WHERE step_id = ?1) AND status = 'pending' \
       AND EXISTS (SELECT 1 FROM steps WHERE step_id = ?1 AND claim_token = ?3)";
// A run of a canceled step reports in: recorded as canceled, the step stays canceled.
const RECORD_CANCELED_RUN_SQL: &str = "UPDATE runs SET status = 'canceled', finished_at = ?3, exit_code = ?4, error = ?5, \
       started_at = COALESCE(started_at, ?3) \
     WHERE run_id = ?1 AND step_id = ?2 AND status IN ('claimed', 'running')";

fn step_not_found(step_id: &str) -> ApiError {
    let shown = super::auth::shown(step_id);
    ApiError::new(ErrorCode::StepNotFound, format!("no step {shown}")).with_detail("step_id", shown)
}

fn run_not_found(run_id: &str, step_id: &str) -> ApiError {
    let (run_id, step_id) = (super::auth::shown(run_id), super::auth::shown(step_id));
    ApiError::new(ErrorCode::RunNotFound, format!("no run {run_id} of step {step_id}")).with_detail("run_id", run_id)
}

fn other_workers_run(run_id: &str, owner: &str) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, format!("run {run_id} belongs to worker {owner}")).with_field("worker_id")
}

fn not_current(run: &Run, step: &Step) -> ApiError {
    ApiError::conflict(format!(
        "run {} is no longer the current attempt of step {} (run is {}, step is {})",
        run.run_id, step.step_id, run.status, step.status
    ))
    .with_field("run_id")
    .with_detail("run_status", run.status.as_str())
    .with_detail("step_status", step.status.as_str())
}

fn opt_commit(fields: &Fields<'_>, field: &str) -> ApiResult<Option<String>> {
    let commit = fields.opt_str(field, 40)?;
    if commit.as_deref().is_some_and(|commit| !is_commit_id(commit)) {
        return Err(ApiError::invalid_field(&fields.name(field), "must be a full commit id: 40 lowercase hex digits"));
    }
    Ok(commit)
}

/// `task_result` of a complete or fail: the task's branch after the step, as JSON for the
/// task's `result_json`, with its base commit.
fn task_result(fields: &Fields<'_>) -> ApiResult<(Option<String>, Option<String>)> {
    let Some(value) = fields.opt_value("task_result") else { return Ok((None, None)) };
    let Value::Object(map) = &value else { return Err(ApiError::invalid_field("task_result", "must be an object")) };
    let nested = Fields::nested(map, "task_result".into());
    let base_commit = opt_commit(&nested, "base_commit")?;
    opt_commit(&nested, "head_commit")?;
    let result: TaskResult = serde_json::from_value(value.clone())
        .map_err(|error| ApiError::invalid_field("task_result", &format!("must be a task result object: {error}")))?;
    let text = serde_json::to_string(&result).map_err(|error| ApiError::internal(error.to_string()))?;
    if text.len() > MAX_TEXT_LEN {
        return Err(ApiError::invalid_field("task_result", &format!("must serialise to at most {MAX_TEXT_LEN} bytes")));
    }
    Ok((Some(text), base_commit))
}

fn worker_and_run(call: &Call<'_>, fields: &Fields<'_>) -> ApiResult<(String, String)> {
    let worker_id = call.principal.acting_node("worker_id", fields.opt_node_id("worker_id")?)?;
    let run_id = fields.id("run_id")?;
    Ok((worker_id, run_id))
}

/// Reads a step and a run and checks that the run is this worker's run of this step.
async fn load_owned<D: Db, C: Clock, R: Random>(
    core: &Core<D, C, R>,
    step_id: &str,
    run_id: &str,
    worker_id: &str,
) -> ApiResult<(Step, Run)> {
    let results = core
        .db
        .batch(vec![Statement::new(SELECT_STEP_SQL, vec![step_id.into()]), Statement::new(SELECT_RUN_SQL, vec![run_id.into()])])
        .await?;
    let step = records::first(&results[0], records::step)?.ok_or_else(|| step_not_found(step_id))?;
    let run =
        records::first(&results[1], records::run)?.filter(|run| run.step_id == step_id).ok_or_else(|| run_not_found(run_id, step_id))?;
    if run.worker_id != worker_id {
        return Err(other_workers_run(run_id, &run.worker_id));
    }
    Ok((step, run))
}

pub async fn claim<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let worker_id = call.principal.acting_node("worker_id", fields.opt_node_id("worker_id")?)?;
    let host = call.principal.acting_host(fields.str("host", MAX_SHORT_TEXT_LEN)?)?;
    let capacity = fields.opt_i64("capacity", 1, MAX_CLAIM_CAPACITY)?.unwrap_or(1);
    let worker_kinds = fields.opt_string_list("worker_kinds", 32, 64)?;
    let ttl = fields.opt_i64("heartbeat_ttl_sec", 1, MAX_HEARTBEAT_TTL_SEC)?.unwrap_or(core.config.default_step_heartbeat_ttl_sec);
    let claim_token = core.new_id("claim");
    let results = core
        .db
        .batch(vec![
            Statement::new(SELECT_MODE_SQL, vec![]),
            Statement::new(
                CLAIM_STEPS_SQL,
                vec![
                    worker_id.into(),
                    claim_token.clone().into(),
                    call.now.into(),
                    ttl.into(),
                    host.clone().into(),
                    worker_kinds.map(|kinds| json!(kinds).to_string()).into(),
                    capacity.into(),
                ],
            ),
            Statement::new(INSERT_CLAIMED_RUNS_SQL, vec![claim_token.clone().into(), host.clone().into(), call.now.into()]),
            Statement::new(RECORD_ASSIGNMENT_SQL, vec![claim_token.clone().into(), host.clone().into(), call.now.into()]),
            Statement::new(ASSIGN_CLAIMED_TASKS_SQL, vec![claim_token.clone().into(), host.into(), call.now.into()]),
            Statement::new(TASKS_OF_CLAIM_SQL, vec![claim_token.into()]),
        ])
        .await?;
    let mode = records::first(&results[0], records::mode)?.unwrap_or(SystemMode::Running);
    let tasks = records::all(&results[5], records::task)?;
    let mut steps = Vec::new();
    for step in records::all(&results[1], records::step)? {
        let task = tasks
            .iter()
            .find(|task| task.task_id == step.task_id)
            .cloned()
            .ok_or_else(|| ApiError::internal("claimed step without its task"))?;
        let run_id = step.current_run_id.clone().ok_or_else(|| ApiError::internal("claimed step without a run"))?;
        steps.push(ClaimedStep { attempt: step.attempt, run_id, task, step });
    }
    steps.sort_by(|a, b| b.task.priority.cmp(&a.task.priority).then(a.step.step_id.cmp(&b.step.step_id)));
    Reply::ok(&StepsClaimed { steps, mode })
}

pub async fn heartbeat<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let step_id = call.param("step_id");
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let (worker_id, run_id) = worker_and_run(call, &fields)?;
    let ttl = fields.opt_i64("heartbeat_ttl_sec", 1, MAX_HEARTBEAT_TTL_SEC)?.unwrap_or(core.config.default_step_heartbeat_ttl_sec);
    let progress = fields.opt_object("progress")?.map(|progress| Value::Object(progress).to_string());
    let base_commit = opt_commit(&fields, "base_commit")?;
    let results = core
        .db
        .batch(vec![
            Statement::new(
                RECORD_TASK_RESULT_SQL,
                vec![step_id.into(), run_id.clone().into(), worker_id.clone().into(), DbValue::Null, base_commit.into()],
            ),
            Statement::new(
                HEARTBEAT_STEP_SQL,
                vec![step_id.into(), run_id.clone().into(), worker_id.clone().into(), call.now.into(), ttl.into()],
            ),
            Statement::new(
                HEARTBEAT_RUN_SQL,
                vec![step_id.into(), run_id.clone().into(), worker_id.clone().into(), call.now.into(), progress.into()],
            ),
        ])
        .await?;
    let Some(row) = results[1].first() else {
        // Cold path: say precisely why this run may not heartbeat.
        let (step, run) = load_owned(core, step_id, &run_id, &worker_id).await?;
        return Err(not_current(&run, &step));
    };
    let status = StepStatus::parse(&row.text("status")?).ok_or_else(|| ApiError::internal("unknown step status"))?;
    Reply::ok(&StepHeartbeatResponse {
        step_id: step_id.to_string(),
        run_id,
        status,
        canceled: status == StepStatus::Canceled,
        heartbeat_deadline_at: row.opt_i64("heartbeat_deadline_at")?,
    })
}

pub async fn checkpoint<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let step_id = call.param("step_id");
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let (worker_id, run_id) = worker_and_run(call, &fields)?;
    let seq = fields.i64("seq", 0, MAX_SAFE_INTEGER)?;
    let checkpoint_type = fields.enumerated("checkpoint_type", CheckpointType::parse, &CheckpointType::choices())?;
    let format = fields.enumerated("format", CheckpointFormat::parse, &CheckpointFormat::choices())?;
    let content = fields.raw_str("content", MAX_UPLOAD_CONTENT_BYTES)?;
    let size = fields.i64("size", 0, MAX_UPLOAD_CONTENT_BYTES as i64)?;
    let sha256 = fields.str("sha256", 64)?;
    if size != content.len() as i64 {
        return Err(ApiError::invalid_field("size", &format!("must equal the byte length of content ({})", content.len())));
    }
    if sha256 != encode_hex(&Sha256::digest(content.as_bytes())) {
        return Err(ApiError::invalid_field("sha256", "must be the lowercase hex SHA-256 of content"));
    }
    if format == CheckpointFormat::Json && serde_json::from_str::<Value>(&content).is_err() {
        return Err(ApiError::invalid_field("content", "must be valid JSON when format is json"));
    }
    let results = core
        .db
        .batch(vec![
            Statement::new(
                INSERT_CHECKPOINT_SQL,
                vec![
                    run_id.clone().into(),
                    seq.into(),
                    step_id.into(),
                    worker_id.clone().into(),
                    checkpoint_type.as_str().into(),
                    format.as_str().into(),
                    content.into(),
                    size.into(),
                    sha256.clone().into(),
                    call.now.into(),
                ],
            ),
            Statement::new(SELECT_CHECKPOINT_DIGEST_SQL, vec![run_id.clone().into(), seq.into()]),
            Statement::new(RUN_OF_WORKER_SQL, vec![run_id.clone().into(), step_id.into(), worker_id.clone().into()]),
        ])
        .await?;
    if results[2].is_empty() {
        load_owned(core, step_id, &run_id, &worker_id).await?;
        return Err(run_not_found(&run_id, step_id));
    }
    let created = !results[0].is_empty();
    if !created {
        let stored = results[1].first().map(|row| row.text("sha256")).transpose()?;
        if stored.as_deref() != Some(sha256.as_str()) {
            return Err(
                ApiError::conflict(format!("checkpoint {seq} of run {run_id} was already stored with other content")).with_field("seq")
            );
        }
    }
    Reply::with_status(if created { 201 } else { 200 }, &CheckpointStored { run_id, seq, created })
}

pub async fn logs<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let step_id = call.param("step_id");
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let (worker_id, run_id) = worker_and_run(call, &fields)?;
    let items = fields.opt_array("chunks")?.ok_or_else(|| ApiError::invalid_field("chunks", "is required: an array of log chunks"))?;
    if items.is_empty() || items.len() > MAX_LOG_CHUNKS_PER_CALL {
        return Err(ApiError::invalid_field("chunks", &format!("must have from 1 to {MAX_LOG_CHUNKS_PER_CALL} entries")));
    }
    let mut chunks = Vec::with_capacity(items.len());
    let mut total_text = 0usize;
    for (index, item) in items.iter().enumerate() {
        let name = format!("chunks[{index}]");
        let Value::Object(map) = item else { return Err(ApiError::invalid_field(&name, "must be an object")) };
        let chunk = Fields::nested(map, name);
        let seq = chunk.i64("seq", 0, MAX_SAFE_INTEGER)?;
        let stream = chunk.enumerated("stream", LogStream::parse, &LogStream::choices())?;
        let text = chunk.raw_str("text", MAX_UPLOAD_CONTENT_BYTES)?;
        total_text += text.len();
        chunks.push((seq, stream, text));
    }
    if total_text > MAX_UPLOAD_CONTENT_BYTES {
        return Err(ApiError::invalid_field("chunks", &format!("text must add up to at most {MAX_UPLOAD_CONTENT_BYTES} bytes")));
    }
    chunks.sort_by_key(|(seq, _, _)| *seq);
    if let Some(pair) = chunks.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(ApiError::invalid_field("chunks", &format!("has seq {} more than once", pair[0].0)));
    }
    let count = chunks.len() as i64;
    let chunks_json: Vec<Value> =
        chunks.into_iter().map(|(seq, stream, text)| json!({"seq": seq, "stream": stream.as_str(), "text": text})).collect();
    let results = core
        .db
        .batch(vec![
            Statement::new(
                INSERT_LOG_CHUNKS_SQL,
                vec![
                    run_id.clone().into(),
                    step_id.into(),
                    worker_id.clone().into(),
                    call.now.into(),
                    Value::Array(chunks_json).to_string().into(),
                ],
            ),
            Statement::new(RUN_OF_WORKER_SQL, vec![run_id.clone().into(), step_id.into(), worker_id.clone().into()]),
        ])
        .await?;
    if results[1].is_empty() {
        load_owned(core, step_id, &run_id, &worker_id).await?;
        return Err(run_not_found(&run_id, step_id));
    }
    let accepted = results[0].len() as i64;
    Reply::ok(&StepLogsStored { run_id, accepted, duplicates: count - accepted })
}

fn settled_reply(results: &[Vec<Row>], step_index: usize) -> ApiResult<(Step, Run, TaskStatus)> {
    let step = records::first(&results[step_index], records::step)?.ok_or_else(|| ApiError::internal("step vanished"))?;
    let run = records::first(&results[step_index + 1], records::run)?.ok_or_else(|| ApiError::internal("run vanished"))?;
    let task_status = results[step_index + 2]
        .first()
        .map(|row| row.text("status"))
        .transpose()?
        .and_then(|status| TaskStatus::parse(&status))
        .ok_or_else(|| ApiError::internal("task vanished"))?;
    Ok((step, run, task_status))
}

pub async fn complete<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let step_id = call.param("step_id");
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let (worker_id, run_id) = worker_and_run(call, &fields)?;
    let summary = fields.raw_str("summary", MAX_TEXT_LEN)?;
    let exit_code = fields.i64("exit_code", -(1 << 31), (1 << 31) - 1)?;
    let result = fields.opt_value("result").map(|result| result.to_string());
    if result.as_ref().is_some_and(|result| result.len() > MAX_TEXT_LEN) {
        return Err(ApiError::invalid_field("result", &format!("must serialise to at most {MAX_TEXT_LEN} bytes")));
    }
    let (task_result, base_commit) = task_result(&fields)?;
    // ?1 step … ?6 summary serve both statements; the run also takes ?7 result.
    let run_args: Vec<super::db::Value> = vec![
        step_id.into(),
        run_id.clone().into(),
        worker_id.clone().into(),
        call.now.into(),
        exit_code.into(),
        summary.into(),
        result.into(),
    ];
    let results = core
        .db
        .batch(vec![
            Statement::new(
                RECORD_TASK_RESULT_SQL,
                vec![step_id.into(), run_id.clone().into(), worker_id.clone().into(), task_result.into(), base_commit.into()],
            ),
            Statement::new(COMPLETE_STEP_SQL, run_args[..6].to_vec()),
            Statement::new(COMPLETE_RUN_SQL, run_args),
            Statement::new(READY_NEXT_STEP_SQL, vec![step_id.into(), call.now.into()]),
            Statement::new(FINISH_SUCCEEDED_TASK_SQL, vec![step_id.into(), call.now.into()]),
            Statement::new(SELECT_STEP_SQL, vec![step_id.into()]),
            Statement::new(SELECT_RUN_SQL, vec![run_id.clone().into()]),
            Statement::new(TASK_STATUS_OF_STEP_SQL, vec![step_id.into()]),
        ])
        .await?;
    let step = records::first(&results[5], records::step)?.ok_or_else(|| step_not_found(step_id))?;
    let run =
        records::first(&results[6], records::run)?.filter(|run| run.step_id == step_id).ok_or_else(|| run_not_found(&run_id, step_id))?;
    if run.worker_id != worker_id {
        return Err(other_workers_run(&run_id, &run.worker_id));
    }
    let current = step.current_run_id.as_deref() == Some(run_id.as_str());
    // The first completion and any retry of it answer the same; anything else is a lost attempt.
    let accepted = current
        && matches!((step.status, run.status), (StepStatus::Succeeded, RunStatus::Succeeded) | (StepStatus::Canceled, RunStatus::Canceled));
    if !accepted {
        return Err(not_current(&run, &step));
    }
    let (step, run, task_status) = settled_reply(&results, 5)?;
    Reply::ok(&StepSettled { step, run, task_status, requeued: false })
}

/// How one attempt ended, as the settlement statements record it.
#[derive(Clone, Copy)]
pub(super) struct AttemptEnd<'a> {
    pub exit_code: Option<i64>,
    pub error: &'a str,
    /// The fresh marker the statements after the compare-and-set look for.
    pub marker: &'a str,
    pub now: i64,
}

/// The statements that apply a settlement to one step attempt, after a compare-and-set on
/// the attempt. `fencing` is the leader's `(controller, term)` when the reaper settles.
pub(super) fn settlement_statements(
    step: &Step,
    run_id: &str,
    settlement: Settlement,
    end: &AttemptEnd<'_>,
    fencing: Option<(&str, i64)>,
) -> Vec<Statement> {
    let AttemptEnd { exit_code, error, marker, now } = *end;
    let mut statements = vec![
        Statement::new(
            SETTLE_STEP_SQL,
            vec![
                step.step_id.clone().into(),
                run_id.into(),
                step.attempt.into(),
                now.into(),
                settlement.step_status.as_str().into(),
                exit_code.into(),
                error.into(),
                marker.into(),
                fencing.map(|(controller, _)| controller).into(),
                fencing.map(|(_, term)| term).into(),
            ],
        ),
        Statement::new(
            SETTLE_RUN_SQL,
            vec![
                run_id.into(),
                step.step_id.clone().into(),
                settlement.run_status.as_str().into(),
                now.into(),
                exit_code.into(),
                error.into(),
                marker.into(),
            ],
        ),
    ];
    if let Some(task_status) = settlement.task_status {
        let reason = format!("step {} {}: {}", step.step_index, settlement.step_status, error);
        statements.push(Statement::new(
            END_TASK_SQL,
            vec![step.step_id.clone().into(), task_status.as_str().into(), now.into(), reason.into(), marker.into()],
        ));
        statements.push(Statement::new(CANCEL_PENDING_STEPS_SQL, vec![step.step_id.clone().into(), now.into(), marker.into()]));
    }
    statements
}

pub async fn fail<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let step_id = call.param("step_id");
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let (worker_id, run_id) = worker_and_run(call, &fields)?;
    let error = fields.str("error", MAX_TEXT_LEN)?;
    let exit_code = fields.opt_i64("exit_code", -(1 << 31), (1 << 31) - 1)?;
    let (task_result, base_commit) = task_result(&fields)?;
    let failure = if fields.bool_or_false("needs_human")? {
        Failure::NeedsHuman
    } else if fields.bool_or_false("blocked")? {
        Failure::Blocked
    } else if fields.bool_or_false("timed_out")? {
        Failure::TimedOut
    } else {
        Failure::Error
    };
    // Read, decide with the pure policy, then apply with a compare-and-set on the attempt. A
    // lost race (the reaper settled it first) re-reads once and answers from what won.
    for _ in 0..2 {
        let (step, run) = load_owned(core, step_id, &run_id, &worker_id).await?;
        let current = step.current_run_id.as_deref() == Some(run_id.as_str());
        let run_finished = !matches!(run.status, RunStatus::Claimed | RunStatus::Running);
        let mut statements = if run_finished {
            // A retried fail of this run answers as the first did; any other ending stands.
            let replay = matches!(run.status, RunStatus::Failed | RunStatus::TimedOut | RunStatus::Blocked | RunStatus::Canceled);
            if !replay {
                return Err(not_current(&run, &step));
            }
            Vec::new()
        } else if current && step.status == StepStatus::Canceled {
            vec![Statement::new(
                RECORD_CANCELED_RUN_SQL,
                vec![run_id.clone().into(), step_id.into(), call.now.into(), exit_code.into(), error.clone().into()],
            )]
        } else if current && step.status.is_active() {
            let settlement = settle(step.attempt, step.max_attempts, failure);
            let marker = core.new_id("settle");
            let record_result = Statement::new(
                RECORD_TASK_RESULT_SQL,
                vec![
                    step_id.into(),
                    run_id.clone().into(),
                    worker_id.clone().into(),
                    task_result.clone().into(),
                    base_commit.clone().into(),
                ],
            );
            std::iter::once(record_result)
                .chain(settlement_statements(
                    &step,
                    &run_id,
                    settlement,
                    &AttemptEnd { exit_code, error: &error, marker: &marker, now: call.now },
                    None,
                ))
                .collect()
        } else {
            return Err(not_current(&run, &step));
        };
        let applies = !statements.is_empty();
        statements.push(Statement::new(SELECT_STEP_SQL, vec![step_id.into()]));
        statements.push(Statement::new(SELECT_RUN_SQL, vec![run_id.clone().into()]));
        statements.push(Statement::new(TASK_STATUS_OF_STEP_SQL, vec![step_id.into()]));
        let first_read = statements.len() - 3;
        let results = core.db.batch(statements).await?;
        let (step, run, task_status) = settled_reply(&results, first_read)?;
        let lost_race = applies && matches!(run.status, RunStatus::Claimed | RunStatus::Running);
        if lost_race {
            continue;
        }
        let requeued = step.status == StepStatus::Ready;
        return Reply::ok(&StepSettled { step, run, task_status, requeued });
    }
    Err(ApiError::conflict(format!("step {step_id} changed while this failure was being recorded; retry")))
}

pub async fn read_run<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let run_id = call.param("run_id");
    let results = core
        .db
        .batch(vec![Statement::new(SELECT_RUN_SQL, vec![run_id.into()]), Statement::new(SELECT_RUN_CHECKPOINTS_SQL, vec![run_id.into()])])
        .await?;
    let run = records::first(&results[0], records::run)?.ok_or_else(|| {
        let shown = super::auth::shown(run_id);
        ApiError::new(ErrorCode::RunNotFound, format!("no run {shown}")).with_detail("run_id", shown)
    })?;
    Reply::ok(&RunDetail { run, checkpoints: records::all(&results[1], records::checkpoint)? })
}
