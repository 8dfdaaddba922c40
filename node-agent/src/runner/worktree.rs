//! The task's git worktree, `<worktrees_dir>/<task_id>` on branch `baa/<task_id>`, and the
//! diff of a worktree against the commit it was made from (untracked files included).

use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum WorktreeError {
    /// The task names a repository this host does not have: nothing to retry.
    #[error("repo {0:?} is not a git repository on this host")]
    NotARepository(String),
    #[error("base_ref {base_ref:?} does not name a commit in {repo:?}")]
    UnknownBaseRef { repo: String, base_ref: String },
    #[error("git {command}: {detail}")]
    Git { command: String, detail: String },
}

impl WorktreeError {
    /// Another attempt would meet the same wall: the task needs a person.
    pub fn is_permanent(&self) -> bool {
        matches!(self, WorktreeError::NotARepository(_) | WorktreeError::UnknownBaseRef { .. })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Worktree {
    pub path: PathBuf,
    pub base_sha: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diff {
    pub patch: String,
    pub files: Vec<String>,
}

async fn git(dir: &Path, args: &[&str], index_file: Option<&Path>) -> Result<String, WorktreeError> {
    let mut command = tokio::process::Command::new("git");
    command.arg("-C").arg(dir).args(args).stdin(std::process::Stdio::null());
    // The agent may itself run under git (a hook, a test); its repository is not ours.
    for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_COMMON_DIR"] {
        command.env_remove(name);
    }
    if let Some(index_file) = index_file {
        command.env("GIT_INDEX_FILE", index_file);
    }
    let describe = || args.iter().take(3).copied().collect::<Vec<_>>().join(" ");
    let output = command.output().await.map_err(|error| WorktreeError::Git { command: describe(), detail: error.to_string() })?;
    if !output.status.success() {
        let detail: String = String::from_utf8_lossy(&output.stderr).trim().chars().take(500).collect();
        return Err(WorktreeError::Git { command: describe(), detail });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Makes (or finds again, for a later step or attempt of the same task) the task's worktree.
pub async fn prepare(repo: &str, worktrees_dir: &Path, task_id: &str, branch: &str, base_ref: &str) -> Result<Worktree, WorktreeError> {
    let repo_path = Path::new(repo);
    if !repo_path.is_absolute() || git(repo_path, &["rev-parse", "--git-dir"], None).await.is_err() {
        return Err(WorktreeError::NotARepository(repo.to_string()));
    }
    let base_ref = if base_ref.trim().is_empty() { "HEAD" } else { base_ref.trim() };
    let base = git(repo_path, &["rev-parse", "--verify", "--quiet", &format!("{base_ref}^{{commit}}")], None)
        .await
        .map_err(|_| WorktreeError::UnknownBaseRef { repo: repo.to_string(), base_ref: base_ref.to_string() })?
        .trim()
        .to_string();
    let path = worktrees_dir.join(task_id);
    let reusable = path.join(".git").exists() && git(&path, &["rev-parse", "--is-inside-work-tree"], None).await.is_ok();
    if !reusable {
        std::fs::create_dir_all(worktrees_dir).map_err(|error| WorktreeError::Git { command: "worktree add".into(), detail: error.to_string() })?;
        // A worktree folder removed by hand leaves a stale entry that blocks a new one.
        git(repo_path, &["worktree", "prune"], None).await?;
        let path_text = path.to_string_lossy().into_owned();
        let branch_exists = git(repo_path, &["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")], None).await.is_ok();
        if branch_exists {
            git(repo_path, &["worktree", "add", &path_text, branch], None).await?;
        } else {
            git(repo_path, &["worktree", "add", "-b", branch, &path_text, &base], None).await?;
            return Ok(Worktree { path, base_sha: base });
        }
    }
    // The branch may have moved on from the base (an earlier step committed): diff against
    // where it forked.
    let base_sha = match git(&path, &["merge-base", "HEAD", &base], None).await {
        Ok(fork) if !fork.trim().is_empty() => fork.trim().to_string(),
        _ => base,
    };
    Ok(Worktree { path, base_sha })
}

/// The worktree against `base_sha`, untracked (not ignored) files included, taken through a
/// scratch copy of the index so the worktree's own index is left as the step left it.
pub async fn diff(worktree: &Path, base_sha: &str, scratch_index: &Path) -> Result<Diff, WorktreeError> {
    let index = git(worktree, &["rev-parse", "--path-format=absolute", "--git-path", "index"], None).await?;
    let _ = std::fs::remove_file(scratch_index);
    if let Some(parent) = scratch_index.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::copy(index.trim(), scratch_index);
    let result = async {
        git(worktree, &["add", "-A"], Some(scratch_index)).await?;
        let patch = git(worktree, &["diff", "--cached", "--no-color", "--no-ext-diff", base_sha], Some(scratch_index)).await?;
        let names = git(worktree, &["diff", "--cached", "--name-only", "--no-renames", base_sha], Some(scratch_index)).await?;
        Ok(Diff { patch, files: names.lines().map(str::to_string).filter(|name| !name.is_empty()).collect() })
    }
    .await;
    let _ = std::fs::remove_file(scratch_index);
    result
}
