//! `runs.list` (SPEC §18): the runs live at some moment of a time window, on every host, for
//! the console's fleet timeline (each host a lane, each run a bar). Found through
//! `runs_by_claimed_at`: a run claimed up to the longest step timeout before the window may
//! still reach into it.

use super::blobs::Blobs;
use shared::wire::TimelinePage;

use super::clock::{Clock, Random};
use super::db::{Db, Statement, MAX_SAFE_INTEGER};
use super::error::{ApiError, ApiResult};
use super::input::{parse_query, query_i64};
use super::records;
use super::tasks::MAX_STEP_TIMEOUT_SEC;
use super::{Call, Core, Reply};

/// The widest window one call may ask for (31 days), and the most runs it answers.
pub const MAX_WINDOW_SEC: i64 = 31 * 24 * 3600;
pub const MAX_RUNS: i64 = 5_000;
const DEFAULT_WINDOW_SEC: i64 = 6 * 3600;

// ?1 since, ?2 until, ?3 now, ?4 the oldest claim that can reach the window, ?5 limit.
const RUNS_IN_WINDOW_SQL: &str = "SELECT r.run_id, r.task_id, r.step_id, r.worker_id, r.host, r.attempt, r.status, r.claimed_at, \
       r.started_at, r.finished_at, r.exit_code, r.error, s.step_kind, s.title AS step_title, s.round, \
       t.task_key, t.title AS task_title \
     FROM runs r JOIN steps s ON s.step_id = r.step_id JOIN tasks t ON t.task_id = r.task_id \
     WHERE r.claimed_at BETWEEN ?4 AND ?2 AND COALESCE(r.finished_at, ?3) >= ?1 \
     ORDER BY r.claimed_at, r.run_id LIMIT ?5";

pub async fn list<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let params = parse_query(&call.request.query);
    let until = query_i64(&params, "until", call.now, 0, MAX_SAFE_INTEGER)?;
    let since = query_i64(&params, "since", until - DEFAULT_WINDOW_SEC, 0, MAX_SAFE_INTEGER)?;
    if since > until {
        return Err(ApiError::invalid_field("since", "must not be after until"));
    }
    if until - since > MAX_WINDOW_SEC {
        return Err(ApiError::invalid_field("since", &format!("must be at most {MAX_WINDOW_SEC} seconds (31 days) before until")));
    }
    let limit = query_i64(&params, "limit", 2_000, 1, MAX_RUNS)?;
    let oldest_claim = since - MAX_STEP_TIMEOUT_SEC;
    let rows = core
        .db
        .query(Statement::new(
            RUNS_IN_WINDOW_SQL,
            vec![since.into(), until.into(), call.now.into(), oldest_claim.into(), (limit + 1).into()],
        ))
        .await?;
    let mut runs = records::all(&rows, records::timeline_run)?;
    let truncated = runs.len() as i64 > limit;
    runs.truncate(limit as usize);
    Reply::ok(&TimelinePage { since, until, runs, truncated })
}
