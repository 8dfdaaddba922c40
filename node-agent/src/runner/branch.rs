//! The task's branch: a commit after each agent or shell step that changed the worktree
//! (SPEC §11), and the task's `result` read back from the branch.

use std::path::Path;

use shared::wire::TaskResult;

use super::worktree::{git, git_with_env, WorktreeError};

/// Who the commits are by: `BAA_GIT_AUTHOR_NAME` / `BAA_GIT_AUTHOR_EMAIL`, by default
/// `baa-conductor <baa@HOST>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

/// The commit message: `<task title>: <step title>`, then the trailers.
pub fn commit_message(task_title: &str, step_title: &str, task_id: &str, run_id: &str) -> String {
    format!("{task_title}: {step_title}\n\nBaa-Task: {task_id}\nBaa-Run: {run_id}\n")
}

/// Commits everything in the worktree (untracked included, ignored excluded) on its branch;
/// the new commit, or `None` when the step changed nothing.
pub async fn commit_all(worktree: &Path, message: &str, author: &Author) -> Result<Option<String>, WorktreeError> {
    git(worktree, &["add", "-A"], None).await?;
    if git(worktree, &["diff", "--cached", "--quiet"], None).await.is_ok() {
        return Ok(None);
    }
    let identity = [
        ("GIT_AUTHOR_NAME", author.name.as_str()),
        ("GIT_AUTHOR_EMAIL", author.email.as_str()),
        ("GIT_COMMITTER_NAME", author.name.as_str()),
        ("GIT_COMMITTER_EMAIL", author.email.as_str()),
    ];
    // No hooks and no signing: nobody is at the keyboard to answer either.
    git_with_env(worktree, &["-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", message], None, &identity).await?;
    let head = git(worktree, &["rev-parse", "HEAD"], None).await?;
    Ok(Some(head.trim().to_string()))
}

/// Lines of `git diff --numstat`: the files, insertions and deletions (binary files count
/// as changed with no lines).
pub fn parse_numstat(text: &str) -> (Vec<String>, i64, i64) {
    let (mut files, mut insertions, mut deletions) = (Vec::new(), 0, 0);
    for line in text.lines() {
        let mut fields = line.splitn(3, '\t');
        let (Some(added), Some(removed), Some(path)) = (fields.next(), fields.next(), fields.next()) else { continue };
        insertions += added.parse::<i64>().unwrap_or(0);
        deletions += removed.parse::<i64>().unwrap_or(0);
        files.push(path.to_string());
    }
    (files, insertions, deletions)
}

/// What the task's branch holds since its base.
pub async fn task_result(worktree: &Path, base_commit: &str, branch: &str, host: &str, repo: &str) -> Result<TaskResult, WorktreeError> {
    let head = git(worktree, &["rev-parse", "HEAD"], None).await?.trim().to_string();
    let range = format!("{base_commit}..{head}");
    let commits = git(worktree, &["rev-list", "--count", &range], None).await?.trim().parse().unwrap_or(0);
    let numstat = git(worktree, &["diff", "--numstat", "--no-renames", base_commit, &head], None).await?;
    let (files_changed, insertions, deletions) = parse_numstat(&numstat);
    Ok(TaskResult {
        base_commit: base_commit.to_string(),
        head_commit: head,
        branch: branch.to_string(),
        commits,
        files_changed,
        insertions,
        deletions,
        host: host.to_string(),
        repo: repo.to_string(),
        pushed_to: None,
        pr_url: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numstat_counts_lines_and_binary_files() {
        let (files, insertions, deletions) = parse_numstat("3\t1\tsrc/a.rs\n-\t-\tlogo.png\n10\t0\tdocs/new file.md\n");
        assert_eq!(files, ["src/a.rs", "logo.png", "docs/new file.md"]);
        assert_eq!((insertions, deletions), (13, 1));
    }

    #[test]
    fn the_message_carries_the_trailers() {
        let message = commit_message("Fix the parser", "coding agent", "task_1", "task_1.s0.a1");
        assert_eq!(message, "Fix the parser: coding agent\n\nBaa-Task: task_1\nBaa-Run: task_1.s0.a1\n");
    }
}
