//! A host's claim of ready steps: the statements of `steps.claim` and of the grant that ends
//! an `agents.sync`, and the claimed steps read back from them.

use serde_json::json;
use shared::wire::ClaimedStep;

use super::db::{Row, Statement};
use super::error::{ApiError, ApiResult};
use super::records::{self, step_columns, task_columns};

pub const MAX_CLAIM_CAPACITY: i64 = 32;

// ?1 worker, ?2 claim token, ?3 now, ?4 heartbeat ttl, ?5 host, ?6 worker kinds JSON or NULL, ?7 capacity,
// ?8 the host's coding-agent account or NULL.
// A step of a task assigned to another host is never claimed: one host runs every step of a
// task, in one worktree (§11). No agent step is claimed for an account parked by a usage limit (§13).
const CLAIM_STEPS_SQL: &str = concat!(
    "UPDATE steps SET status = 'claimed', attempt = attempt + 1, worker_id = ?1, \
       current_run_id = step_id || '.a' || (attempt + 1), claim_token = ?2, heartbeat_deadline_at = ?3 + ?4, \
       started_at = NULL, finished_at = NULL, exit_code = NULL, summary = NULL, error = NULL \
     WHERE step_id IN ( \
         SELECT s.step_id FROM steps s WHERE s.status = 'ready' \
           AND (s.target_host IS NULL OR s.target_host = ?5) \
           AND COALESCE((SELECT t.assigned_host FROM tasks t WHERE t.task_id = s.task_id), ?5) = ?5 \
           AND (?6 IS NULL OR s.worker_kind IN (SELECT value FROM json_each(?6))) \
           AND NOT (s.step_kind = 'agent' AND EXISTS (SELECT 1 FROM accounts a WHERE a.account = ?8 AND a.parked_until > ?3)) \
         ORDER BY s.task_priority DESC, s.ready_at, s.step_id LIMIT ?7) \
       AND status = 'ready' \
       AND (SELECT mode FROM system_state WHERE state_key = 'global') <> 'paused' \
     RETURNING ",
    step_columns!()
);

const INSERT_CLAIMED_RUNS_SQL: &str = "INSERT INTO runs (run_id, step_id, task_id, worker_id, host, attempt, status, claimed_at) \
     SELECT current_run_id, step_id, task_id, worker_id, ?2, attempt, 'claimed', ?3 FROM steps WHERE claim_token = ?1";

// ?1 claim token, ?2 host, ?3 now. The first claim of a task assigns it to the claiming host;
// the history entry is written first, while the task is still unassigned.
const RECORD_ASSIGNMENT_SQL: &str = "INSERT INTO task_events (task_id, kind, message, created_at) \
     SELECT task_id, 'assigned', 'assigned to host ' || ?2, ?3 FROM tasks \
     WHERE task_id IN (SELECT task_id FROM steps WHERE claim_token = ?1) AND assigned_host IS NULL";
const ASSIGN_CLAIMED_TASKS_SQL: &str = "UPDATE tasks SET assigned_host = ?2, assigned_at = ?3 \
     WHERE task_id IN (SELECT task_id FROM steps WHERE claim_token = ?1) AND assigned_host IS NULL";

const TASKS_OF_CLAIM_SQL: &str =
    concat!("SELECT ", task_columns!(), " FROM tasks WHERE task_id IN (SELECT task_id FROM steps WHERE claim_token = ?1)");

/// A step claim: what a host asks for.
pub(super) struct ClaimAsk<'a> {
    pub worker_id: &'a str,
    pub host: &'a str,
    pub capacity: i64,
    pub worker_kinds: Option<Vec<String>>,
    pub heartbeat_ttl_sec: i64,
    /// The host's coding-agent account (SPEC §13).
    pub account: Option<&'a str>,
}

/// The claim's statements, under the fresh `claim_token`: the steps (their rows), their runs,
/// the assignment of their tasks to the host, and the tasks (their rows, last).
pub(super) fn claim_statements(ask: &ClaimAsk<'_>, claim_token: &str, now: i64) -> Vec<Statement> {
    vec![
        Statement::new(
            CLAIM_STEPS_SQL,
            vec![
                ask.worker_id.into(),
                claim_token.into(),
                now.into(),
                ask.heartbeat_ttl_sec.into(),
                ask.host.into(),
                ask.worker_kinds.as_ref().map(|kinds| json!(kinds).to_string()).into(),
                ask.capacity.into(),
                ask.account.into(),
            ],
        ),
        Statement::new(INSERT_CLAIMED_RUNS_SQL, vec![claim_token.into(), ask.host.into(), now.into()]),
        Statement::new(RECORD_ASSIGNMENT_SQL, vec![claim_token.into(), ask.host.into(), now.into()]),
        Statement::new(ASSIGN_CLAIMED_TASKS_SQL, vec![claim_token.into(), ask.host.into(), now.into()]),
        Statement::new(TASKS_OF_CLAIM_SQL, vec![claim_token.into()]),
    ]
}

/// The claimed steps with their tasks, from the rows of [`claim_statements`] (at `at`).
pub(super) fn claimed_steps(results: &[Vec<Row>], at: usize) -> ApiResult<Vec<ClaimedStep>> {
    let tasks = records::all(&results[at + 4], records::task)?;
    let mut steps = Vec::new();
    for step in records::all(&results[at], records::step)? {
        let task = tasks
            .iter()
            .find(|task| task.task_id == step.task_id)
            .cloned()
            .ok_or_else(|| ApiError::internal("claimed step without its task"))?;
        let run_id = step.current_run_id.clone().ok_or_else(|| ApiError::internal("claimed step without a run"))?;
        steps.push(ClaimedStep { attempt: step.attempt, run_id, task, step });
    }
    steps.sort_by(|a, b| b.task.priority.cmp(&a.task.priority).then(a.step.step_id.cmp(&b.step.step_id)));
    Ok(steps)
}
