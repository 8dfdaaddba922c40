//! Storage upkeep in bounded slices (SPEC §17): the Worker's Cron Trigger, the native timer and
//! `system.maintain` each run [`run_slice`], which within [`SLICE_OPERATIONS`] database queries
//! and object operations (the free plan allows 50 per invocation):
//!
//! 1. applies the log retention: runs finished more than `log_retention_days` ago are marked
//!    expired (their logs answer `410 logs_expired` from then on), their objects deleted (the
//!    run's whole key prefix, so an object orphaned by a crash goes too), then marked purged;
//! 2. deletes feed events older than `event_retention_days`;
//! 3. compacts runs finished more than `compact_after_sec` ago ([`super::compaction`]).
//!
//! Every step is idempotent and safe beside another slice: a second slice finds the work done,
//! or does the same work to the same result.

use std::cell::Cell;

use serde_json::Value;
use shared::wire::MaintenanceReport;

use super::blobs::Blobs;
use super::clock::{Clock, Random};
use super::compaction::{compact_run, Candidate, INLINE_CHECKPOINT_BYTES};
use super::db::{Db, Row, Statement};
use super::error::ApiResult;
use super::log_object::run_prefix;
use super::{Call, Core, Reply};

/// Database queries plus object operations one slice may make: under the free plan's 50
/// subrequests per invocation, with room for the invocation's own.
pub const SLICE_OPERATIONS: i64 = 40;
const RUNS_PER_QUERY: i64 = 25;
const EVENTS_PER_SLICE: i64 = 2_000;
const OBJECTS_PER_RUN_LISTING: usize = 100;
const DAY_SEC: i64 = 86_400;

// ?1 finished before, ?2 inline size, ?3 limit.
const RUNS_TO_COMPACT_SQL: &str = "SELECT r.run_id, r.task_id, r.step_id, r.compaction_id, r.compacted_seqs, \
       (SELECT count(*) FROM log_chunks c WHERE c.run_id = r.run_id) AS chunk_rows, \
       (SELECT count(DISTINCT stream) FROM log_chunks c WHERE c.run_id = r.run_id) AS streams, \
       (SELECT count(*) FROM checkpoints k WHERE k.run_id = r.run_id AND k.blob_key IS NULL AND k.size > ?2) AS large_checkpoints, \
       (SELECT count(*) FROM log_objects o WHERE o.run_id = r.run_id) AS objects \
     FROM runs r WHERE r.compacted_at IS NULL AND r.finished_at IS NOT NULL AND r.finished_at <= ?1 \
     ORDER BY r.finished_at LIMIT ?3";
// ?1 run ids JSON, ?2 now: runs with nothing to move, and so nothing retention will delete
// (they never enter `runs_to_purge`: every index entry is a row written on D1).
const MARK_EMPTY_COMPACTED_SQL: &str = "UPDATE runs SET compacted_at = ?2, logs_purged_at = ?2 \
     WHERE run_id IN (SELECT value FROM json_each(?1)) AND compacted_at IS NULL \
       AND NOT EXISTS (SELECT 1 FROM log_chunks c WHERE c.run_id = runs.run_id)";
// ?1 finished before, ?2 limit.
const RUNS_TO_PURGE_SQL: &str = "SELECT r.run_id, \
       (SELECT count(*) FROM log_objects o WHERE o.run_id = r.run_id) \
       + (SELECT count(*) FROM checkpoints k WHERE k.run_id = r.run_id AND k.blob_key IS NOT NULL) AS objects \
     FROM runs r WHERE r.compacted_at IS NOT NULL AND r.logs_purged_at IS NULL AND r.finished_at <= ?1 \
     ORDER BY r.finished_at LIMIT ?2";
// ?1 run ids JSON, ?2 now.
const MARK_EXPIRED_SQL: &str =
    "UPDATE runs SET logs_expired_at = COALESCE(logs_expired_at, ?2) WHERE run_id IN (SELECT value FROM json_each(?1))";
const MARK_PURGED_SQL: &str = "UPDATE runs SET logs_purged_at = ?2, logs_expired_at = COALESCE(logs_expired_at, ?2) \
     WHERE run_id IN (SELECT value FROM json_each(?1)) AND logs_purged_at IS NULL";
// ?1 created before, ?2 limit. The oldest events first: event ids grow with time.
const DELETE_OLD_EVENTS_SQL: &str = "DELETE FROM events WHERE event_id IN \
       (SELECT event_id FROM events WHERE created_at < ?1 ORDER BY event_id LIMIT ?2) RETURNING event_id";

/// Counts a slice's operations against [`SLICE_OPERATIONS`].
pub struct Budget {
    limit: i64,
    queries: Cell<i64>,
    blob_operations: Cell<i64>,
}

impl Budget {
    pub fn new(limit: i64) -> Self {
        Budget { limit, queries: Cell::new(0), blob_operations: Cell::new(0) }
    }

    pub fn used(&self) -> i64 {
        self.queries.get() + self.blob_operations.get()
    }

    pub fn left(&self) -> i64 {
        self.limit - self.used()
    }

    pub async fn query<D: Db>(&self, db: &D, statement: Statement) -> ApiResult<Vec<Row>> {
        self.queries.set(self.queries.get() + 1);
        Ok(db.query(statement).await?)
    }

    pub async fn batch<D: Db>(&self, db: &D, statements: Vec<Statement>) -> ApiResult<Vec<Vec<Row>>> {
        self.queries.set(self.queries.get() + 1);
        Ok(db.batch(statements).await?)
    }

    pub fn blob_operation(&self) {
        self.blob_operations.set(self.blob_operations.get() + 1);
    }
}

fn id_list(ids: &[String]) -> Value {
    Value::Array(ids.iter().cloned().map(Value::String).collect())
}

/// One slice of upkeep at the core's time.
pub async fn run_slice<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>) -> ApiResult<MaintenanceReport> {
    let now = core.now();
    let budget = Budget::new(SLICE_OPERATIONS);
    let mut report = MaintenanceReport {
        log_retention_days: core.config.log_retention_days,
        event_retention_days: core.config.event_retention_days,
        ..MaintenanceReport::default()
    };
    purge_expired(core, &budget, now, &mut report).await?;
    let cutoff = now - core.config.event_retention_days * DAY_SEC;
    let deleted = budget.query(&core.db, Statement::new(DELETE_OLD_EVENTS_SQL, vec![cutoff.into(), EVENTS_PER_SLICE.into()])).await?;
    report.events_deleted = deleted.len() as i64;
    report.more |= report.events_deleted == EVENTS_PER_SLICE;
    compact(core, &budget, now, &mut report).await?;
    report.db_queries = budget.queries.get();
    report.blob_operations = budget.blob_operations.get();
    Ok(report)
}

async fn purge_expired<D: Db, C: Clock, R: Random, B: Blobs>(
    core: &Core<D, C, R, B>,
    budget: &Budget,
    now: i64,
    report: &mut MaintenanceReport,
) -> ApiResult<()> {
    let cutoff = now - core.config.log_retention_days * DAY_SEC;
    let rows = budget.query(&core.db, Statement::new(RUNS_TO_PURGE_SQL, vec![cutoff.into(), RUNS_PER_QUERY.into()])).await?;
    if rows.is_empty() {
        return Ok(());
    }
    report.more |= rows.len() as i64 == RUNS_PER_QUERY;
    let mut runs = Vec::new();
    for row in &rows {
        runs.push((row.text("run_id")?, row.i64("objects")?));
    }
    let with_objects: Vec<String> = runs.iter().filter(|(_, objects)| *objects > 0).map(|(run, _)| run.clone()).collect();
    // Marked first: from here on a reader gets the expired answer, never a missing object.
    if !with_objects.is_empty() {
        budget.query(&core.db, Statement::new(MARK_EXPIRED_SQL, vec![id_list(&with_objects).to_string().into(), now.into()])).await?;
    }
    let mut purged = Vec::new();
    for (run_id, objects) in runs {
        if objects > 0 {
            // A listing, the deletes, and the final mark must fit.
            if budget.left() < objects + 3 {
                report.more = true;
                break;
            }
            budget.blob_operation();
            let listed = core.blobs.list(&run_prefix(&run_id), OBJECTS_PER_RUN_LISTING).await?;
            let complete = listed.len() < OBJECTS_PER_RUN_LISTING;
            for entry in listed {
                if budget.left() < 2 {
                    break;
                }
                budget.blob_operation();
                core.blobs.delete(&entry.key).await?;
                report.objects_deleted += 1;
            }
            if !complete || budget.left() < 2 {
                report.more = true;
                report.expired_runs.push(run_id);
                break;
            }
        }
        report.expired_runs.push(run_id.clone());
        purged.push(run_id);
    }
    if !purged.is_empty() {
        budget.query(&core.db, Statement::new(MARK_PURGED_SQL, vec![id_list(&purged).to_string().into(), now.into()])).await?;
    }
    Ok(())
}

async fn compact<D: Db, C: Clock, R: Random, B: Blobs>(
    core: &Core<D, C, R, B>,
    budget: &Budget,
    now: i64,
    report: &mut MaintenanceReport,
) -> ApiResult<()> {
    if budget.left() < 3 {
        report.more = true;
        return Ok(());
    }
    let finished_before = now - core.config.compact_after_sec;
    let params = vec![finished_before.into(), INLINE_CHECKPOINT_BYTES.into(), RUNS_PER_QUERY.into()];
    let rows = budget.query(&core.db, Statement::new(RUNS_TO_COMPACT_SQL, params)).await?;
    report.more |= rows.len() as i64 == RUNS_PER_QUERY;
    let candidates: Vec<Candidate> = rows.iter().map(Candidate::from_row).collect::<Result<_, _>>()?;
    let empty: Vec<String> = candidates.iter().filter(|run| run.is_empty()).map(|run| run.run_id.clone()).collect();
    if !empty.is_empty() {
        budget.query(&core.db, Statement::new(MARK_EMPTY_COMPACTED_SQL, vec![id_list(&empty).to_string().into(), now.into()])).await?;
    }
    for run in candidates.iter().filter(|run| !run.is_empty()) {
        // A run larger than a whole slice is still compacted, alone in its slice.
        let alone = budget.used() <= 3;
        if !alone && run.estimated_operations() > budget.left() {
            report.more = true;
            break;
        }
        let moved = compact_run(&core.db, &core.blobs, budget, run, &core.new_id("cmp"), now).await?;
        if moved.committed {
            report.compacted_runs.push(run.run_id.clone());
        }
        report.objects_written += moved.objects_written;
        report.bytes_moved += moved.bytes_moved;
        report.object_bytes += moved.object_bytes;
        report.log_rows_deleted += moved.rows_deleted;
        report.objects_deleted += moved.objects_deleted;
    }
    Ok(())
}

/// `system.maintain`: one slice now, for an operator (or a test) who will not wait for the timer.
pub async fn maintain_now<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    call.body(true)?;
    Reply::ok(&run_slice(core).await?)
}
