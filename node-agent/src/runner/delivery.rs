//! The run's part in the deliverable (SPEC §11): a deliver step's command and the report it
//! hands a pull-request command, and the task's `result` read from the branch after a run.

use shared::status::{DeliveryMode, StepKind};
use shared::wire::{Task, TaskResult};

use super::command::{self, CommandError};
use super::run_dir::{RunDir, RunMeta};
use super::{branch, worktree};
use crate::log::log;

/// A deliver step's command, with the report it hands a pull-request command written first.
pub async fn command(task: &Task, meta: &RunMeta, dir: &RunDir, pr_template: Option<&str>) -> Result<String, CommandError> {
    let mode = task.constraints.get("deliver").and_then(|mode| mode.as_str()).and_then(DeliveryMode::parse).unwrap_or(DeliveryMode::Push);
    let remote = remote(task);
    let report = report(task, meta).await;
    if let Err(error) = super::run_dir::write_atomic(&dir.report(), report.as_bytes()) {
        log!("run {}: writing report.md: {error}", meta.run_id);
    }
    let (report_file, worktree_text) = (dir.report().to_string_lossy().into_owned(), meta.worktree.to_string_lossy().into_owned());
    let delivery = command::Delivery {
        pull_request: mode == DeliveryMode::Pr,
        remote,
        branch: &task.branch_name,
        base_branch: meta.base_branch.as_deref().unwrap_or("main"),
        title: &task.title,
        report_file: &report_file,
        task_id: &task.task_id,
        worktree: &worktree_text,
    };
    command::deliver_command(&delivery, pr_template)
}

/// `constraints.remote`, default `origin`.
pub fn remote(task: &Task) -> &str {
    task.constraints.get("remote").and_then(|remote| remote.as_str()).unwrap_or("origin")
}

/// Markdown for a pull request's body: the goal, the commits, the files.
async fn report(task: &Task, meta: &RunMeta) -> String {
    let mut text = format!("# {}\n\n{}\n", task.title, task.goal.trim());
    if let Some(base_commit) = meta.base_commit.as_deref() {
        let range = format!("{base_commit}..HEAD");
        if let Ok(log) = worktree::git(&meta.worktree, &["log", "--format=- %h %s", &range], None).await {
            text.push_str(&format!("\n## Commits\n\n{log}"));
        }
        if let Ok(files) = worktree::git(&meta.worktree, &["diff", "--stat", base_commit, "HEAD"], None).await {
            text.push_str(&format!("\n## Files changed\n\n```\n{files}```\n"));
        }
    }
    text.push_str(&format!("\nTask `{}` by baa-conductor.\n", task.task_id));
    text
}

/// The task's branch as it stands after this run, for the task's `result`.
pub async fn task_result(meta: &RunMeta, dir: &RunDir, host: &str, succeeded: bool) -> Option<TaskResult> {
    let base_commit = meta.base_commit.as_deref()?;
    let mut result = branch::task_result(&meta.worktree, base_commit, &meta.branch_name, host, &meta.repo)
        .await
        .map_err(|error| log!("run {}: reading the branch for the result: {error}", meta.run_id))
        .ok()?;
    if meta.step_kind == StepKind::Deliver && succeeded {
        // The push's remote as git names it: the URL, when `remote` is a remote's name.
        let remote = meta.deliver_remote.clone().unwrap_or_else(|| "origin".into());
        let url = worktree::git(&meta.worktree, &["remote", "get-url", &remote], None).await.map(|url| url.trim().to_string());
        result.pushed_to = Some(url.unwrap_or(remote));
        let stdout = std::fs::read(dir.stdout_log()).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
        result.pr_url = command::first_url(&stdout);
    }
    Some(result)
}
