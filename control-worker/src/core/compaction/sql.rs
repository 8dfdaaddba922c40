//! The statements of a compaction: reading a run's rows, and the commit batch — whose writes
//! happen only while the run's `compaction_id` is still the one read with the candidate, and
//! whose last statement sets it to this compaction's (one batch is atomic: of two compactions
//! of a run, the one that commits second finds the id changed and writes nothing).

use super::super::db::{Row, Statement};
use super::super::log_object::EncodedObject;
use super::Candidate;

/// A page of a run's rows read for compaction: at most this many rows and (past its first row)
/// this many bytes of text, so that a slice holds one page and the compressed output.
pub const PAGE_ROWS: i64 = 1000;
pub const PAGE_TEXT_BYTES: i64 = 4_000_000;

// ?1 run, ?2 after cursor, ?3 rows, ?4 text bytes.
pub const RUN_CHUNKS_PAGE_SQL: &str = "SELECT cursor, seq, stream, text, created_at FROM ( \
       SELECT cursor, seq, stream, text, created_at, \
         SUM(length(CAST(text AS BLOB))) OVER (ORDER BY cursor) - length(CAST(text AS BLOB)) AS before \
       FROM log_chunks WHERE run_id = ?1 AND cursor > ?2 ORDER BY cursor LIMIT ?3) \
     WHERE before < ?4 ORDER BY cursor";
pub const RUN_OBJECTS_SQL: &str =
    "SELECT stream, object_key, blocks, index_offset, index_length, first_cursor FROM log_objects WHERE run_id = ?1";
// ?1 run, ?2 inline size.
pub const LARGE_CHECKPOINTS_SQL: &str =
    "SELECT seq, content, sha256 FROM checkpoints WHERE run_id = ?1 AND blob_key IS NULL AND size > ?2 ORDER BY seq";

// ?1 run, ?2 this compaction's id, ?3 seq ranges JSON, ?4 the id read with the candidate, ?5 now.
// A run is compacted once no row of it is left.
const CLAIM_SQL: &str = "UPDATE runs SET compaction_id = ?2, compacted_seqs = ?3, \
       compacted_at = CASE WHEN EXISTS (SELECT 1 FROM log_chunks WHERE run_id = ?1) THEN NULL ELSE ?5 END \
     WHERE run_id = ?1 AND compaction_id IS ?4";
// ?1 run, ?2 stream, ?3 task, ?4 step, ?5 key, ?6 object bytes, ?7 sha256, ?8 text bytes, ?9 chunks,
// ?10 first cursor, ?11 last cursor, ?12 blocks, ?13 index offset, ?14 index length, ?15 now,
// ?16 the compaction id read with the candidate.
const INSERT_LOG_OBJECT_SQL: &str = "INSERT INTO log_objects (run_id, stream, task_id, step_id, object_key, object_bytes, sha256, \
       text_bytes, chunk_count, first_cursor, last_cursor, blocks, index_offset, index_length, created_at) \
     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15 \
     WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ?1 AND compaction_id IS ?16) ON CONFLICT (run_id, stream) DO NOTHING";
// The same values, replacing the object ?17 this compaction rebuilt.
const REPLACE_LOG_OBJECT_SQL: &str = "UPDATE log_objects SET object_key = ?5, object_bytes = ?6, sha256 = ?7, text_bytes = ?8, \
       chunk_count = ?9, first_cursor = ?10, last_cursor = ?11, blocks = ?12, index_offset = ?13, index_length = ?14, \
       created_at = ?15, task_id = ?3, step_id = ?4 \
     WHERE run_id = ?1 AND stream = ?2 AND object_key = ?17 \
       AND EXISTS (SELECT 1 FROM runs WHERE run_id = ?1 AND compaction_id IS ?16)";
// ?1 run, ?2 stream, ?3 last cursor, ?4 key.
const DELETE_COMPACTED_ROWS_SQL: &str = "DELETE FROM log_chunks WHERE run_id = ?1 AND stream = ?2 AND cursor <= ?3 \
       AND EXISTS (SELECT 1 FROM log_objects WHERE run_id = ?1 AND stream = ?2 AND object_key = ?4)";
// ?1 run, ?2 key, ?3 [{seq, offset, length, sha256}], ?4 the id read with the candidate.
const MOVE_CHECKPOINTS_SQL: &str = "UPDATE checkpoints SET content = '', blob_key = ?2, \
       blob_offset = (SELECT json_extract(m.value, '$.offset') FROM json_each(?3) m WHERE json_extract(m.value, '$.seq') = checkpoints.seq), \
       blob_length = (SELECT json_extract(m.value, '$.length') FROM json_each(?3) m WHERE json_extract(m.value, '$.seq') = checkpoints.seq) \
     WHERE run_id = ?1 AND blob_key IS NULL \
       AND EXISTS (SELECT 1 FROM runs WHERE run_id = ?1 AND compaction_id IS ?4) \
       AND EXISTS (SELECT 1 FROM json_each(?3) m WHERE json_extract(m.value, '$.seq') = checkpoints.seq \
         AND json_extract(m.value, '$.sha256') = checkpoints.sha256)";
const CLAIM_HOLDER_SQL: &str = "SELECT compaction_id FROM runs WHERE run_id = ?1";

/// A stream's object to point the database at, replacing `previous` when rebuilt.
pub struct Placed<'a> {
    pub stream: &'static str,
    pub key: &'a str,
    pub object: &'a EncodedObject,
    pub previous: Option<&'a str>,
}

/// The commit batch. Its last two statements' rows: the run's objects, the claim's holder.
pub fn commit(
    run: &Candidate,
    id: &str,
    seq_ranges: &str,
    placed: &[Placed<'_>],
    checkpoints: Option<(&str, String)>,
    now: i64,
) -> Vec<Statement> {
    let run_id = || run.run_id.clone().into();
    let read_id = || run.compaction_id.clone().into();
    let mut statements = Vec::new();
    for place in placed {
        let object = place.object;
        let mut params = vec![
            run_id(),
            place.stream.into(),
            run.task_id.clone().into(),
            run.step_id.clone().into(),
            place.key.into(),
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
            read_id(),
        ];
        statements.push(match place.previous {
            None => Statement::new(INSERT_LOG_OBJECT_SQL, params),
            Some(old) => {
                params.push(old.into());
                Statement::new(REPLACE_LOG_OBJECT_SQL, params)
            }
        });
        statements.push(Statement::new(
            DELETE_COMPACTED_ROWS_SQL,
            vec![run_id(), place.stream.into(), object.last_cursor.into(), place.key.into()],
        ));
    }
    if let Some((key, members)) = checkpoints {
        statements.push(Statement::new(MOVE_CHECKPOINTS_SQL, vec![run_id(), key.into(), members.into(), read_id()]));
    }
    statements.push(Statement::new(CLAIM_SQL, vec![run_id(), id.into(), seq_ranges.into(), read_id(), now.into()]));
    statements.push(Statement::new(RUN_OBJECTS_SQL, vec![run_id()]));
    statements.push(Statement::new(CLAIM_HOLDER_SQL, vec![run_id()]));
    statements
}

/// From the commit's rows: whether this compaction holds the claim, and the keys referenced.
pub fn outcome(results: &[Vec<Row>], id: &str) -> Result<(bool, Vec<String>), super::super::db::DbError> {
    let holder = results.last().and_then(|rows| rows.first()).map(|row| row.opt_text("compaction_id")).transpose()?.flatten();
    let referenced = results[results.len() - 2].iter().map(|row| row.text("object_key")).collect::<Result<_, _>>()?;
    Ok((holder.as_deref() == Some(id), referenced))
}
