//! `tasks.logs`: one page of a task's output after a cursor, whether its chunks are still rows
//! (a live run, or a finished one not yet compacted) or in compacted objects (SPEC §17). A page
//! answers the same chunks, in the same cursor order, either way, and may span both.
//!
//! The live rows, the task and the objects' rows come from one database round trip (one
//! snapshot: a compaction commits rows away and an object's row in at once). Objects are then
//! read by ranges, a block at a time, and only as far as the page needs.

use shared::status::LogStream;
use shared::wire::{LogChunk, LogPage};
use shared::ErrorCode;

use super::blobs::{Blobs, ByteRange};
use super::clock::{Clock, Random};
use super::db::{Db, Row, Statement, MAX_SAFE_INTEGER};
use super::error::{ApiError, ApiResult};
use super::input::{parse_query, query_enum, query_i64, query_param};
use super::log_object::{read_block, read_index, BlockEntry, StoredChunk};
use super::records::{self, log_chunk_columns};
use super::tasks::{task_not_found, TASK_EXISTS_SQL};
use super::{Call, Core, Reply};

const READ_LOGS_SQL: &str = concat!(
    "SELECT ",
    log_chunk_columns!(),
    " FROM log_chunks WHERE task_id = ?1 AND cursor > ?2 AND (?3 IS NULL OR step_id = ?3) \
       AND (?4 IS NULL OR run_id = ?4) AND (?5 IS NULL OR stream = ?5) ORDER BY cursor LIMIT ?6"
);
// The objects that may hold chunks after the cursor, in the order their chunks begin; found
// through the task's runs (no index of their own: every index entry is a row written on D1).
const READ_LOG_OBJECTS_SQL: &str = "SELECT o.run_id, o.stream, o.task_id, o.step_id, o.object_key, o.blocks, o.index_offset, \
       o.index_length, o.first_cursor, o.last_cursor, r.logs_expired_at, r.finished_at \
     FROM log_objects o JOIN runs r ON r.run_id = o.run_id \
     WHERE o.run_id IN (SELECT run_id FROM runs WHERE task_id = ?1) AND o.last_cursor > ?2 AND (?3 IS NULL OR o.step_id = ?3) \
       AND (?4 IS NULL OR o.run_id = ?4) AND (?5 IS NULL OR o.stream = ?5) ORDER BY o.first_cursor LIMIT 1000";

/// A compacted stream's row, as a page reader needs it.
struct ObjectRow {
    run_id: String,
    stream: LogStream,
    task_id: String,
    step_id: String,
    key: String,
    blocks: i64,
    index: ByteRange,
    first_cursor: i64,
    last_cursor: i64,
    expired_at: Option<i64>,
    finished_at: Option<i64>,
}

fn object_row(row: &Row) -> Result<ObjectRow, super::db::DbError> {
    let stream = row.text("stream")?;
    Ok(ObjectRow {
        run_id: row.text("run_id")?,
        stream: LogStream::parse(&stream).ok_or_else(|| super::db::DbError::Decode(format!("column stream: unknown value {stream:?}")))?,
        task_id: row.text("task_id")?,
        step_id: row.text("step_id")?,
        key: row.text("object_key")?,
        blocks: row.i64("blocks")?,
        index: ByteRange { offset: row.i64("index_offset")? as u64, length: row.i64("index_length")? as u64 },
        first_cursor: row.i64("first_cursor")?,
        last_cursor: row.i64("last_cursor")?,
        expired_at: row.opt_i64("logs_expired_at")?,
        finished_at: row.opt_i64("finished_at")?,
    })
}

pub async fn read<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let task_id = call.param("task_id");
    let params = parse_query(&call.request.query);
    let after = query_i64(&params, "after", 0, 0, MAX_SAFE_INTEGER)?;
    let limit = query_i64(&params, "limit", 500, 1, 1000)?;
    let stream = query_enum(&params, "stream", LogStream::parse, &LogStream::choices())?;
    let text_filter = |name: &str| query_param(&params, name).filter(|value| !value.is_empty()).map(str::to_string);
    let filters = vec![
        task_id.into(),
        after.into(),
        text_filter("step_id").into(),
        text_filter("run_id").into(),
        stream.map(|stream| stream.as_str()).into(),
    ];
    let mut live_params = filters.clone();
    live_params.push(limit.into());
    let results = core
        .db
        .batch(vec![
            Statement::new(TASK_EXISTS_SQL, vec![task_id.into()]),
            Statement::new(READ_LOGS_SQL, live_params),
            Statement::new(READ_LOG_OBJECTS_SQL, filters),
        ])
        .await?;
    if results[0].is_empty() {
        return Err(task_not_found(task_id));
    }
    let mut chunks = records::all(&results[1], records::log_chunk)?;
    let objects = records::all(&results[2], object_row)?;
    if let Some(expired) = objects.iter().find(|object| object.expired_at.is_some()) {
        // Where to read on past the expired run: after the last cursor of all its streams.
        let past = objects.iter().filter(|object| object.run_id == expired.run_id).map(|object| object.last_cursor).max();
        return Err(logs_expired(expired, core.config.log_retention_days).with_detail("next_cursor", past.unwrap_or(after)));
    }
    let limit = limit as usize;
    for object in &objects {
        // The page is full and this object (and every later one) begins after it ends.
        if chunks.len() >= limit && chunks.last().is_some_and(|last| last.cursor < object.first_cursor) {
            break;
        }
        let stored = match read_object_after(&core.blobs, object, after, limit).await? {
            Some(stored) => stored,
            // Retention deleted it after our snapshot of the rows was taken.
            None => return Err(logs_expired(object, core.config.log_retention_days).with_detail("next_cursor", object.last_cursor)),
        };
        chunks.extend(stored.into_iter().map(|chunk| LogChunk {
            cursor: chunk.cursor,
            task_id: object.task_id.clone(),
            step_id: object.step_id.clone(),
            run_id: object.run_id.clone(),
            seq: chunk.seq,
            stream: object.stream,
            text: chunk.text,
            created_at: chunk.created_at,
        }));
        chunks.sort_by_key(|chunk| chunk.cursor);
        chunks.truncate(limit);
    }
    let next_cursor = chunks.last().map_or(after, |chunk| chunk.cursor);
    Reply::ok(&LogPage { chunks, next_cursor })
}

/// Up to `limit` chunks of one object after `after`, read block by block; `None` when the
/// object is gone.
async fn read_object_after<B: Blobs>(blobs: &B, object: &ObjectRow, after: i64, limit: usize) -> ApiResult<Option<Vec<StoredChunk>>> {
    let index: Vec<BlockEntry> = if object.blocks == 1 {
        vec![(object.first_cursor, i64::MAX, 0, object.index.offset)]
    } else {
        match blobs.get(&object.key, Some(object.index)).await? {
            Some(member) => read_index(&member)?,
            None => return Ok(None),
        }
    };
    let mut chunks = Vec::new();
    for (_, last, offset, length) in index.into_iter().filter(|(_, last, _, _)| *last > after) {
        let Some(member) = blobs.get(&object.key, Some(ByteRange { offset, length })).await? else { return Ok(None) };
        chunks.extend(read_block(&member)?.into_iter().filter(|chunk| chunk.cursor > after));
        if chunks.len() >= limit || last == i64::MAX {
            break;
        }
    }
    chunks.truncate(limit);
    Ok(Some(chunks))
}

fn logs_expired(object: &ObjectRow, retention_days: i64) -> ApiError {
    let mut error = ApiError::new(
        ErrorCode::LogsExpired,
        format!(
            "the output of run {} was deleted by the log retention of this deployment ({retention_days} days after a run finishes)",
            object.run_id
        ),
    )
    .with_detail("run_id", object.run_id.clone())
    .with_detail("retention_days", retention_days);
    if let Some(finished_at) = object.finished_at {
        error = error.with_detail("run_finished_at", finished_at);
    }
    if let Some(expired_at) = object.expired_at {
        error = error.with_detail("expired_at", expired_at);
    }
    error
}
