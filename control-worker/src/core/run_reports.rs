//! What a runner reports about its runs: the validated input and the
//! statements of each, shared by the step routes ([`super::steps`]) and `agents.sync`
//! ([`super::sync`]). Every statement names the run and acts only while it is this worker's
//! current attempt, so a late or repeated report from a lost attempt changes nothing.

use serde_json::Value;
use shared::ids::is_commit_id;
use shared::status::{RunStatus, StepStatus};
use shared::wire::{TaskResult, Usage};

use super::db::{Statement, Value as DbValue, MAX_SAFE_INTEGER};
use super::error::{ApiError, ApiResult};
use super::input::{Fields, MAX_SHORT_TEXT_LEN, MAX_TEXT_LEN};
use super::retry::Failure;
pub(super) use super::run_uploads::{
    checkpoint_outcome, checkpoint_statements, checkpoint_upload, log_statements, log_upload, CheckpointOutcome, CheckpointUpload,
    LogUpload,
};
use super::settle::{self, AttemptEnd};

pub const MAX_HEARTBEAT_TTL_SEC: i64 = 3_600;
pub use super::run_uploads::MAX_LOG_CHUNKS_PER_CALL;

// ?1 step, ?2 run, ?3 worker, ?4 now, ?5 ttl. A canceled step still answers, so the worker
// learns of the cancel; its deadline is no longer extended.
pub(super) const HEARTBEAT_STEP_SQL: &str = "UPDATE steps SET \
       heartbeat_deadline_at = CASE WHEN status IN ('claimed', 'running') THEN ?4 + ?5 ELSE heartbeat_deadline_at END, \
       started_at = CASE WHEN status = 'claimed' THEN ?4 ELSE started_at END, \
       status = CASE WHEN status = 'claimed' THEN 'running' ELSE status END \
     WHERE step_id = ?1 AND current_run_id = ?2 AND worker_id = ?3 AND status IN ('claimed', 'running', 'canceled') \
     RETURNING step_id, status, heartbeat_deadline_at";

pub(super) const HEARTBEAT_RUN_SQL: &str = "UPDATE runs SET last_heartbeat_at = ?4, progress_json = COALESCE(?5, progress_json), \
       started_at = COALESCE(started_at, ?4), status = CASE WHEN status = 'claimed' THEN 'running' ELSE status END \
     WHERE run_id = ?2 AND step_id = ?1 AND worker_id = ?3 AND status IN ('claimed', 'running')";

// ?1 step, ?2 run, ?3 worker, ?4 result JSON or NULL, ?5 base commit or NULL. Runs before
// the statement that settles the attempt, under the same condition (this worker's current,
// active run), so only an attempt that counts writes the task's result. The base commit is
// recorded once: every later step and retry builds on the first one.
pub(super) const RECORD_TASK_RESULT_SQL: &str = "UPDATE tasks SET result_json = COALESCE(?4, result_json), \
       base_commit = COALESCE(base_commit, ?5), report_json = COALESCE(?6, report_json) \
     WHERE task_id = (SELECT task_id FROM steps WHERE step_id = ?1 AND current_run_id = ?2 AND worker_id = ?3 \
       AND status IN ('claimed', 'running'))";

// ?1 step, ?2 run, ?3 worker, ?4 now, ?5 exit code, ?6 summary, ?7 result JSON.
pub(super) const COMPLETE_STEP_SQL: &str = "UPDATE steps SET status = 'succeeded', finished_at = ?4, exit_code = ?5, summary = ?6, \
       heartbeat_deadline_at = NULL \
     WHERE step_id = ?1 AND current_run_id = ?2 AND worker_id = ?3 AND status IN ('claimed', 'running') RETURNING step_id";
pub(super) const COMPLETE_RUN_SQL: &str = "UPDATE runs SET \
       status = CASE (SELECT status FROM steps WHERE step_id = ?1) WHEN 'canceled' THEN 'canceled' ELSE 'succeeded' END, \
       finished_at = ?4, exit_code = ?5, summary = ?6, result_json = ?7, started_at = COALESCE(started_at, ?4) \
     WHERE run_id = ?2 AND step_id = ?1 AND worker_id = ?3 AND status IN ('claimed', 'running') \
       AND (SELECT current_run_id FROM steps WHERE step_id = ?1) = ?2 \
       AND (SELECT status FROM steps WHERE step_id = ?1) IN ('succeeded', 'canceled')";
pub(super) const READY_NEXT_STEP_SQL: &str = "UPDATE steps SET status = 'ready', ready_at = ?2 \
     WHERE task_id = (SELECT task_id FROM steps WHERE step_id = ?1) \
       AND step_index = (SELECT step_index + 1 FROM steps WHERE step_id = ?1) \
       AND status = 'pending' AND (SELECT status FROM steps WHERE step_id = ?1) = 'succeeded' \
       AND (SELECT t.status FROM tasks t JOIN steps s ON s.task_id = t.task_id WHERE s.step_id = ?1) = 'running'";
// Its last round's steps all succeeded (earlier rounds failed, SPEC §13). A task created with
// `review` waits in `review` for a person instead (SPEC §12).
pub(super) const FINISH_SUCCEEDED_TASK_SQL: &str = "UPDATE tasks SET \
       status = CASE WHEN review = 1 THEN 'review' ELSE 'succeeded' END, \
       finished_at = CASE WHEN review = 1 THEN NULL ELSE ?2 END, updated_at = ?2 \
     WHERE task_id = (SELECT task_id FROM steps WHERE step_id = ?1) AND status = 'running' \
       AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.task_id = tasks.task_id AND s.status <> 'succeeded' \
         AND s.round = (SELECT MAX(r.round) FROM steps r WHERE r.task_id = tasks.task_id))";

// A run of a canceled step reports in: recorded as canceled, the step stays canceled.
// ?1 run, ?2 step, ?3 now, ?4 exit code, ?5 error, ?6 worker.
pub(super) const RECORD_CANCELED_RUN_SQL: &str = "UPDATE runs SET status = 'canceled', finished_at = ?3, exit_code = ?4, error = ?5, \
       started_at = COALESCE(started_at, ?3) \
     WHERE run_id = ?1 AND step_id = ?2 AND worker_id = ?6 AND status IN ('claimed', 'running') \
       AND EXISTS (SELECT 1 FROM steps WHERE step_id = ?2 AND current_run_id = ?1 AND status = 'canceled')";

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
    let name = fields.name("task_result");
    let Value::Object(map) = &value else { return Err(ApiError::invalid_field(&name, "must be an object")) };
    let nested = Fields::nested(map, name.clone());
    let base_commit = opt_commit(&nested, "base_commit")?;
    opt_commit(&nested, "head_commit")?;
    let result: TaskResult = serde_json::from_value(value.clone())
        .map_err(|error| ApiError::invalid_field(&name, &format!("must be a task result object: {error}")))?;
    let text = serde_json::to_string(&result).map_err(|error| ApiError::internal(error.to_string()))?;
    if text.len() > MAX_TEXT_LEN {
        return Err(ApiError::invalid_field(&name, &format!("must serialise to at most {MAX_TEXT_LEN} bytes")));
    }
    Ok((Some(text), base_commit))
}

/// A step heartbeat of a run.
pub(super) struct Beat {
    pub progress: Option<String>,
    pub base_commit: Option<String>,
}

pub(super) fn beat(fields: &Fields<'_>) -> ApiResult<Beat> {
    let progress = fields.opt_object("progress")?.map(|progress| Value::Object(progress).to_string());
    Ok(Beat { progress, base_commit: opt_commit(fields, "base_commit")? })
}

/// The heartbeat's statements; the second returns the step's `status` and deadline when the
/// run is still this worker's current one (a canceled step answers too, so the worker learns
/// of the cancel), nothing otherwise.
pub(super) fn beat_statements(step_id: &str, run_id: &str, worker_id: &str, ttl: i64, beat: &Beat, now: i64) -> Vec<Statement> {
    vec![
        Statement::new(
            RECORD_TASK_RESULT_SQL,
            vec![step_id.into(), run_id.into(), worker_id.into(), DbValue::Null, beat.base_commit.clone().into(), DbValue::Null],
        ),
        Statement::new(HEARTBEAT_STEP_SQL, vec![step_id.into(), run_id.into(), worker_id.into(), now.into(), ttl.into()]),
        Statement::new(HEARTBEAT_RUN_SQL, vec![step_id.into(), run_id.into(), worker_id.into(), now.into(), beat.progress.clone().into()]),
    ]
}

/// A validated completion of a run.
pub(super) struct Completion {
    pub summary: String,
    pub exit_code: i64,
    pub result: Option<String>,
    pub task_result: Option<String>,
    pub base_commit: Option<String>,
    /// The agent's report sections as JSON text.
    pub report: Option<String>,
    /// The agent's usage file as JSON text.
    pub usage: Option<String>,
}

/// `usage: {input_tokens?, output_tokens?, cost_usd?, model?}` of a completion or failure, as
/// JSON text of the known fields.
fn usage(fields: &Fields<'_>) -> ApiResult<Option<String>> {
    let Some(usage) = fields.opt_object("usage")? else { return Ok(None) };
    let name = fields.name("usage");
    let usage_fields = Fields::nested(&usage, name.clone());
    usage_fields.opt_i64("input_tokens", 0, MAX_SAFE_INTEGER)?;
    usage_fields.opt_i64("output_tokens", 0, MAX_SAFE_INTEGER)?;
    usage_fields.opt_str("model", MAX_SHORT_TEXT_LEN)?;
    usage_fields.opt_str("session_id", MAX_SHORT_TEXT_LEN)?;
    usage_fields.opt_str("agent", MAX_SHORT_TEXT_LEN)?;
    match usage.get("cost_usd") {
        None | Some(Value::Null) => {}
        Some(Value::Number(cost)) if cost.as_f64().is_some_and(|cost| (0.0..1e9).contains(&cost)) => {}
        Some(_) => return Err(ApiError::invalid_field(&format!("{name}.cost_usd"), "must be a number from 0 to 1e9")),
    }
    let known: Usage = serde_json::from_value(Value::Object(usage)).map_err(|error| ApiError::invalid_field(&name, &error.to_string()))?;
    Ok(serde_json::to_string(&known).ok())
}

// ?1 run, ?2 worker, ?3 usage JSON or NULL.
const RECORD_RUN_USAGE_SQL: &str = "UPDATE runs SET usage_json = ?3 WHERE run_id = ?1 AND worker_id = ?2 AND ?3 IS NOT NULL";

fn record_usage(run_id: &str, worker_id: &str, usage: &Option<String>) -> Statement {
    Statement::new(RECORD_RUN_USAGE_SQL, vec![run_id.into(), worker_id.into(), usage.clone().into()])
}

pub(super) fn completion(fields: &Fields<'_>) -> ApiResult<Completion> {
    let summary = fields.raw_str("summary", MAX_TEXT_LEN)?;
    let exit_code = fields.i64("exit_code", -(1 << 31), (1 << 31) - 1)?;
    let result = fields.opt_value("result").map(|result| result.to_string());
    if result.as_ref().is_some_and(|result| result.len() > MAX_TEXT_LEN) {
        return Err(ApiError::invalid_field(&fields.name("result"), &format!("must serialise to at most {MAX_TEXT_LEN} bytes")));
    }
    let (task_result, base_commit) = task_result(fields)?;
    let report = super::report::agent_report(fields)?;
    Ok(Completion { summary, exit_code, result, task_result, base_commit, report, usage: usage(fields)? })
}

/// How many statements [`completion_statements`] and [`failure_statements`] make.
pub(super) const COMPLETION_STATEMENTS: usize = 6;
/// Of a failure without a usage limit; see [`FailureReport::statement_count`].
pub(super) const FAILURE_STATEMENTS: usize = 10;

/// The completion's statements: the task's result, the step and run succeeded (or the run
/// canceled, for a canceled step), the next step ready, the task succeeded after its last.
pub(super) fn completion_statements(step_id: &str, run_id: &str, worker_id: &str, completion: &Completion, now: i64) -> Vec<Statement> {
    // ?1 step … ?6 summary serve both statements; the run also takes ?7 result.
    let run_args: Vec<DbValue> = vec![
        step_id.into(),
        run_id.into(),
        worker_id.into(),
        now.into(),
        completion.exit_code.into(),
        completion.summary.clone().into(),
        completion.result.clone().into(),
    ];
    vec![
        Statement::new(
            RECORD_TASK_RESULT_SQL,
            vec![
                step_id.into(),
                run_id.into(),
                worker_id.into(),
                completion.task_result.clone().into(),
                completion.base_commit.clone().into(),
                completion.report.clone().into(),
            ],
        ),
        record_usage(run_id, worker_id, &completion.usage),
        Statement::new(COMPLETE_STEP_SQL, run_args[..6].to_vec()),
        Statement::new(COMPLETE_RUN_SQL, run_args),
        Statement::new(READY_NEXT_STEP_SQL, vec![step_id.into(), now.into()]),
        Statement::new(FINISH_SUCCEEDED_TASK_SQL, vec![step_id.into(), now.into()]),
    ]
}

#[cfg(test)]
#[test]
fn the_statement_counts_are_right() {
    let completion =
        Completion { summary: String::new(), exit_code: 0, result: None, task_result: None, base_commit: None, report: None, usage: None };
    assert_eq!(completion_statements("s", "r", "w", &completion, 0).len(), COMPLETION_STATEMENTS);
    let report = FailureReport {
        error: "e".into(),
        exit_code: None,
        failure: Failure::Error,
        task_result: None,
        base_commit: None,
        report: None,
        quota: None,
        usage: None,
    };
    assert_eq!(failure_statements("s", "r", "w", &report, "m", 0).len(), report.statement_count());
    let quota = FailureReport { quota: Some(("team".into(), None, "limit".into())), failure: Failure::Quota, ..report };
    assert_eq!(failure_statements("s", "r", "w", &quota, "m", 0).len(), quota.statement_count());
}

/// Whether a completion of `run_id` stands, as its step and run are after it: the first one
/// and any repeat of it answer the same; anything else is a lost attempt.
pub(super) fn completion_stands(run_id: &str, run_status: RunStatus, step_status: StepStatus, current_run_id: Option<&str>) -> bool {
    current_run_id == Some(run_id)
        && matches!((step_status, run_status), (StepStatus::Succeeded, RunStatus::Succeeded) | (StepStatus::Canceled, RunStatus::Canceled))
}

/// A validated failure report of one run.
pub(super) struct FailureReport {
    pub error: String,
    pub exit_code: Option<i64>,
    pub failure: Failure,
    pub task_result: Option<String>,
    pub base_commit: Option<String>,
    pub report: Option<String>,
    /// The usage limit the coding agent hit (SPEC §13): `(account, resets_at, message)`.
    pub quota: Option<(String, Option<i64>, String)>,
    /// The agent's usage file as JSON text.
    pub usage: Option<String>,
}

impl FailureReport {
    /// How many statements [`failure_statements`] makes of it.
    pub fn statement_count(&self) -> usize {
        FAILURE_STATEMENTS + if self.quota.is_some() { super::quota::PARK_STATEMENTS } else { 0 }
    }
}

/// `quota: {account, resets_at?, message}` of a failure report.
fn quota(fields: &Fields<'_>) -> ApiResult<Option<(String, Option<i64>, String)>> {
    let Some(quota) = fields.opt_object("quota")? else { return Ok(None) };
    let quota = Fields::nested(&quota, fields.name("quota"));
    let account = quota.str("account", MAX_SHORT_TEXT_LEN)?;
    let resets_at = quota.opt_i64("resets_at", 0, MAX_SAFE_INTEGER)?;
    let message = quota.str("message", MAX_TEXT_LEN)?;
    Ok(Some((account, resets_at, message)))
}

pub(super) fn failure_report(fields: &Fields<'_>) -> ApiResult<FailureReport> {
    let error = fields.str("error", MAX_TEXT_LEN)?;
    let exit_code = fields.opt_i64("exit_code", -(1 << 31), (1 << 31) - 1)?;
    let (task_result, base_commit) = task_result(fields)?;
    let quota = quota(fields)?;
    let failure = if quota.is_some() {
        Failure::Quota
    } else if fields.bool_or_false("needs_human")? {
        Failure::NeedsHuman
    } else if fields.bool_or_false("blocked")? {
        Failure::Blocked
    } else if fields.bool_or_false("timed_out")? {
        Failure::TimedOut
    } else {
        Failure::Error
    };
    let report = super::report::agent_report(fields)?;
    Ok(FailureReport { error, exit_code, failure, task_result, base_commit, report, quota, usage: usage(fields)? })
}

/// The failure's statements, with no read before them: the task's result, the settlement of
/// the attempt if it is still this worker's current, active one (the retry policy applied in
/// SQL, see [`settle`]), or the record of a canceled step's run. A repeat changes nothing.
pub(super) fn failure_statements(
    step_id: &str,
    run_id: &str,
    worker_id: &str,
    report: &FailureReport,
    marker: &str,
    now: i64,
) -> Vec<Statement> {
    let mut statements = vec![
        Statement::new(
            RECORD_TASK_RESULT_SQL,
            vec![
                step_id.into(),
                run_id.into(),
                worker_id.into(),
                report.task_result.clone().into(),
                report.base_commit.clone().into(),
                report.report.clone().into(),
            ],
        ),
        record_usage(run_id, worker_id, &report.usage),
        settle::mark_attempt(marker, step_id, run_id, worker_id),
    ];
    statements.extend(settle::settle_marked(&AttemptEnd {
        failure: report.failure,
        exit_code: report.exit_code,
        error: Some(&report.error),
        marker,
        now,
    }));
    statements.push(Statement::new(
        RECORD_CANCELED_RUN_SQL,
        vec![run_id.into(), step_id.into(), now.into(), report.exit_code.into(), report.error.clone().into(), worker_id.into()],
    ));
    if let Some((account, resets_at, message)) = &report.quota {
        statements.extend(super::quota::park_statements(marker, account, *resets_at, message, worker_id, now));
    }
    statements
}

/// Whether a failure report stands, as its run is after it: the run ended as a failure (now,
/// or by an earlier copy of the same report) or was canceled.
pub(super) fn failure_stands(run_status: RunStatus) -> bool {
    matches!(run_status, RunStatus::Failed | RunStatus::TimedOut | RunStatus::Blocked | RunStatus::Canceled)
}
