//! `tasks.diff` (SPEC §18): a task's branch as a unified diff against its base commit, for
//! people (the console's coloured diff, `node-agent tasks diff`). The runner takes it after
//! each step that committed (`branch_diff` checkpoint, `git diff <base> HEAD`); the newest one
//! is the branch as it stands. Its content may have moved to object storage, or expired.

use super::blobs::Blobs;
use shared::wire::TaskDiff;

use super::clock::{Clock, Random};
use super::db::{Db, Statement};
use super::error::ApiResult;
use super::records::{self, checkpoint_columns};
use super::steps::checkpoint_with_content;
use super::tasks::{task_not_found, SELECT_TASK_SQL};
use super::{Call, Core, Reply};

// Through `runs_by_task` and the checkpoints' primary key: no scan. The newest stored wins
// (`rowid` orders two stored in the same second).
const SELECT_LAST_BRANCH_DIFF_SQL: &str = concat!(
    "SELECT ",
    checkpoint_columns!(),
    ", blob_key, blob_offset, blob_length, \
       (SELECT logs_expired_at FROM runs WHERE run_id = checkpoints.run_id) AS logs_expired_at \
     FROM checkpoints WHERE run_id IN (SELECT run_id FROM runs WHERE task_id = ?1) AND checkpoint_type = 'branch_diff' \
     ORDER BY created_at DESC, rowid DESC LIMIT 1"
);

pub async fn read<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let task_id = call.param("task_id");
    let results = core
        .db
        .batch(vec![
            Statement::new(SELECT_TASK_SQL, vec![task_id.into()]),
            Statement::new(SELECT_LAST_BRANCH_DIFF_SQL, vec![task_id.into()]),
        ])
        .await?;
    let task = records::first(&results[0], records::task)?.ok_or_else(|| task_not_found(task_id))?;
    let mut diff = TaskDiff {
        task_id: task.task_id.clone(),
        branch: task.branch_name.clone(),
        base_commit: task.result.as_ref().map(|result| result.base_commit.clone()).or(task.base_commit.clone()),
        head_commit: task.result.as_ref().map(|result| result.head_commit.clone()),
        ..TaskDiff::default()
    };
    let Some(row) = results[1].first() else {
        diff.reason = Some(match task.result {
            Some(result) if result.commits == 0 => "no change: the branch has no commit since its base".to_string(),
            _ => "no diff yet: no step of this task has committed".to_string(),
        });
        return Reply::ok(&diff);
    };
    let checkpoint = checkpoint_with_content(core, row).await?;
    diff.run_id = Some(checkpoint.run_id.clone());
    diff.created_at = Some(checkpoint.created_at);
    if checkpoint.content_expired {
        diff.reason =
            Some(format!("the diff expired with its run's logs (CONTROL_API_LOG_RETENTION_DAYS, {} days)", core.config.log_retention_days));
    } else {
        diff.available = true;
        diff.patch = Some(checkpoint.content);
    }
    Reply::ok(&diff)
}
