//! What a runner uploads about its runs — checkpoints and log chunks — validated, and the
//! statements that store them once (a resent upload is harmless). Shared, like the rest of
//! [`super::run_reports`], by the step routes and `agents.sync`.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::routes::MAX_UPLOAD_CONTENT_BYTES;
use shared::status::{CheckpointFormat, CheckpointType, LogStream};

use super::auth::encode_hex;
use super::db::{Row, Statement, MAX_SAFE_INTEGER};
use super::error::{ApiError, ApiResult};
use super::input::Fields;

pub const MAX_LOG_CHUNKS_PER_CALL: usize = 1_000;

// ?1 run, ?2 seq, ?3 step, ?4 worker, ?5 type, ?6 format, ?7 content, ?8 size, ?9 sha256, ?10 now.
pub(super) const INSERT_CHECKPOINT_SQL: &str =
    "INSERT INTO checkpoints (run_id, seq, step_id, task_id, checkpoint_type, format, content, size, sha256, created_at) \
     SELECT r.run_id, ?2, r.step_id, r.task_id, ?5, ?6, ?7, ?8, ?9, ?10 FROM runs r \
     WHERE r.run_id = ?1 AND r.step_id = ?3 AND r.worker_id = ?4 \
     ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq";
pub(super) const SELECT_CHECKPOINT_DIGEST_SQL: &str = "SELECT sha256 FROM checkpoints WHERE run_id = ?1 AND seq = ?2";

// ?1 run, ?2 step, ?3 worker, ?4 now, ?5 chunks JSON. All chunks in one statement. Output of a
// run already compacted is stored and the run compacted again (a trigger, SPEC §17), unless its
// seq was compacted before (a resend); output of a run whose logs the retention deleted is
// acknowledged and not stored.
pub(super) const INSERT_LOG_CHUNKS_SQL: &str = "INSERT INTO log_chunks (run_id, seq, task_id, step_id, stream, text, created_at) \
     SELECT r.run_id, json_extract(c.value, '$.seq'), r.task_id, r.step_id, json_extract(c.value, '$.stream'), \
       json_extract(c.value, '$.text'), ?4 \
     FROM runs r, json_each(?5) c WHERE r.run_id = ?1 AND r.step_id = ?2 AND r.worker_id = ?3 AND r.logs_expired_at IS NULL \
       AND NOT EXISTS (SELECT 1 FROM json_each(COALESCE(r.compacted_seqs, '[]')) x \
         WHERE json_extract(c.value, '$.seq') BETWEEN json_extract(x.value, '$[0]') AND json_extract(x.value, '$[1]')) \
     ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq";
pub(super) const RUN_OF_WORKER_SQL: &str = "SELECT run_id FROM runs WHERE run_id = ?1 AND step_id = ?2 AND worker_id = ?3";

/// A validated checkpoint upload.
pub(super) struct CheckpointUpload {
    pub seq: i64,
    pub checkpoint_type: CheckpointType,
    pub format: CheckpointFormat,
    pub content: String,
    pub size: i64,
    pub sha256: String,
}

pub(super) fn checkpoint_upload(fields: &Fields<'_>) -> ApiResult<CheckpointUpload> {
    let seq = fields.i64("seq", 0, MAX_SAFE_INTEGER)?;
    let checkpoint_type = fields.enumerated("checkpoint_type", CheckpointType::parse, &CheckpointType::choices())?;
    let format = fields.enumerated("format", CheckpointFormat::parse, &CheckpointFormat::choices())?;
    let content = fields.raw_str("content", MAX_UPLOAD_CONTENT_BYTES)?;
    let size = fields.i64("size", 0, MAX_UPLOAD_CONTENT_BYTES as i64)?;
    let sha256 = fields.str("sha256", 64)?;
    if size != content.len() as i64 {
        return Err(ApiError::invalid_field(&fields.name("size"), &format!("must equal the byte length of content ({})", content.len())));
    }
    if sha256 != encode_hex(&Sha256::digest(content.as_bytes())) {
        return Err(ApiError::invalid_field(&fields.name("sha256"), "must be the lowercase hex SHA-256 of content"));
    }
    if format == CheckpointFormat::Json && serde_json::from_str::<Value>(&content).is_err() {
        return Err(ApiError::invalid_field(&fields.name("content"), "must be valid JSON when format is json"));
    }
    Ok(CheckpointUpload { seq, checkpoint_type, format, content, size, sha256 })
}

/// The upload's statements: the insert (a row when stored now), the stored digest, and the
/// run (a row when it is this worker's run of this step).
pub(super) fn checkpoint_statements(step_id: &str, run_id: &str, worker_id: &str, upload: &CheckpointUpload, now: i64) -> Vec<Statement> {
    vec![
        Statement::new(
            INSERT_CHECKPOINT_SQL,
            vec![
                run_id.into(),
                upload.seq.into(),
                step_id.into(),
                worker_id.into(),
                upload.checkpoint_type.as_str().into(),
                upload.format.as_str().into(),
                upload.content.clone().into(),
                upload.size.into(),
                upload.sha256.clone().into(),
                now.into(),
            ],
        ),
        Statement::new(SELECT_CHECKPOINT_DIGEST_SQL, vec![run_id.into(), upload.seq.into()]),
        Statement::new(RUN_OF_WORKER_SQL, vec![run_id.into(), step_id.into(), worker_id.into()]),
    ]
}

/// How a checkpoint upload ended, from its three statements' rows.
pub(super) enum CheckpointOutcome {
    Created,
    AlreadyStored,
    /// Another checkpoint was stored under this seq.
    Conflict,
    /// Not this worker's run of this step.
    NotOwned,
}

pub(super) fn checkpoint_outcome(results: &[Vec<Row>], at: usize, upload: &CheckpointUpload) -> ApiResult<CheckpointOutcome> {
    if results[at + 2].is_empty() {
        return Ok(CheckpointOutcome::NotOwned);
    }
    if !results[at].is_empty() {
        return Ok(CheckpointOutcome::Created);
    }
    let stored = results[at + 1].first().map(|row| row.text("sha256")).transpose()?;
    Ok(if stored.as_deref() == Some(upload.sha256.as_str()) { CheckpointOutcome::AlreadyStored } else { CheckpointOutcome::Conflict })
}

/// Validated log chunks of one upload: as JSON for the insert, with their count and bytes.
pub(super) struct LogUpload {
    pub chunks_json: String,
    pub count: i64,
    pub text_bytes: usize,
}

pub(super) fn log_upload(fields: &Fields<'_>) -> ApiResult<LogUpload> {
    let name = fields.name("chunks");
    let items = fields.opt_array("chunks")?.ok_or_else(|| ApiError::invalid_field(&name, "is required: an array of log chunks"))?;
    if items.is_empty() || items.len() > MAX_LOG_CHUNKS_PER_CALL {
        return Err(ApiError::invalid_field(&name, &format!("must have from 1 to {MAX_LOG_CHUNKS_PER_CALL} entries")));
    }
    let mut chunks = Vec::with_capacity(items.len());
    let mut text_bytes = 0usize;
    for (index, item) in items.iter().enumerate() {
        let item_name = format!("{name}[{index}]");
        let Value::Object(map) = item else { return Err(ApiError::invalid_field(&item_name, "must be an object")) };
        let chunk = Fields::nested(map, item_name);
        let seq = chunk.i64("seq", 0, MAX_SAFE_INTEGER)?;
        let stream = chunk.enumerated("stream", LogStream::parse, &LogStream::choices())?;
        let text = chunk.raw_str("text", MAX_UPLOAD_CONTENT_BYTES)?;
        text_bytes += text.len();
        chunks.push((seq, stream, text));
    }
    if text_bytes > MAX_UPLOAD_CONTENT_BYTES {
        return Err(ApiError::invalid_field(&name, &format!("text must add up to at most {MAX_UPLOAD_CONTENT_BYTES} bytes")));
    }
    chunks.sort_by_key(|(seq, _, _)| *seq);
    if let Some(pair) = chunks.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(ApiError::invalid_field(&name, &format!("has seq {} more than once", pair[0].0)));
    }
    let count = chunks.len() as i64;
    let chunks_json: Vec<Value> =
        chunks.into_iter().map(|(seq, stream, text)| json!({"seq": seq, "stream": stream.as_str(), "text": text})).collect();
    Ok(LogUpload { chunks_json: Value::Array(chunks_json).to_string(), count, text_bytes })
}

/// The upload's statements: the insert (a row per chunk stored now) and the run (a row when it
/// is this worker's run of this step). Chunks already stored are skipped, so a resent batch
/// is harmless.
pub(super) fn log_statements(step_id: &str, run_id: &str, worker_id: &str, upload: &LogUpload, now: i64) -> Vec<Statement> {
    vec![
        Statement::new(
            INSERT_LOG_CHUNKS_SQL,
            vec![run_id.into(), step_id.into(), worker_id.into(), now.into(), upload.chunks_json.clone().into()],
        ),
        Statement::new(RUN_OF_WORKER_SQL, vec![run_id.into(), step_id.into(), worker_id.into()]),
    ]
}
