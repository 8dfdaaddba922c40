//! The host's copy of a task's repository: the repository itself when `repo` is a path; for a
//! git URL, one bare mirror clone per URL under `<state_dir>/mirrors/`, fetched before a task
//! starts on this host. The remote's branches land in `refs/remotes/origin/*`, so fetching
//! never touches the task branches (`baa/*`) that worktrees have checked out.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use shared::ids::{repo_location, RepoLocation};

use super::worktree::{git, WorktreeError};

#[derive(Debug, Clone, PartialEq)]
pub struct LocalRepo {
    /// Where git commands for the repository run.
    pub dir: PathBuf,
    /// A mirror of a URL (its branches are `origin/*`), not the user's own clone.
    pub mirrored: bool,
}

/// `<mirrors_dir>/<last path segment>-<12 hex of the URL's sha256>.git`: readable, and one
/// folder per URL.
pub fn mirror_path(mirrors_dir: &Path, url: &str) -> PathBuf {
    let digest = Sha256::digest(url.as_bytes());
    let hex: String = digest.iter().take(6).map(|byte| format!("{byte:02x}")).collect();
    let last = url.trim_end_matches('/').rsplit(['/', ':']).next().unwrap_or("repo").trim_end_matches(".git");
    let name: String = last.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).take(40).collect();
    let name = if name.is_empty() { "repo".to_string() } else { name };
    mirrors_dir.join(format!("{name}-{hex}.git"))
}

async fn fetch(dir: &Path) -> Result<(), WorktreeError> {
    git(dir, &["fetch", "-q", "--prune", "origin"], None).await?;
    // Where the remote's HEAD points (for `base_ref: HEAD`); a remote that will not say
    // leaves the last answer in place.
    let _ = git(dir, &["remote", "set-head", "origin", "--auto"], None).await;
    Ok(())
}

/// The host's copy of `repo`; a mirror is created on first use and fetched when `refresh`.
pub async fn local_repo(repo: &str, mirrors_dir: &Path, refresh: bool) -> Result<LocalRepo, WorktreeError> {
    match repo_location(repo) {
        Some(RepoLocation::Path) => {
            let dir = PathBuf::from(repo);
            if git(&dir, &["rev-parse", "--git-dir"], None).await.is_err() {
                return Err(WorktreeError::NotARepository(repo.to_string()));
            }
            Ok(LocalRepo { dir, mirrored: false })
        }
        Some(RepoLocation::Url) => {
            let dir = mirror_path(mirrors_dir, repo);
            if !dir.join("HEAD").exists() {
                create_mirror(repo, &dir).await?;
            } else if refresh {
                fetch(&dir).await?;
            }
            Ok(LocalRepo { dir, mirrored: true })
        }
        None => Err(WorktreeError::NotARepository(repo.to_string())),
    }
}

/// Made in a scratch folder and renamed into place, so a crash never leaves half a mirror
/// that later tasks would take for a whole one.
async fn create_mirror(url: &str, dir: &Path) -> Result<(), WorktreeError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let io_error = |error: std::io::Error| WorktreeError::Git { command: "clone".into(), detail: error.to_string() };
    std::fs::create_dir_all(parent).map_err(io_error)?;
    let scratch =
        parent.join(format!(".{}.{}.tmp", dir.file_name().and_then(|name| name.to_str()).unwrap_or("mirror"), std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let scratch_text = scratch.to_string_lossy().into_owned();
    git(parent, &["init", "-q", "--bare", &scratch_text], None).await?;
    let made = async {
        git(&scratch, &["remote", "add", "origin", url], None).await?;
        git(&scratch, &["config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"], None).await?;
        fetch(&scratch).await
    }
    .await;
    if let Err(error) = made {
        let _ = std::fs::remove_dir_all(&scratch);
        // An unreachable or missing remote is no repository this host can work in.
        return Err(match error {
            WorktreeError::Git { detail, .. } => WorktreeError::Git { command: format!("fetch {url}"), detail },
            other => other,
        });
    }
    std::fs::rename(&scratch, dir).map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_readable_folder_per_url() {
        let dir = Path::new("/state/mirrors");
        let a = mirror_path(dir, "https://github.com/me/app.git");
        assert!(a.to_string_lossy().starts_with("/state/mirrors/app-"), "{}", a.display());
        assert!(a.to_string_lossy().ends_with(".git"));
        assert_ne!(a, mirror_path(dir, "https://github.com/you/app.git"));
        assert_eq!(a, mirror_path(dir, "https://github.com/me/app.git"));
        assert!(mirror_path(dir, "git@host:team/tool").to_string_lossy().contains("/tool-"));
    }
}
