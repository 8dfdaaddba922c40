//! Compaction of one finished run (SPEC §17): its log chunks into one object per stream, its
//! large checkpoint contents into one object, then — only once each object is written and read
//! back whole with the digest it was written with — one atomic batch that points the database
//! at the objects and deletes the rows they replace.
//!
//! Crash safety and races, by construction rather than by locks:
//! - An object's key names its content's digest: two compactions of the same rows write the
//!   same object, and a compaction of other rows never overwrites one that is referenced.
//! - The batch deletes a stream's rows only if the object row names this compaction's object,
//!   and only rows up to its last cursor (cursors only grow, so a row added since is kept).
//! - A crash before the batch leaves rows and perhaps an unreferenced object (rewritten by the
//!   next attempt, or deleted with the run's prefix at retention); after it, nothing is lost.
//! - Rows that arrived after a stream was compacted are folded in by the next compaction,
//!   which rebuilds the object from the old one and the rows (the run is marked compacted only
//!   once no row of it is left).

use std::collections::BTreeMap;

use serde_json::json;
use shared::status::LogStream;

use super::blobs::{Blobs, ByteRange};
use super::db::{Db, Row, Statement};
use super::error::{ApiError, ApiResult};
use super::log_object::{
    checkpoints_key, gzip, read_block, read_index, sha256_hex, stream_key, EncodedObject, ObjectWriter, StoredChunk,
};
use super::maintenance::Budget;

/// Checkpoint contents up to this many bytes stay in their row.
pub const INLINE_CHECKPOINT_BYTES: i64 = 4 * 1024;
/// A page of a run's rows read for compaction: at most this many rows and (past its first row)
/// this many bytes of text, so that a slice holds one page and the compressed output.
const PAGE_ROWS: i64 = 1000;
const PAGE_TEXT_BYTES: i64 = 4_000_000;

// ?1 run, ?2 after cursor, ?3 rows, ?4 text bytes.
const RUN_CHUNKS_PAGE_SQL: &str = "SELECT cursor, seq, stream, text, created_at FROM ( \
       SELECT cursor, seq, stream, text, created_at, \
         SUM(length(CAST(text AS BLOB))) OVER (ORDER BY cursor) - length(CAST(text AS BLOB)) AS before \
       FROM log_chunks WHERE run_id = ?1 AND cursor > ?2 ORDER BY cursor LIMIT ?3) \
     WHERE before < ?4 ORDER BY cursor";
const RUN_OBJECTS_SQL: &str =
    "SELECT stream, object_key, blocks, index_offset, index_length, first_cursor FROM log_objects WHERE run_id = ?1";
// ?1 run, ?2 inline size.
const LARGE_CHECKPOINTS_SQL: &str =
    "SELECT seq, content, sha256 FROM checkpoints WHERE run_id = ?1 AND blob_key IS NULL AND size > ?2 ORDER BY seq";
// ?1 run, ?2 stream, ?3 task, ?4 step, ?5 key, ?6 object bytes, ?7 sha256, ?8 text bytes, ?9 chunks,
// ?10 first cursor, ?11 last cursor, ?12 blocks, ?13 index offset, ?14 index length, ?15 now.
const INSERT_LOG_OBJECT_SQL: &str = "INSERT INTO log_objects (run_id, stream, task_id, step_id, object_key, object_bytes, sha256, \
       text_bytes, chunk_count, first_cursor, last_cursor, blocks, index_offset, index_length, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) ON CONFLICT (run_id, stream) DO NOTHING";
// The same values, replacing the object ?16 this compaction rebuilt.
const REPLACE_LOG_OBJECT_SQL: &str = "UPDATE log_objects SET object_key = ?5, object_bytes = ?6, sha256 = ?7, text_bytes = ?8, \
       chunk_count = ?9, first_cursor = ?10, last_cursor = ?11, blocks = ?12, index_offset = ?13, index_length = ?14, \
       created_at = ?15, task_id = ?3, step_id = ?4 \
     WHERE run_id = ?1 AND stream = ?2 AND object_key = ?16";
// ?1 run, ?2 stream, ?3 last cursor, ?4 key.
const DELETE_COMPACTED_ROWS_SQL: &str = "DELETE FROM log_chunks WHERE run_id = ?1 AND stream = ?2 AND cursor <= ?3 \
       AND EXISTS (SELECT 1 FROM log_objects WHERE run_id = ?1 AND stream = ?2 AND object_key = ?4)";
// ?1 run, ?2 key, ?3 [{seq, offset, length, sha256}].
const MOVE_CHECKPOINTS_SQL: &str = "UPDATE checkpoints SET content = '', blob_key = ?2, \
       blob_offset = (SELECT json_extract(m.value, '$.offset') FROM json_each(?3) m WHERE json_extract(m.value, '$.seq') = checkpoints.seq), \
       blob_length = (SELECT json_extract(m.value, '$.length') FROM json_each(?3) m WHERE json_extract(m.value, '$.seq') = checkpoints.seq) \
     WHERE run_id = ?1 AND blob_key IS NULL \
       AND EXISTS (SELECT 1 FROM json_each(?3) m WHERE json_extract(m.value, '$.seq') = checkpoints.seq \
         AND json_extract(m.value, '$.sha256') = checkpoints.sha256)";
// ?1 run, ?2 now.
pub(super) const MARK_COMPACTED_SQL: &str = "UPDATE runs SET compacted_at = ?2 \
     WHERE run_id = ?1 AND compacted_at IS NULL AND NOT EXISTS (SELECT 1 FROM log_chunks WHERE run_id = ?1)";

/// A run to compact, with what the candidate query counted.
pub(super) struct Candidate {
    pub run_id: String,
    pub task_id: String,
    pub step_id: String,
    pub chunk_rows: i64,
    pub large_checkpoints: i64,
    pub objects: i64,
}

impl Candidate {
    pub fn from_row(row: &Row) -> Result<Candidate, super::db::DbError> {
        Ok(Candidate {
            run_id: row.text("run_id")?,
            task_id: row.text("task_id")?,
            step_id: row.text("step_id")?,
            chunk_rows: row.i64("chunk_rows")?,
            large_checkpoints: row.i64("large_checkpoints")?,
            objects: row.i64("objects")?,
        })
    }

    /// Nothing to move: marking it compacted is all.
    pub fn is_empty(&self) -> bool {
        self.chunk_rows == 0 && self.large_checkpoints == 0
    }

    /// Operations its compaction is expected to take: pages, the existing objects re-read,
    /// two per object written (put, read back), the checkpoints' read, the commit.
    pub fn estimated_operations(&self) -> i64 {
        let pages = self.chunk_rows / PAGE_ROWS + 2;
        let rebuild = if self.objects > 0 { 1 + self.objects * 3 } else { 0 };
        let checkpoints = if self.large_checkpoints > 0 { 3 } else { 0 };
        pages + rebuild + checkpoints + 2 * 2 + 1
    }
}

/// What one run's compaction moved.
#[derive(Default)]
pub(super) struct Moved {
    pub objects_written: i64,
    pub bytes_moved: i64,
    pub object_bytes: i64,
    pub rows_deleted: i64,
    pub objects_deleted: i64,
}

/// The object a stream was compacted into before, to rebuild.
struct Previous {
    key: String,
    blocks: i64,
    index: ByteRange,
    first_cursor: i64,
}

pub(super) async fn compact_run<D: Db, B: Blobs>(db: &D, blobs: &B, budget: &Budget, run: &Candidate, now: i64) -> ApiResult<Moved> {
    let mut moved = Moved::default();
    let mut writers: BTreeMap<&'static str, ObjectWriter> = BTreeMap::new();
    let mut previous: BTreeMap<&'static str, Previous> = BTreeMap::new();
    let mut rows_per_stream: BTreeMap<&'static str, i64> = BTreeMap::new();
    if run.objects > 0 {
        for row in budget.query(db, Statement::new(RUN_OBJECTS_SQL, vec![run.run_id.clone().into()])).await? {
            let stream = stream_name(&row.text("stream")?)?;
            let old = Previous {
                key: row.text("object_key")?,
                blocks: row.i64("blocks")?,
                index: ByteRange { offset: row.i64("index_offset")? as u64, length: row.i64("index_length")? as u64 },
                first_cursor: row.i64("first_cursor")?,
            };
            let writer = writers.entry(stream).or_default();
            for chunk in read_whole_object(blobs, budget, &old).await? {
                writer.push(&chunk);
            }
            previous.insert(stream, old);
        }
    }
    let mut after = 0i64;
    loop {
        let params = vec![run.run_id.clone().into(), after.into(), PAGE_ROWS.into(), PAGE_TEXT_BYTES.into()];
        let rows = budget.query(db, Statement::new(RUN_CHUNKS_PAGE_SQL, params)).await?;
        for row in &rows {
            let stream = stream_name(&row.text("stream")?)?;
            let chunk = StoredChunk { cursor: row.i64("cursor")?, seq: row.i64("seq")?, created_at: row.i64("created_at")?, text: row.text("text")? };
            after = chunk.cursor;
            moved.bytes_moved += chunk.text.len() as i64;
            *rows_per_stream.entry(stream).or_default() += 1;
            writers.entry(stream).or_default().push(&chunk);
        }
        if rows.is_empty() {
            break;
        }
    }
    let mut statements = Vec::new();
    let mut written: Vec<(&'static str, String, i64)> = Vec::new();
    for (stream, writer) in writers {
        if writer.is_empty() || !rows_per_stream.contains_key(stream) {
            continue;
        }
        let object = writer.finish();
        let key = stream_key(&run.run_id, stream, &object.sha256);
        write_verified(blobs, budget, &key, &object.bytes, &object.sha256).await?;
        moved.objects_written += 1;
        moved.object_bytes += object.bytes.len() as i64;
        statements.push(object_statement(run, stream, &key, &object, previous.get(stream).map(|old| old.key.as_str()), now));
        statements.push(Statement::new(
            DELETE_COMPACTED_ROWS_SQL,
            vec![run.run_id.clone().into(), stream.into(), object.last_cursor.into(), key.clone().into()],
        ));
        written.push((stream, key, rows_per_stream[stream]));
    }
    if run.large_checkpoints > 0 {
        let rows = budget
            .query(db, Statement::new(LARGE_CHECKPOINTS_SQL, vec![run.run_id.clone().into(), INLINE_CHECKPOINT_BYTES.into()]))
            .await?;
        if !rows.is_empty() {
            let (bytes, members) = checkpoint_object(&rows)?;
            let sha256 = sha256_hex(&bytes);
            let key = checkpoints_key(&run.run_id, &sha256);
            write_verified(blobs, budget, &key, &bytes, &sha256).await?;
            moved.objects_written += 1;
            moved.object_bytes += bytes.len() as i64;
            moved.bytes_moved += rows.iter().map(|row| row.text("content").map(|content| content.len() as i64)).sum::<Result<i64, _>>()?;
            statements.push(Statement::new(
                MOVE_CHECKPOINTS_SQL,
                vec![run.run_id.clone().into(), key.into(), serde_json::Value::Array(members).to_string().into()],
            ));
        }
    }
    statements.push(Statement::new(MARK_COMPACTED_SQL, vec![run.run_id.clone().into(), now.into()]));
    statements.push(Statement::new(RUN_OBJECTS_SQL, vec![run.run_id.clone().into()]));
    let results = budget.batch(db, statements).await?;
    let referenced: Vec<String> =
        results.last().into_iter().flatten().map(|row| row.text("object_key")).collect::<Result<_, _>>()?;
    for (stream, key, rows) in written {
        if referenced.contains(&key) {
            moved.rows_deleted += rows;
            if let Some(old) = previous.get(stream).filter(|old| old.key != key) {
                budget.blob_operation();
                blobs.delete(&old.key).await?;
                moved.objects_deleted += 1;
            }
        } else {
            // Another compaction of this run committed other rows first: ours is unreferenced.
            budget.blob_operation();
            blobs.delete(&key).await?;
            moved.objects_deleted += 1;
        }
    }
    Ok(moved)
}

fn stream_name(text: &str) -> ApiResult<&'static str> {
    LogStream::parse(text).map(LogStream::as_str).ok_or_else(|| ApiError::internal(format!("log_chunks: unknown stream {text:?}")))
}

fn object_statement(run: &Candidate, stream: &str, key: &str, object: &EncodedObject, previous: Option<&str>, now: i64) -> Statement {
    let mut params = vec![
        run.run_id.clone().into(),
        stream.into(),
        run.task_id.clone().into(),
        run.step_id.clone().into(),
        key.into(),
        (object.bytes.len() as i64).into(),
        object.sha256.clone().into(),
        object.text_bytes.into(),
        object.chunk_count.into(),
        object.first_cursor.into(),
        object.last_cursor.into(),
        object.blocks.into(),
        (object.index_offset as i64).into(),
        (object.index_length as i64).into(),
        now.into(),
    ];
    match previous {
        None => Statement::new(INSERT_LOG_OBJECT_SQL, params),
        Some(old) => {
            params.push(old.into());
            Statement::new(REPLACE_LOG_OBJECT_SQL, params)
        }
    }
}

/// One gzip member per checkpoint, and where each is.
fn checkpoint_object(rows: &[Row]) -> ApiResult<(Vec<u8>, Vec<serde_json::Value>)> {
    let mut bytes = Vec::new();
    let mut members = Vec::new();
    for row in rows {
        let member = gzip(row.text("content")?.as_bytes());
        members.push(json!({"seq": row.i64("seq")?, "offset": bytes.len(), "length": member.len(), "sha256": row.text("sha256")?}));
        bytes.extend_from_slice(&member);
    }
    Ok((bytes, members))
}

/// Writes an object, then reads it back whole: it counts as written only with the same digest.
async fn write_verified<B: Blobs>(blobs: &B, budget: &Budget, key: &str, bytes: &[u8], sha256: &str) -> ApiResult<()> {
    budget.blob_operation();
    blobs.put(key, bytes.to_vec()).await?;
    budget.blob_operation();
    let stored = blobs.get(key, None).await?;
    match stored {
        Some(stored) if sha256_hex(&stored) == sha256 => Ok(()),
        Some(stored) => Err(ApiError::internal(format!("object {key} read back {} bytes with another digest", stored.len()))),
        None => Err(ApiError::internal(format!("object {key} is missing right after it was written"))),
    }
}

async fn read_whole_object<B: Blobs>(blobs: &B, budget: &Budget, object: &Previous) -> ApiResult<Vec<StoredChunk>> {
    budget.blob_operation();
    let bytes = blobs
        .get(&object.key, None)
        .await?
        .ok_or_else(|| ApiError::internal(format!("object {} of a compacted stream is missing", object.key)))?;
    let index = if object.blocks == 1 {
        vec![(object.first_cursor, 0, 0, object.index.offset)]
    } else {
        let start = object.index.offset as usize;
        read_index(bytes.get(start..start + object.index.length as usize).unwrap_or_default())?
    };
    let mut chunks = Vec::new();
    for (_, _, offset, length) in index {
        let member = bytes.get(offset as usize..(offset + length) as usize).unwrap_or_default();
        chunks.extend(read_block(member)?);
    }
    Ok(chunks)
}
