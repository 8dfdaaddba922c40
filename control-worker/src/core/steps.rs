//! Step routes: a runner claims, heartbeats, uploads logs and checkpoints, completes or fails;
//! anyone with read access reads a run. (What each report validates and writes is in
//! [`super::run_reports`]; the leader's reaping is in [`super::reap`].)
//!
//! A run is one attempt of a step; its id is `<step_id>.a<attempt>`. Every write names the run
//! and is accepted only while that run is the step's current one, so a late answer from a lost
//! attempt is refused in SQL and can never be counted twice.

use super::blobs::{Blobs, ByteRange};
use super::log_object::gunzip;
use shared::status::{StepStatus, SystemMode, TaskStatus};
use shared::wire::{CheckpointStored, Run, RunDetail, Step, StepHeartbeatResponse, StepLogsStored, StepSettled, StepsClaimed};
use shared::ErrorCode;

use super::clock::{Clock, Random};
use super::db::{Db, Row, Statement};
use super::error::{ApiError, ApiResult};
use super::grants::{self, ClaimAsk, MAX_CLAIM_CAPACITY};
use super::input::{Fields, MAX_SHORT_TEXT_LEN};
use super::records::{self, checkpoint_columns, run_columns, step_columns};
use super::run_reports::{self as reports, CheckpointOutcome, MAX_HEARTBEAT_TTL_SEC};
use super::system::SELECT_MODE_SQL;
use super::{Call, Core, Reply};

pub(super) const SELECT_STEP_SQL: &str = concat!("SELECT ", step_columns!(), " FROM steps WHERE step_id = ?1");
pub(super) const SELECT_RUN_SQL: &str = concat!("SELECT ", run_columns!(), " FROM runs WHERE run_id = ?1");
const SELECT_RUN_CHECKPOINTS_SQL: &str = concat!(
    "SELECT ",
    checkpoint_columns!(),
    ", blob_key, blob_offset, blob_length, (SELECT logs_expired_at FROM runs WHERE run_id = ?1) AS logs_expired_at \
     FROM checkpoints WHERE run_id = ?1 ORDER BY seq"
);
pub(super) const TASK_STATUS_OF_STEP_SQL: &str = "SELECT status FROM tasks WHERE task_id = (SELECT task_id FROM steps WHERE step_id = ?1)";

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

fn worker_and_run(call: &Call<'_>, fields: &Fields<'_>) -> ApiResult<(String, String)> {
    let worker_id = call.principal.acting_node("worker_id", fields.opt_node_id("worker_id")?)?;
    let run_id = fields.id("run_id")?;
    Ok((worker_id, run_id))
}

/// The step and run read at `at` and `at + 1`, checked to be `worker_id`'s run of `step_id`.
fn owned(results: &[Vec<Row>], at: usize, step_id: &str, run_id: &str, worker_id: &str) -> ApiResult<(Step, Run)> {
    let step = records::first(&results[at], records::step)?.ok_or_else(|| step_not_found(step_id))?;
    let run = records::first(&results[at + 1], records::run)?
        .filter(|run| run.step_id == step_id)
        .ok_or_else(|| run_not_found(run_id, step_id))?;
    if run.worker_id != worker_id {
        return Err(other_workers_run(run_id, &run.worker_id));
    }
    Ok((step, run))
}

/// Reads a step and a run and checks that the run is this worker's run of this step (the cold
/// path that explains a refusal).
async fn load_owned<D: Db, C: Clock, R: Random, B: Blobs>(
    core: &Core<D, C, R, B>,
    step_id: &str,
    run_id: &str,
    worker_id: &str,
) -> ApiResult<(Step, Run)> {
    let results = core
        .db
        .batch(vec![Statement::new(SELECT_STEP_SQL, vec![step_id.into()]), Statement::new(SELECT_RUN_SQL, vec![run_id.into()])])
        .await?;
    owned(&results, 0, step_id, run_id, worker_id)
}

pub async fn claim<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let worker_id = call.principal.acting_node("worker_id", fields.opt_node_id("worker_id")?)?;
    let host = call.principal.acting_host(fields.str("host", MAX_SHORT_TEXT_LEN)?)?;
    let account = fields.opt_str("account", MAX_SHORT_TEXT_LEN)?;
    let ask = ClaimAsk {
        account: account.as_deref(),
        worker_id: &worker_id,
        host: &host,
        capacity: fields.opt_i64("capacity", 1, MAX_CLAIM_CAPACITY)?.unwrap_or(1),
        worker_kinds: fields.opt_string_list("worker_kinds", 32, 64)?,
        heartbeat_ttl_sec: fields
            .opt_i64("heartbeat_ttl_sec", 1, MAX_HEARTBEAT_TTL_SEC)?
            .unwrap_or(core.config.default_step_heartbeat_ttl_sec),
    };
    let claim_token = core.new_id("claim");
    let mut statements = vec![Statement::new(SELECT_MODE_SQL, vec![])];
    statements.extend(grants::claim_statements(&ask, &claim_token, call.now));
    let results = core.db.batch(statements).await?;
    let mode = records::first(&results[0], records::mode)?.unwrap_or(SystemMode::Running);
    Reply::ok(&StepsClaimed { steps: grants::claimed_steps(&results, 1)?, mode })
}

pub async fn heartbeat<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let step_id = call.param("step_id");
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let (worker_id, run_id) = worker_and_run(call, &fields)?;
    let ttl = fields.opt_i64("heartbeat_ttl_sec", 1, MAX_HEARTBEAT_TTL_SEC)?.unwrap_or(core.config.default_step_heartbeat_ttl_sec);
    let beat = reports::beat(&fields)?;
    let results = core.db.batch(reports::beat_statements(step_id, &run_id, &worker_id, ttl, &beat, call.now)).await?;
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

pub async fn checkpoint<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let step_id = call.param("step_id");
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let (worker_id, run_id) = worker_and_run(call, &fields)?;
    let upload = reports::checkpoint_upload(&fields)?;
    let results = core.db.batch(reports::checkpoint_statements(step_id, &run_id, &worker_id, &upload, call.now)).await?;
    let seq = upload.seq;
    let created = match reports::checkpoint_outcome(&results, 0, &upload)? {
        CheckpointOutcome::Created => true,
        CheckpointOutcome::AlreadyStored => false,
        CheckpointOutcome::Conflict => {
            return Err(
                ApiError::conflict(format!("checkpoint {seq} of run {run_id} was already stored with other content")).with_field("seq")
            )
        }
        CheckpointOutcome::NotOwned => {
            load_owned(core, step_id, &run_id, &worker_id).await?;
            return Err(run_not_found(&run_id, step_id));
        }
    };
    Reply::with_status(if created { 201 } else { 200 }, &CheckpointStored { run_id, seq, created })
}

pub async fn logs<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let step_id = call.param("step_id");
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let (worker_id, run_id) = worker_and_run(call, &fields)?;
    let upload = reports::log_upload(&fields)?;
    let results = core.db.batch(reports::log_statements(step_id, &run_id, &worker_id, &upload, call.now)).await?;
    if results[1].is_empty() {
        load_owned(core, step_id, &run_id, &worker_id).await?;
        return Err(run_not_found(&run_id, step_id));
    }
    let accepted = results[0].len() as i64;
    Reply::ok(&StepLogsStored { run_id, accepted, duplicates: upload.count - accepted })
}

/// The step, run and task status read after a settlement, at `at`, `at + 1`, `at + 2`.
fn settled_reply(results: &[Vec<Row>], at: usize) -> ApiResult<TaskStatus> {
    results[at + 2]
        .first()
        .map(|row| row.text("status"))
        .transpose()?
        .and_then(|status| TaskStatus::parse(&status))
        .ok_or_else(|| ApiError::internal("task vanished"))
}

fn read_back(step_id: &str, run_id: &str) -> [Statement; 3] {
    [
        Statement::new(SELECT_STEP_SQL, vec![step_id.into()]),
        Statement::new(SELECT_RUN_SQL, vec![run_id.into()]),
        Statement::new(TASK_STATUS_OF_STEP_SQL, vec![step_id.into()]),
    ]
}

pub async fn complete<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let step_id = call.param("step_id");
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let (worker_id, run_id) = worker_and_run(call, &fields)?;
    let completion = reports::completion(&fields)?;
    let mut statements = reports::completion_statements(step_id, &run_id, &worker_id, &completion, call.now);
    let at = statements.len();
    statements.extend(read_back(step_id, &run_id));
    let results = core.db.batch(statements).await?;
    let (step, run) = owned(&results, at, step_id, &run_id, &worker_id)?;
    if !reports::completion_stands(&run.run_id, run.status, step.status, step.current_run_id.as_deref()) {
        return Err(not_current(&run, &step));
    }
    let task_status = settled_reply(&results, at)?;
    Reply::ok(&StepSettled { step, run, task_status, requeued: false })
}

pub async fn fail<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let step_id = call.param("step_id");
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let (worker_id, run_id) = worker_and_run(call, &fields)?;
    let report = reports::failure_report(&fields)?;
    let marker = core.new_id("settle");
    let mut statements = reports::failure_statements(step_id, &run_id, &worker_id, &report, &marker, call.now);
    let at = statements.len();
    statements.extend(read_back(step_id, &run_id));
    let results = core.db.batch(statements).await?;
    let (step, run) = owned(&results, at, step_id, &run_id, &worker_id)?;
    if !reports::failure_stands(run.status) {
        return Err(not_current(&run, &step));
    }
    let task_status = settled_reply(&results, at)?;
    let requeued = step.status == StepStatus::Ready;
    Reply::ok(&StepSettled { step, run, task_status, requeued })
}

/// A checkpoint row (with `blob_key, blob_offset, blob_length, logs_expired_at`) with its
/// content, read back from object storage when compaction moved it there (SPEC §17), or
/// `content_expired` once retention expired it.
pub(super) async fn checkpoint_with_content<D: Db, C: Clock, R: Random, B: Blobs>(
    core: &Core<D, C, R, B>,
    row: &super::db::Row,
) -> ApiResult<shared::wire::Checkpoint> {
    let mut checkpoint = records::checkpoint(row)?;
    if let Some(key) = row.opt_text("blob_key")? {
        let range = ByteRange { offset: row.i64("blob_offset")? as u64, length: row.i64("blob_length")? as u64 };
        match row.opt_i64("logs_expired_at")? {
            Some(_) => checkpoint.content_expired = true,
            None => match core.blobs.get(&key, Some(range)).await? {
                Some(member) => {
                    checkpoint.content = String::from_utf8(gunzip(&member)?)
                        .map_err(|_| ApiError::internal(format!("checkpoint object {key}: content is not UTF-8")))?
                }
                None => checkpoint.content_expired = true,
            },
        }
    }
    Ok(checkpoint)
}

pub async fn read_run<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let run_id = call.param("run_id");
    let results = core
        .db
        .batch(vec![Statement::new(SELECT_RUN_SQL, vec![run_id.into()]), Statement::new(SELECT_RUN_CHECKPOINTS_SQL, vec![run_id.into()])])
        .await?;
    let run = records::first(&results[0], records::run)?.ok_or_else(|| {
        let shown = super::auth::shown(run_id);
        ApiError::new(ErrorCode::RunNotFound, format!("no run {shown}")).with_detail("run_id", shown)
    })?;
    let mut checkpoints = Vec::with_capacity(results[1].len());
    for row in &results[1] {
        checkpoints.push(checkpoint_with_content(core, row).await?);
    }
    Reply::ok(&RunDetail { run, checkpoints })
}
