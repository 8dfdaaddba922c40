//! Column lists and row decoders for each record the API returns. Every statement that
//! yields a record selects (or returns) exactly its column list, so decoding lives here once.

use serde_json::{Map, Value as Json};
use shared::status::*;
use shared::wire::{
    Checkpoint, Controller, FeedEvent, Lease, LogChunk, ModeChange, ParkedAccount, Run, Step, Task, TaskEvent, TimelineRun,
};

use super::db::{DbError, Row};

macro_rules! task_columns {
    () => {
        "task_id, repo, task_type, title, goal, priority, status, constraints_json, acceptance_json, \
         metadata_json, target_host, base_ref, branch_name, planner_provider, planning_strategy, \
         claimed_by, claim_term, created_at, updated_at, started_at, finished_at, status_reason, \
         assigned_host, base_commit, result_json, task_key, depends_on_json, write_scope_json, review, report_json"
    };
}

macro_rules! step_columns {
    () => {
        "step_id, task_id, step_index, step_kind, worker_kind, title, command, prompt, timeout_sec, \
         status, attempt, max_attempts, target_host, worker_id, current_run_id, heartbeat_deadline_at, \
         created_at, started_at, finished_at, exit_code, summary, error, metadata_json, round"
    };
}

macro_rules! run_columns {
    () => {
        "run_id, step_id, task_id, worker_id, host, attempt, status, claimed_at, started_at, \
         finished_at, last_heartbeat_at, exit_code, summary, error, result_json, progress_json, usage_json"
    };
}

macro_rules! controller_columns {
    () => {
        "controller_id, host, role, priority, status, version, started_at, metadata_json, \
         first_seen_at, last_heartbeat_at"
    };
}

macro_rules! lease_columns {
    () => {
        "lease_name, holder_id, holder_host, term, lease_expires_at, renewed_at, preferred_holder_id, \
         metadata_json, last_operation"
    };
}

macro_rules! checkpoint_columns {
    () => {
        "run_id, seq, step_id, task_id, checkpoint_type, format, content, size, sha256, created_at"
    };
}

macro_rules! log_chunk_columns {
    () => {
        "cursor, run_id, seq, task_id, step_id, stream, text, created_at"
    };
}

macro_rules! task_event_columns {
    () => {
        "event_id, kind, message, created_at"
    };
}

macro_rules! mode_change_columns {
    () => {
        "change_id, mode, previous_mode, requested_by, reason, principal, request_id, changed_at"
    };
}

/// `EXISTS(...)`: the caller holds the live global lease in the given term. Arguments are
/// the parameter numbers of controller id, term and now.
macro_rules! fence {
    ($controller:literal, $term:literal, $now:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM leader_lease WHERE lease_name = 'global' AND holder_id = ?",
            $controller,
            " AND term = ?",
            $term,
            " AND lease_expires_at > ?",
            $now,
            ")"
        )
    };
}

pub(crate) use {
    checkpoint_columns, controller_columns, fence, lease_columns, log_chunk_columns, mode_change_columns, run_columns, step_columns,
    task_columns, task_event_columns,
};

fn parse_enum<T>(row: &Row, column: &str, parse: fn(&str) -> Option<T>) -> Result<T, DbError> {
    let text = row.text(column)?;
    parse(&text).ok_or_else(|| DbError::Decode(format!("column {column}: unknown value {text:?}")))
}

fn json_object(row: &Row, column: &str) -> Result<Map<String, Json>, DbError> {
    match row.opt_text(column)? {
        None => Ok(Map::new()),
        Some(text) => match serde_json::from_str(&text) {
            Ok(Json::Object(map)) => Ok(map),
            _ => Err(DbError::Decode(format!("column {column}: not a JSON object"))),
        },
    }
}

fn json_value(row: &Row, column: &str) -> Result<Option<Json>, DbError> {
    row.opt_text(column)?
        .map(|text| serde_json::from_str(&text).map_err(|error| DbError::Decode(format!("column {column}: {error}"))))
        .transpose()
}

pub fn task(row: &Row) -> Result<Task, DbError> {
    let acceptance = match json_value(row, "acceptance_json")? {
        Some(Json::Array(items)) => items.into_iter().filter_map(|item| item.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    Ok(Task {
        task_id: row.text("task_id")?,
        repo: row.text("repo")?,
        task_type: parse_enum(row, "task_type", TaskType::parse)?,
        title: row.text("title")?,
        goal: row.text("goal")?,
        priority: row.i64("priority")?,
        status: parse_enum(row, "status", TaskStatus::parse)?,
        constraints: json_object(row, "constraints_json")?,
        acceptance,
        metadata: json_object(row, "metadata_json")?,
        target_host: row.opt_text("target_host")?,
        base_ref: row.text("base_ref")?,
        branch_name: row.text("branch_name")?,
        planner_provider: row.opt_text("planner_provider")?,
        planning_strategy: row.opt_text("planning_strategy")?,
        claimed_by: row.opt_text("claimed_by")?,
        claim_term: row.opt_i64("claim_term")?,
        created_at: row.i64("created_at")?,
        updated_at: row.i64("updated_at")?,
        started_at: row.opt_i64("started_at")?,
        finished_at: row.opt_i64("finished_at")?,
        status_reason: row.opt_text("status_reason")?,
        assigned_host: row.opt_text("assigned_host")?,
        base_commit: row.opt_text("base_commit")?,
        result: json_value(row, "result_json")?
            .map(|value| serde_json::from_value(value).map_err(|error| DbError::Decode(format!("column result_json: {error}"))))
            .transpose()?,
        key: row.opt_text("task_key")?,
        depends_on: string_list(row, "depends_on_json")?,
        write_scope: string_list(row, "write_scope_json")?,
        review: row.i64("review")? != 0,
        waiting_reason: None,
        round: None,
    })
}

/// A JSON array of strings kept in a text column.
fn string_list(row: &Row, column: &str) -> Result<Vec<String>, DbError> {
    match json_value(row, column)? {
        None => Ok(Vec::new()),
        Some(Json::Array(items)) => Ok(items.into_iter().filter_map(|item| item.as_str().map(str::to_string)).collect()),
        Some(_) => Err(DbError::Decode(format!("column {column}: not a JSON array"))),
    }
}

pub fn step(row: &Row) -> Result<Step, DbError> {
    Ok(Step {
        step_id: row.text("step_id")?,
        task_id: row.text("task_id")?,
        step_index: row.i64("step_index")?,
        step_kind: parse_enum(row, "step_kind", StepKind::parse)?,
        worker_kind: row.text("worker_kind")?,
        title: row.text("title")?,
        command: row.opt_text("command")?,
        prompt: row.opt_text("prompt")?,
        timeout_sec: row.i64("timeout_sec")?,
        status: parse_enum(row, "status", StepStatus::parse)?,
        attempt: row.i64("attempt")?,
        max_attempts: row.i64("max_attempts")?,
        target_host: row.opt_text("target_host")?,
        worker_id: row.opt_text("worker_id")?,
        current_run_id: row.opt_text("current_run_id")?,
        heartbeat_deadline_at: row.opt_i64("heartbeat_deadline_at")?,
        created_at: row.i64("created_at")?,
        started_at: row.opt_i64("started_at")?,
        finished_at: row.opt_i64("finished_at")?,
        exit_code: row.opt_i64("exit_code")?,
        summary: row.opt_text("summary")?,
        error: row.opt_text("error")?,
        metadata: json_object(row, "metadata_json")?,
        round: row.i64("round")?,
        waiting_reason: None,
    })
}

pub fn run(row: &Row) -> Result<Run, DbError> {
    Ok(Run {
        run_id: row.text("run_id")?,
        step_id: row.text("step_id")?,
        task_id: row.text("task_id")?,
        worker_id: row.text("worker_id")?,
        host: row.text("host")?,
        attempt: row.i64("attempt")?,
        status: parse_enum(row, "status", RunStatus::parse)?,
        claimed_at: row.i64("claimed_at")?,
        started_at: row.opt_i64("started_at")?,
        finished_at: row.opt_i64("finished_at")?,
        last_heartbeat_at: row.opt_i64("last_heartbeat_at")?,
        exit_code: row.opt_i64("exit_code")?,
        summary: row.opt_text("summary")?,
        error: row.opt_text("error")?,
        result: json_value(row, "result_json")?,
        progress: json_value(row, "progress_json")?,
        usage: row.opt_text("usage_json")?.and_then(|text| serde_json::from_str(&text).ok()),
    })
}

/// A row of `runs.list` (a run with its step's kind, title and round and its task's key and title).
pub fn timeline_run(row: &Row) -> Result<TimelineRun, DbError> {
    Ok(TimelineRun {
        run_id: row.text("run_id")?,
        task_id: row.text("task_id")?,
        task_key: row.opt_text("task_key")?,
        task_title: row.text("task_title")?,
        step_id: row.text("step_id")?,
        step_kind: parse_enum(row, "step_kind", StepKind::parse)?,
        step_title: row.text("step_title")?,
        round: row.i64("round")?,
        host: row.text("host")?,
        worker_id: row.text("worker_id")?,
        attempt: row.i64("attempt")?,
        status: parse_enum(row, "status", RunStatus::parse)?,
        claimed_at: row.i64("claimed_at")?,
        started_at: row.opt_i64("started_at")?,
        finished_at: row.opt_i64("finished_at")?,
        exit_code: row.opt_i64("exit_code")?,
        error: row.opt_text("error")?,
    })
}

pub fn controller(row: &Row, now: i64, liveness_sec: i64) -> Result<Controller, DbError> {
    let last_heartbeat_at = row.i64("last_heartbeat_at")?;
    Ok(Controller {
        controller_id: row.text("controller_id")?,
        host: row.text("host")?,
        role: parse_enum(row, "role", ControllerRole::parse)?,
        priority: row.i64("priority")?,
        status: row.text("status")?,
        version: row.opt_text("version")?,
        started_at: row.opt_i64("started_at")?,
        metadata: json_object(row, "metadata_json")?,
        first_seen_at: row.i64("first_seen_at")?,
        last_heartbeat_at,
        alive: now - last_heartbeat_at <= liveness_sec,
    })
}

pub fn lease(row: &Row) -> Result<Lease, DbError> {
    Ok(Lease {
        lease_name: row.text("lease_name")?,
        holder_id: row.opt_text("holder_id")?,
        holder_host: row.opt_text("holder_host")?,
        term: row.i64("term")?,
        lease_expires_at: row.i64("lease_expires_at")?,
        renewed_at: row.i64("renewed_at")?,
        preferred_holder_id: row.opt_text("preferred_holder_id")?,
        metadata_json: row.opt_text("metadata_json")?,
    })
}

pub fn checkpoint(row: &Row) -> Result<Checkpoint, DbError> {
    Ok(Checkpoint {
        run_id: row.text("run_id")?,
        step_id: row.text("step_id")?,
        task_id: row.text("task_id")?,
        seq: row.i64("seq")?,
        checkpoint_type: parse_enum(row, "checkpoint_type", CheckpointType::parse)?,
        format: parse_enum(row, "format", CheckpointFormat::parse)?,
        content: row.text("content")?,
        size: row.i64("size")?,
        sha256: row.text("sha256")?,
        created_at: row.i64("created_at")?,
        content_expired: false,
    })
}

pub fn log_chunk(row: &Row) -> Result<LogChunk, DbError> {
    Ok(LogChunk {
        cursor: row.i64("cursor")?,
        task_id: row.text("task_id")?,
        step_id: row.text("step_id")?,
        run_id: row.text("run_id")?,
        seq: row.i64("seq")?,
        stream: parse_enum(row, "stream", LogStream::parse)?,
        text: row.text("text")?,
        created_at: row.i64("created_at")?,
    })
}

pub fn task_event(row: &Row) -> Result<TaskEvent, DbError> {
    Ok(TaskEvent {
        event_id: row.i64("event_id")?,
        kind: row.text("kind")?,
        message: row.text("message")?,
        created_at: row.i64("created_at")?,
    })
}

pub fn mode_change(row: &Row) -> Result<ModeChange, DbError> {
    Ok(ModeChange {
        change_id: row.i64("change_id")?,
        mode: parse_enum(row, "mode", SystemMode::parse)?,
        previous_mode: parse_enum(row, "previous_mode", SystemMode::parse)?,
        requested_by: row.text("requested_by")?,
        reason: row.opt_text("reason")?,
        principal: row.text("principal")?,
        request_id: row.text("request_id")?,
        changed_at: row.i64("changed_at")?,
    })
}

pub fn mode(row: &Row) -> Result<SystemMode, DbError> {
    parse_enum(row, "mode", SystemMode::parse)
}

/// Decodes every row with `decode`.
pub fn all<T>(rows: &[Row], decode: fn(&Row) -> Result<T, DbError>) -> Result<Vec<T>, DbError> {
    rows.iter().map(decode).collect()
}

/// Decodes the first row, if any.
pub fn first<T>(rows: &[Row], decode: fn(&Row) -> Result<T, DbError>) -> Result<Option<T>, DbError> {
    rows.first().map(decode).transpose()
}

pub fn parked_account(row: &Row) -> Result<ParkedAccount, DbError> {
    Ok(ParkedAccount {
        account: row.text("account")?,
        parked_until: row.i64("parked_until")?,
        message: row.text("message")?,
        parked_at: row.i64("parked_at")?,
        parked_by: row.text("parked_by")?,
    })
}

pub fn event(row: &Row) -> Result<FeedEvent, DbError> {
    Ok(FeedEvent {
        event_id: row.i64("event_id")?,
        kind: row.text("kind")?,
        task_id: row.opt_text("task_id")?,
        subject: row.text("subject")?,
        message: row.text("message")?,
        created_at: row.i64("created_at")?,
    })
}
