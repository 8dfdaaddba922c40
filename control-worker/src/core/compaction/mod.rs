//! Compaction of one finished run (SPEC §17): its log chunks into one object per stream, its
//! large checkpoint contents into one object, then — only once each object is written and read
//! back whole with the digest it was written with — one atomic batch that points the database
//! at the objects and deletes the rows they replace.
//!
//! Crash safety and races, by construction rather than by locks:
//! - An object's key names its content's digest: two compactions of the same rows write the
//!   same object, and a compaction of other rows never overwrites one that is referenced.
//! - The batch writes only while the run's `runs.compaction_id` is the one read with the
//!   candidate, and ends by setting it to its own: of two compactions racing, one commits and
//!   the other writes nothing (and deletes its object if nothing references it).
//! - The batch deletes a stream's rows only if the object row names this compaction's object,
//!   and only rows up to its last cursor (cursors only grow, so a row added since is kept).
//! - The seqs compacted are kept on the run as ranges: a chunk sent again (an answer lost) after
//!   its row left for an object is a duplicate still, not a second copy.
//! - A crash before the batch leaves rows and perhaps an unreferenced object (rewritten by the
//!   next attempt, or deleted with the run's prefix at retention); after it, nothing is lost.
//! - Rows that arrived after a stream was compacted (a trigger reopens the run) are folded in by
//!   the next compaction,
//!   which rebuilds the object from the old one and the rows (the run is marked compacted only
//!   once no row of it is left).

mod sql;

use std::collections::BTreeMap;

use serde_json::json;
use shared::status::LogStream;

use super::blobs::{Blobs, ByteRange};
use super::db::{Db, Row, Statement};
use super::error::{ApiError, ApiResult};
use super::log_object::{
    checkpoints_key, gzip, merge_seq_ranges, read_block, read_index, sha256_hex, stream_key, ObjectWriter, StoredChunk,
};
use super::maintenance::Budget;

/// Checkpoint contents up to this many bytes stay in their row.
pub const INLINE_CHECKPOINT_BYTES: i64 = 4 * 1024;
/// A run to compact, with what the candidate query counted.
pub(super) struct Candidate {
    pub run_id: String,
    pub task_id: String,
    pub step_id: String,
    pub chunk_rows: i64,
    pub streams: i64,
    pub large_checkpoints: i64,
    pub objects: i64,
    /// The claim and the seq ranges as read with the candidate.
    pub compaction_id: Option<String>,
    pub compacted_seqs: Option<String>,
}

impl Candidate {
    pub fn from_row(row: &Row) -> Result<Candidate, super::db::DbError> {
        Ok(Candidate {
            run_id: row.text("run_id")?,
            task_id: row.text("task_id")?,
            step_id: row.text("step_id")?,
            chunk_rows: row.i64("chunk_rows")?,
            streams: row.i64("streams")?,
            large_checkpoints: row.i64("large_checkpoints")?,
            objects: row.i64("objects")?,
            compaction_id: row.opt_text("compaction_id")?,
            compacted_seqs: row.opt_text("compacted_seqs")?,
        })
    }

    /// Nothing to move: marking it compacted is all.
    pub fn is_empty(&self) -> bool {
        self.chunk_rows == 0 && self.large_checkpoints == 0
    }

    /// Operations its compaction takes: pages (and the empty one that ends them), the existing
    /// objects re-read, two per object written (put, read back), the checkpoints' read, the
    /// commit, and deleting rebuilt objects.
    pub fn estimated_operations(&self) -> i64 {
        let pages = self.chunk_rows / sql::PAGE_ROWS + 2;
        let rebuild = if self.objects > 0 { 1 + self.objects * 3 } else { 0 };
        let checkpoints = if self.large_checkpoints > 0 { 3 } else { 0 };
        pages + rebuild + checkpoints + 2 * self.streams + 1
    }
}

/// What one run's compaction moved.
#[derive(Default)]
pub(super) struct Moved {
    pub committed: bool,
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

pub(in crate::core) async fn compact_run<D: Db, B: Blobs>(
    db: &D,
    blobs: &B,
    budget: &Budget,
    run: &Candidate,
    id: &str,
    now: i64,
) -> ApiResult<Moved> {
    let mut moved = Moved::default();
    let mut writers: BTreeMap<&'static str, ObjectWriter> = BTreeMap::new();
    let mut previous: BTreeMap<&'static str, Previous> = BTreeMap::new();
    let mut rows_per_stream: BTreeMap<&'static str, i64> = BTreeMap::new();
    let mut seqs = Vec::new();
    // Late rows of a stream compacted before: held (they are few) until its old object is read.
    let mut late: BTreeMap<&'static str, Vec<StoredChunk>> = BTreeMap::new();
    if run.objects > 0 {
        for row in budget.query(db, Statement::new(sql::RUN_OBJECTS_SQL, vec![run.run_id.clone().into()])).await? {
            let old = Previous {
                key: row.text("object_key")?,
                blocks: row.i64("blocks")?,
                index: ByteRange { offset: row.i64("index_offset")? as u64, length: row.i64("index_length")? as u64 },
                first_cursor: row.i64("first_cursor")?,
            };
            previous.insert(stream_name(&row.text("stream")?)?, old);
        }
    }
    let mut after = 0i64;
    loop {
        let params = vec![run.run_id.clone().into(), after.into(), sql::PAGE_ROWS.into(), sql::PAGE_TEXT_BYTES.into()];
        let rows = budget.query(db, Statement::new(sql::RUN_CHUNKS_PAGE_SQL, params)).await?;
        for row in &rows {
            let stream = stream_name(&row.text("stream")?)?;
            let chunk = StoredChunk {
                cursor: row.i64("cursor")?,
                seq: row.i64("seq")?,
                created_at: row.i64("created_at")?,
                text: row.text("text")?,
            };
            after = chunk.cursor;
            seqs.push(chunk.seq);
            moved.bytes_moved += chunk.text.len() as i64;
            *rows_per_stream.entry(stream).or_default() += 1;
            if previous.contains_key(stream) {
                late.entry(stream).or_default().push(chunk);
            } else {
                writers.entry(stream).or_default().push(&chunk);
            }
        }
        if rows.is_empty() {
            break;
        }
    }
    for (stream, chunks) in late {
        // Cursors only grow: the late chunks follow everything the old object holds.
        let writer = writers.entry(stream).or_default();
        for chunk in read_whole_object(blobs, budget, &previous[stream]).await? {
            writer.push(&chunk);
        }
        for chunk in &chunks {
            writer.push(chunk);
        }
    }
    let mut objects = Vec::new();
    for (stream, writer) in writers {
        if writer.is_empty() {
            continue;
        }
        let object = writer.finish();
        let key = stream_key(&run.run_id, stream, &object.sha256);
        write_verified(blobs, budget, &key, &object.bytes, &object.sha256).await?;
        moved.objects_written += 1;
        moved.object_bytes += object.bytes.len() as i64;
        objects.push((stream, key, object));
    }
    let mut checkpoints = None;
    if run.large_checkpoints > 0 {
        let params = vec![run.run_id.clone().into(), INLINE_CHECKPOINT_BYTES.into()];
        let rows = budget.query(db, Statement::new(sql::LARGE_CHECKPOINTS_SQL, params)).await?;
        if !rows.is_empty() {
            let (bytes, members) = checkpoint_object(&rows)?;
            let sha256 = sha256_hex(&bytes);
            let key = checkpoints_key(&run.run_id, &sha256);
            write_verified(blobs, budget, &key, &bytes, &sha256).await?;
            moved.objects_written += 1;
            moved.object_bytes += bytes.len() as i64;
            moved.bytes_moved += rows.iter().map(|row| row.text("content").map(|content| content.len() as i64)).sum::<Result<i64, _>>()?;
            checkpoints = Some((key, serde_json::Value::Array(members).to_string()));
        }
    }
    let previous_ranges: Vec<(i64, i64)> = match &run.compacted_seqs {
        Some(text) => serde_json::from_str(text).map_err(|error| ApiError::internal(format!("runs.compacted_seqs: {error}")))?,
        None => Vec::new(),
    };
    let seq_ranges = serde_json::to_string(&merge_seq_ranges(previous_ranges, seqs)).expect("ranges serialise");
    let placed: Vec<sql::Placed<'_>> = objects
        .iter()
        .map(|(stream, key, object)| sql::Placed { stream, key, object, previous: previous.get(stream).map(|old| old.key.as_str()) })
        .collect();
    let statements =
        sql::commit(run, id, &seq_ranges, &placed, checkpoints.as_ref().map(|(key, members)| (key.as_str(), members.clone())), now);
    let results = budget.batch(db, statements).await?;
    let (claimed, referenced) = sql::outcome(&results, id)?;
    for (stream, key, _) in &objects {
        if claimed && referenced.contains(key) {
            moved.rows_deleted += rows_per_stream.get(stream).copied().unwrap_or_default();
            if let Some(old) = previous.get(stream).filter(|old| old.key != *key) {
                budget.blob_operation();
                blobs.delete(&old.key).await?;
                moved.objects_deleted += 1;
            }
        } else if !referenced.contains(key) {
            // Another compaction of this run committed first: ours is unreferenced.
            budget.blob_operation();
            blobs.delete(key).await?;
            moved.objects_deleted += 1;
        }
    }
    // Not claimed: another slice compacted the run meanwhile, and this one changed nothing.
    moved.committed = claimed;
    Ok(moved)
}

fn stream_name(text: &str) -> ApiResult<&'static str> {
    LogStream::parse(text).map(LogStream::as_str).ok_or_else(|| ApiError::internal(format!("log_chunks: unknown stream {text:?}")))
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
