//! Review (SPEC §12): a task created with `review: true` waits in `review` once its steps
//! passed; a person approves it (`succeeded`: its dependents may start) or rejects it with a
//! reason (`failed`: its dependents are blocked). Each decision is recorded in the task's
//! history with who made it and the request's id, in the same batch as the change.
//!
//! `retry: true` on a reject is to start another agent round with the reason as feedback
//! (SPEC §13); until agent rounds exist the task fails either way, and the answer says so.

use shared::status::TaskStatus;
use shared::wire::TaskReviewed;

use super::clock::{Clock, Random};
use super::db::{Db, Statement};
use super::error::{ApiError, ApiResult};
use super::input::{Fields, MAX_TEXT_LEN};
use super::records;
use super::tasks::{task_not_found, SELECT_TASK_SQL};
use super::{Call, Core, Reply};

// ?1 task, ?2 kind, ?3 message, ?4 now. Recorded only while the task is in review, before it moves.
const RECORD_DECISION_SQL: &str = "INSERT INTO task_events (task_id, kind, message, created_at) \
     SELECT ?1, ?2, ?3, ?4 FROM tasks WHERE task_id = ?1 AND status = 'review'";
// ?1 task, ?2 now, ?3 status, ?4 status reason.
const DECIDE_SQL: &str = "UPDATE tasks SET status = ?3, finished_at = ?2, updated_at = ?2, status_reason = ?4 \
     WHERE task_id = ?1 AND status = 'review' RETURNING task_id";

async fn decide<D: Db, C: Clock, R: Random>(
    core: &Core<D, C, R>,
    call: &Call<'_>,
    status: TaskStatus,
    kind: &str,
    message: String,
) -> ApiResult<shared::wire::Task> {
    let task_id = call.param("task_id");
    let audited = format!("{message} (request {})", call.request_id);
    let results = core
        .db
        .batch(vec![
            Statement::new(RECORD_DECISION_SQL, vec![task_id.into(), kind.into(), audited.into(), call.now.into()]),
            Statement::new(DECIDE_SQL, vec![task_id.into(), call.now.into(), status.as_str().into(), message.into()]),
            Statement::new(SELECT_TASK_SQL, vec![task_id.into()]),
        ])
        .await?;
    let task = records::first(&results[2], records::task)?.ok_or_else(|| task_not_found(task_id))?;
    if results[1].is_empty() {
        return Err(ApiError::invalid_transition(format!("task {task_id} is {}; only a task in review can be {kind}", task.status))
            .with_detail("status", task.status.as_str()));
    }
    Ok(task)
}

pub async fn approve<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(true)?;
    let fields = Fields::new(&body);
    let comment = fields.opt_str("comment", MAX_TEXT_LEN)?;
    let by = call.principal.label.to_string();
    let message = match &comment {
        Some(comment) => format!("approved by {by}: {comment}"),
        None => format!("approved by {by}"),
    };
    let task = decide(core, call, TaskStatus::Succeeded, "approved", message).await?;
    Reply::ok(&TaskReviewed { decision: "approved".into(), reason: comment, retried: false, task })
}

pub async fn reject<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let reason = fields.str("reason", MAX_TEXT_LEN)?;
    // Read so a bad value is refused; another round needs agent rounds (SPEC §13).
    fields.bool_or_false("retry")?;
    let by = call.principal.label.to_string();
    let task = decide(core, call, TaskStatus::Failed, "rejected", format!("rejected by {by}: {reason}")).await?;
    Reply::ok(&TaskReviewed { decision: "rejected".into(), reason: Some(reason), retried: false, task })
}
