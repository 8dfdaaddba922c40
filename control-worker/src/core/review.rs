//! Review (SPEC §12): a task created with `review: true` waits in `review` once its steps
//! passed; a person approves it (`succeeded`: its dependents may start) or rejects it with a
//! reason (`failed`: its dependents are blocked). Each decision is recorded in the task's
//! history with who made it and the request's id, in the same batch as the change.
//!
//! `retry: true` on a reject starts another agent round of a `codex` task with the reason as
//! feedback (SPEC §13), while its rounds last; otherwise the task fails, and the answer says
//! which (`retried`). A reject may carry comments on lines of the branch's diff
//! (`comments: [{path, line, comment}]`); the next round's feedback file lists them as
//! `path:line: comment`.

use super::blobs::Blobs;
use shared::status::TaskStatus;
use shared::wire::{LineComment, TaskReviewed};

use super::clock::{Clock, Random};
use super::db::{Db, Statement};
use super::error::{ApiError, ApiResult};
use super::input::{Fields, MAX_SHORT_TEXT_LEN, MAX_TEXT_LEN};
use super::records;
use super::rounds;
use super::tasks::{task_not_found, SELECT_TASK_SQL};
use super::{Call, Core, Reply};

// ?1 task, ?2 kind, ?3 message, ?4 now. Recorded only while the task is in review, before it moves.
const RECORD_DECISION_SQL: &str = "INSERT INTO task_events (task_id, kind, message, created_at) \
     SELECT ?1, ?2, ?3, ?4 FROM tasks WHERE task_id = ?1 AND status = 'review'";
// ?1 task, ?2 now, ?3 status, ?4 status reason.
const DECIDE_SQL: &str = "UPDATE tasks SET status = ?3, finished_at = ?2, updated_at = ?2, status_reason = ?4 \
     WHERE task_id = ?1 AND status = 'review' RETURNING task_id";
// ?1 task, ?2 now, ?3 status reason. A reviewed task whose next round was just made runs again.
const RESUME_WITH_ROUND_SQL: &str = "UPDATE tasks SET status = 'running', finished_at = NULL, updated_at = ?2, status_reason = ?3 \
     WHERE task_id = ?1 AND status = 'review' \
       AND EXISTS (SELECT 1 FROM steps n WHERE n.task_id = ?1 AND n.status = 'ready' AND n.created_at = ?2) RETURNING task_id";

/// A decision on a task in review: recorded, then `round` (statements that may start the next
/// round and resume the task) tried, then `status` if the task is still in review. The task as
/// it stands after, and whether it runs another round.
async fn decide<D: Db, C: Clock, R: Random, B: Blobs>(
    core: &Core<D, C, R, B>,
    call: &Call<'_>,
    status: TaskStatus,
    kind: &str,
    message: String,
    round: Vec<Statement>,
) -> ApiResult<(shared::wire::Task, bool)> {
    let task_id = call.param("task_id");
    let audited = format!("{message} (request {})", call.request_id);
    let round_statements = round.len();
    let mut statements = vec![Statement::new(RECORD_DECISION_SQL, vec![task_id.into(), kind.into(), audited.into(), call.now.into()])];
    statements.extend(round);
    statements.push(Statement::new(DECIDE_SQL, vec![task_id.into(), call.now.into(), status.as_str().into(), message.into()]));
    statements.push(Statement::new(SELECT_TASK_SQL, vec![task_id.into()]));
    let results = core.db.batch(statements).await?;
    let resumed = round_statements > 0 && !results[round_statements].is_empty();
    let decided = !results[round_statements + 1].is_empty();
    let task = records::first(&results[round_statements + 2], records::task)?.ok_or_else(|| task_not_found(task_id))?;
    if !decided && !resumed {
        return Err(ApiError::invalid_transition(format!("task {task_id} is {}; only a task in review can be {kind}", task.status))
            .with_detail("status", task.status.as_str()));
    }
    Ok((task, resumed))
}

pub async fn approve<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(true)?;
    let fields = Fields::new(&body);
    let comment = fields.opt_str("comment", MAX_TEXT_LEN)?;
    let by = call.principal.label.to_string();
    let message = match &comment {
        Some(comment) => format!("approved by {by}: {comment}"),
        None => format!("approved by {by}"),
    };
    let (task, _) = decide(core, call, TaskStatus::Succeeded, "approved", message, Vec::new()).await?;
    Reply::ok(&TaskReviewed { decision: "approved".into(), reason: comment, retried: false, task })
}

/// Most line comments one review carries.
pub const MAX_LINE_COMMENTS: usize = 200;

/// `comments` of a reject: `[{path, line, comment}]`, `line` the line's number in the new file.
fn line_comments(fields: &Fields<'_>) -> ApiResult<Vec<LineComment>> {
    fields
        .objects("comments", MAX_LINE_COMMENTS)?
        .iter()
        .map(|comment| {
            Ok(LineComment {
                path: comment.str("path", MAX_SHORT_TEXT_LEN)?,
                line: comment.i64("line", 1, 10_000_000)?,
                comment: comment.str("comment", MAX_TEXT_LEN)?,
            })
        })
        .collect()
}

pub async fn reject<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let reason = fields.str("reason", MAX_TEXT_LEN)?;
    let retry = fields.bool_or_false("retry")?;
    let comments = line_comments(&fields)?;
    let by = call.principal.label.to_string();
    let message = match comments.len() {
        0 => format!("rejected by {by}: {reason}"),
        1 => format!("rejected by {by}: {reason} (1 comment on a line)"),
        count => format!("rejected by {by}: {reason} ({count} comments on lines)"),
    };
    let round = if retry {
        let task_id = call.param("task_id");
        let comments = serde_json::to_string(&comments).map_err(|error| ApiError::internal(format!("comments: {error}")))?;
        vec![
            rounds::grow_after_reject(task_id, call.now, &by, &reason, &comments),
            Statement::new(RESUME_WITH_ROUND_SQL, vec![task_id.into(), call.now.into(), format!("{message}; another round").into()]),
        ]
    } else {
        Vec::new()
    };
    let (task, retried) = decide(core, call, TaskStatus::Failed, "rejected", message, round).await?;
    Reply::ok(&TaskReviewed { decision: "rejected".into(), reason: Some(reason), retried, task })
}
