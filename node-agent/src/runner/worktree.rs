//! The task's git worktree, `<worktrees_dir>/<task_id>` on the task's branch, made from the
//! task's base commit in the host's copy of the repository (the repository itself for a path,
//! a mirror clone for a URL, see [`super::mirror`]); and the diff of a worktree against a
//! commit (untracked files included).

use std::path::{Path, PathBuf};

use shared::ids::is_commit_id;
use thiserror::Error;

use super::mirror::{self, LocalRepo};

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

/// Runs git in `dir` with the step's environment kept out; its stdout.
pub async fn git(dir: &Path, args: &[&str], index_file: Option<&Path>) -> Result<String, WorktreeError> {
    git_with_env(dir, args, index_file, &[]).await
}

pub async fn git_with_env(dir: &Path, args: &[&str], index_file: Option<&Path>, env: &[(&str, &str)]) -> Result<String, WorktreeError> {
    let mut command = tokio::process::Command::new("git");
    command.arg("-C").arg(dir).args(args).stdin(std::process::Stdio::null());
    // The agent may itself run under git (a hook, a test); its repository is not ours.
    for name in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX", "GIT_COMMON_DIR"] {
        command.env_remove(name);
    }
    // Never wait for a password prompt: an unattended fetch or push fails instead.
    command.env("GIT_TERMINAL_PROMPT", "0");
    if let Some(index_file) = index_file {
        command.env("GIT_INDEX_FILE", index_file);
    }
    command.envs(env.iter().copied());
    let describe = || args.iter().take(3).copied().collect::<Vec<_>>().join(" ");
    let output = command.output().await.map_err(|error| WorktreeError::Git { command: describe(), detail: error.to_string() })?;
    if !output.status.success() {
        let detail: String = String::from_utf8_lossy(&output.stderr).trim().chars().take(500).collect();
        return Err(WorktreeError::Git { command: describe(), detail });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What a step needs to know of the task's git state.
pub struct WorktreeRequest<'a> {
    pub repo: &'a str,
    pub mirrors_dir: &'a Path,
    pub worktrees_dir: &'a Path,
    pub task_id: &'a str,
    pub branch: &'a str,
    pub base_ref: &'a str,
    /// The base as first resolved for the task, when it has been.
    pub base_commit: Option<&'a str>,
    /// The task's first step: the branch starts at the base commit (again, after the task
    /// started over).
    pub first_step: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Worktree {
    pub path: PathBuf,
    /// The task's base, resolved once (40 hex digits).
    pub base_commit: String,
    /// The branch's tip when the step starts: the step's diff is taken against it.
    pub start_commit: String,
    /// The branch the base came from, for a pull request (`main` for `HEAD` on main).
    pub base_branch: Option<String>,
}

async fn commit_of(repo: &Path, name: &str) -> Option<String> {
    let sha = git(repo, &["rev-parse", "--verify", "--quiet", &format!("{name}^{{commit}}")], None).await.ok()?;
    Some(sha.trim().to_string()).filter(|sha| is_commit_id(sha))
}

fn plain_ref(base_ref: &str) -> &str {
    if base_ref.trim().is_empty() {
        "HEAD"
    } else {
        base_ref.trim()
    }
}

/// Resolves `base_ref` in the host's copy: in a mirror, a branch name means the remote's.
async fn resolve_base(local: &LocalRepo, base_ref: &str) -> Option<String> {
    let candidates: Vec<String> = match (local.mirrored, plain_ref(base_ref)) {
        (true, "HEAD") => vec!["refs/remotes/origin/HEAD".into()],
        (true, name) => vec![format!("refs/remotes/origin/{name}"), name.to_string()],
        (false, name) => vec![name.to_string()],
    };
    for candidate in &candidates {
        if let Some(sha) = commit_of(&local.dir, candidate).await {
            return Some(sha);
        }
    }
    None
}

/// The branch `base_ref` names, for a pull request: `HEAD` is the branch it points at.
async fn base_branch(local: &LocalRepo, base_ref: &str) -> Option<String> {
    match plain_ref(base_ref) {
        "HEAD" => {
            let head = if local.mirrored { "refs/remotes/origin/HEAD" } else { "HEAD" };
            let name = git(&local.dir, &["symbolic-ref", "--quiet", head], None).await.ok()?;
            Some(name.trim().trim_start_matches("refs/remotes/origin/").trim_start_matches("refs/heads/").to_string())
                .filter(|name| !name.is_empty())
        }
        name if is_commit_id(name) => None,
        name => Some(name.to_string()),
    }
}

/// Makes (or finds again, for a later step or attempt of the same task) the task's worktree,
/// reset to the branch's last commit: what a failed attempt or a test step left is gone (it
/// is kept in that run's `git_diff` checkpoint).
pub async fn prepare(request: &WorktreeRequest<'_>) -> Result<Worktree, WorktreeError> {
    let path = request.worktrees_dir.join(request.task_id);
    let reusable = path.join(".git").exists() && git(&path, &["rev-parse", "--is-inside-work-tree"], None).await.is_ok();
    // A URL's mirror is fetched before the task starts on this host, not before every step.
    let local = mirror::local_repo(request.repo, request.mirrors_dir, !reusable).await?;
    let unknown = |base_ref: &str| WorktreeError::UnknownBaseRef { repo: request.repo.to_string(), base_ref: base_ref.to_string() };
    let base_commit = match request.base_commit {
        Some(base_commit) => commit_of(&local.dir, base_commit).await.ok_or_else(|| unknown(base_commit))?,
        None => resolve_base(&local, request.base_ref).await.ok_or_else(|| unknown(request.base_ref))?,
    };
    let base_branch = base_branch(&local, request.base_ref).await;
    if !reusable {
        std::fs::create_dir_all(request.worktrees_dir)
            .map_err(|error| WorktreeError::Git { command: "worktree add".into(), detail: error.to_string() })?;
        // A worktree folder removed by hand (or by retention) leaves an entry that blocks a new one.
        git(&local.dir, &["worktree", "prune"], None).await?;
        let path_text = path.to_string_lossy().into_owned();
        let branch_ref = format!("refs/heads/{}", request.branch);
        if git(&local.dir, &["rev-parse", "--verify", "--quiet", &branch_ref], None).await.is_ok() {
            git(&local.dir, &["worktree", "add", "-q", &path_text, request.branch], None).await?;
        } else {
            git(&local.dir, &["worktree", "add", "-q", "-b", request.branch, &path_text, &base_commit], None).await?;
        }
    }
    let target = if request.first_step { base_commit.as_str() } else { "HEAD" };
    git(&path, &["reset", "-q", "--hard", target], None).await?;
    // Untracked files go too; ignored ones (a venv, build output) stay.
    git(&path, &["clean", "-fdq"], None).await?;
    let start_commit = commit_of(&path, "HEAD").await.unwrap_or_else(|| base_commit.clone());
    Ok(Worktree { path, base_commit, start_commit, base_branch })
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diff {
    pub patch: String,
    pub files: Vec<String>,
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

/// The branch's committed change since the task's base commit (what `tasks.diff` shows), or
/// `None` when the step left the branch where it started (no commit: no new branch diff).
pub async fn branch_diff(worktree: &Path, base_commit: &str, start_commit: &str) -> Result<Option<String>, WorktreeError> {
    let head = git(worktree, &["rev-parse", "HEAD"], None).await?;
    if head.trim() == start_commit {
        return Ok(None);
    }
    git(worktree, &["diff", "--no-color", "--no-ext-diff", base_commit, "HEAD"], None).await.map(Some)
}

/// A fingerprint of the worktree's state beside its commit: the changed and untracked files
/// (`git status`) with each one's size and modification time. It changes when the step writes a
/// file. Taken without git's optional locks, so it never gets in the way of the step's own git.
pub async fn activity_stamp(worktree: &Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let args = ["status", "--porcelain=v1", "-z", "--untracked-files=all"];
    let listing = git_with_env(worktree, &args, None, &[("GIT_OPTIONAL_LOCKS", "0")]).await.ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    listing.hash(&mut hasher);
    for entry in listing.split('\0').filter(|entry| entry.len() > 3) {
        if let Ok(metadata) = std::fs::symlink_metadata(worktree.join(&entry[3..])) {
            metadata.len().hash(&mut hasher);
            metadata.modified().ok().hash(&mut hasher);
        }
    }
    Some(hasher.finish())
}
