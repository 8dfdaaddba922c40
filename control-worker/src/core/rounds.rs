//! Agent rounds (SPEC §13): a failed acceptance step of a `codex` task with rounds left
//! (`constraints.max_rounds`, default 3, the first included) does not fail the task: the plan
//! grows by the next round — the round's steps from its agent step on (the agent with the
//! failure as feedback, the acceptance steps, delivery) copied after the task's last step — and
//! the task runs on, on the same host and branch. A reviewer's `reject {retry: true}` grows a
//! round the same way, with the reason as feedback.

use super::db::Statement;

/// Rounds of a `codex` task unless `constraints.max_rounds` says otherwise.
pub const DEFAULT_MAX_ROUNDS: i64 = 3;
pub const MAX_ROUNDS: i64 = 20;

/// The next round's steps, copied from round `m.round` of task `m.task_id` from its agent step
/// (`m.first`) on, after the task's last step (`m.top`); the agent step is ready at once and
/// carries `m.feedback` in its metadata. `m` is the subquery each operation appends.
macro_rules! grow_round_from {
    ($from:expr) => {
        concat!(
            "INSERT INTO steps (step_id, task_id, step_index, step_kind, worker_kind, title, command, prompt, timeout_sec, status, \
               attempt, max_attempts, target_host, task_priority, created_at, ready_at, metadata_json, round) \
             SELECT o.task_id || '.s' || (m.top + 1 + o.step_index - m.first), o.task_id, m.top + 1 + o.step_index - m.first, \
               o.step_kind, o.worker_kind, o.title, o.command, o.prompt, o.timeout_sec, \
               CASE WHEN o.step_index = m.first THEN 'ready' ELSE 'pending' END, 0, o.max_attempts, o.target_host, o.task_priority, ?2, \
               CASE WHEN o.step_index = m.first THEN ?2 END, \
               CASE WHEN o.step_index = m.first THEN json_set(o.metadata_json, '$.feedback', json(m.feedback)) ELSE o.metadata_json END, \
               m.round + 1 \
             FROM steps o JOIN (SELECT g.task_id, g.round, g.feedback, \
                 (SELECT MIN(a.step_index) FROM steps a WHERE a.task_id = g.task_id AND a.round = g.round AND a.step_kind = 'agent') AS first, \
                 (SELECT MAX(a.step_index) FROM steps a WHERE a.task_id = g.task_id) AS top \
               FROM (",
            $from,
            ") AS g) AS m ON o.task_id = m.task_id AND o.round = m.round AND o.step_index >= m.first"
        )
    };
}

/// A task's rounds so far are below its `max_rounds` (`t` the task, `r` the round).
macro_rules! rounds_left {
    ($round:literal) => {
        concat!($round, " < COALESCE(json_extract(t.constraints_json, '$.max_rounds'), 3)")
    };
}

// ?1 settlement marker, ?2 now. The marked steps that failed for good and are acceptance steps
// of a running codex task with rounds left; the feedback names the failed command and its run,
// whose output the host still has.
const GROW_ROUND_AFTER_FAILURE_SQL: &str = grow_round_from!(concat!(
    "SELECT f.task_id, f.round, json_object('kind', 'acceptance', 'round', f.round, 'step_index', f.step_index, \
       'command', f.command, 'exit_code', f.exit_code, 'error', f.error, 'run_id', f.current_run_id) AS feedback \
     FROM steps f JOIN tasks t ON t.task_id = f.task_id \
     WHERE f.claim_token = ?1 AND f.status IN ('failed', 'timed_out') AND f.step_kind = 'test' \
       AND t.task_type = 'codex' AND t.status = 'running' AND ",
    rounds_left!("f.round")
));

// ?1 marker, ?2 now. The history of each task that just grew a round.
const RECORD_ROUND_AFTER_FAILURE_SQL: &str = "INSERT INTO task_events (task_id, kind, message, created_at) \
     SELECT f.task_id, 'round_started', 'round ' || (f.round + 1) || ' started: acceptance step ' || f.step_index || ' failed (' || \
       COALESCE(f.error, 'no error') || ')', ?2 FROM steps f \
     WHERE f.claim_token = ?1 AND f.status IN ('failed', 'timed_out') \
       AND EXISTS (SELECT 1 FROM steps n WHERE n.task_id = f.task_id AND n.round = f.round + 1 AND n.status = 'ready' AND n.created_at = ?2)";

/// The statements that grow the next round for the attempts settled under `marker`: the steps,
/// then the history. Run after the settled steps' pending ones were canceled, before their
/// tasks are ended (a task with a ready step is not).
pub fn grow_after_failure(marker: &str, now: i64) -> Vec<Statement> {
    vec![
        Statement::new(GROW_ROUND_AFTER_FAILURE_SQL, vec![marker.into(), now.into()]),
        Statement::new(RECORD_ROUND_AFTER_FAILURE_SQL, vec![marker.into(), now.into()]),
    ]
}

// ?1 task, ?2 now, ?3 reviewer, ?4 reason. A codex task in review with rounds left: its last
// round grows the next, with the reviewer's reason as feedback.
const GROW_ROUND_AFTER_REJECT_SQL: &str = grow_round_from!(concat!(
    "SELECT t.task_id, (SELECT MAX(s.round) FROM steps s WHERE s.task_id = t.task_id) AS round, \
       json_object('kind', 'review', 'reviewer', ?3, 'reason', ?4, 'comments', json(?5)) AS feedback \
     FROM tasks t WHERE t.task_id = ?1 AND t.status = 'review' AND t.task_type = 'codex' \
       AND ",
    rounds_left!("(SELECT MAX(s.round) FROM steps s WHERE s.task_id = t.task_id)")
));

/// The statement that grows a reviewed task's next round (`reject {retry: true}`); a row per
/// step made, none when the task has no rounds left or is no codex task in review.
/// `comments` is the JSON array of the reviewer's line comments (`[]` for none).
pub fn grow_after_reject(task_id: &str, now: i64, reviewer: &str, reason: &str, comments: &str) -> Statement {
    Statement::new(GROW_ROUND_AFTER_REJECT_SQL, vec![task_id.into(), now.into(), reviewer.into(), reason.into(), comments.into()])
}
