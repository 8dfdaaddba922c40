//! Housekeeping on a host (SPEC §11): a task's worktree is removed `worktree_retention` after
//! the task's last run here (the branch stays, and a later step makes the worktree again from
//! it); a finished run's directory after `runs_retention`; below `min_free_disk` the runner
//! stops claiming. The rules are pure; [`sweep`] does the I/O (free disk is measured by
//! [`crate::platform::free_disk_bytes`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::run_dir::{read_json, RunState};
use super::worktree::git;
use crate::log::log;

/// One task's worktree on this host, as the rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorktreeFacts {
    pub task_id: String,
    pub path: PathBuf,
    /// When a run of the task last changed here (or the worktree itself, without runs).
    pub last_activity_ms: i64,
    /// A run of the task is in flight on this host.
    pub active: bool,
}

/// One run directory, as the rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDirFacts {
    pub path: PathBuf,
    pub terminal: bool,
    pub updated_at_ms: i64,
}

pub fn worktrees_to_remove(worktrees: &[WorktreeFacts], now_ms: i64, retention: Duration) -> Vec<PathBuf> {
    let retention_ms = retention.as_millis() as i64;
    worktrees
        .iter()
        .filter(|facts| !facts.active && now_ms - facts.last_activity_ms >= retention_ms)
        .map(|facts| facts.path.clone())
        .collect()
}

pub fn run_dirs_to_remove(runs: &[RunDirFacts], now_ms: i64, retention: Duration) -> Vec<PathBuf> {
    let retention_ms = retention.as_millis() as i64;
    runs.iter().filter(|facts| facts.terminal && now_ms - facts.updated_at_ms >= retention_ms).map(|facts| facts.path.clone()).collect()
}

/// Whether there is room to take more work.
pub fn disk_allows_claims(free_bytes: Option<u64>, min_free_bytes: u64) -> bool {
    // A disk that cannot be measured is no reason to stop working.
    free_bytes.is_none_or(|free| free >= min_free_bytes)
}

/// How often to sweep: twice per retention period, between a second and ten minutes.
pub fn sweep_interval(worktree_retention: Duration, runs_retention: Duration) -> Duration {
    (worktree_retention.min(runs_retention) / 2).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

fn modified_ms(path: &Path) -> i64 {
    std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

fn subfolders(path: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(path) else { return Vec::new() };
    let mut folders: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).filter(|path| path.is_dir()).collect();
    folders.sort();
    folders
}

fn run_facts(runs_dir: &Path) -> Vec<(String, RunDirFacts)> {
    let mut facts = Vec::new();
    for task in subfolders(runs_dir) {
        let task_id = task.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        for run in subfolders(&task) {
            let (terminal, updated_at_ms) = match read_json::<RunState>(&run.join("state.json")) {
                Ok(state) => (state.status.is_terminal(), state.updated_at_ms),
                Err(_) => (false, modified_ms(&run)),
            };
            facts.push((task_id.clone(), RunDirFacts { path: run, terminal, updated_at_ms }));
        }
    }
    facts
}

/// What one sweep removed.
#[derive(Debug, Default, PartialEq)]
pub struct Swept {
    pub worktrees: Vec<PathBuf>,
    pub run_dirs: Vec<PathBuf>,
}

/// Applies both retention rules once. `active_tasks` are the tasks with a run in flight here.
pub async fn sweep(
    worktrees_dir: &Path,
    runs_dir: &Path,
    active_tasks: &BTreeSet<String>,
    now_ms: i64,
    worktree_retention: Duration,
    runs_retention: Duration,
) -> Swept {
    let runs = run_facts(runs_dir);
    let worktrees: Vec<WorktreeFacts> = subfolders(worktrees_dir)
        .into_iter()
        .map(|path| {
            let task_id = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            let last_run = runs.iter().filter(|(task, _)| *task == task_id).map(|(_, facts)| facts.updated_at_ms).max();
            let active = active_tasks.contains(&task_id) || runs.iter().any(|(task, facts)| *task == task_id && !facts.terminal);
            WorktreeFacts { last_activity_ms: last_run.unwrap_or_else(|| modified_ms(&path)), task_id, path, active }
        })
        .collect();
    let mut swept = Swept::default();
    for path in worktrees_to_remove(&worktrees, now_ms, worktree_retention) {
        match remove_worktree(&path).await {
            Ok(()) => swept.worktrees.push(path),
            Err(error) => log!("housekeeping: could not remove worktree {}: {error}", path.display()),
        }
    }
    let run_dirs: Vec<RunDirFacts> = runs.into_iter().map(|(_, facts)| facts).collect();
    for path in run_dirs_to_remove(&run_dirs, now_ms, runs_retention) {
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                // The task's folder goes with its last run.
                if let Some(task) = path.parent() {
                    let _ = std::fs::remove_dir(task);
                }
                swept.run_dirs.push(path);
            }
            Err(error) => log!("housekeeping: could not remove run directory {}: {error}", path.display()),
        }
    }
    swept
}

/// `git worktree remove` from the repository the worktree belongs to; the branch stays.
async fn remove_worktree(path: &Path) -> Result<(), String> {
    let common = git(path, &["rev-parse", "--path-format=absolute", "--git-common-dir"], None).await.map_err(|error| error.to_string())?;
    let common = PathBuf::from(common.trim());
    let path_text = path.to_string_lossy().into_owned();
    if git(&common, &["worktree", "remove", "--force", &path_text], None).await.is_err() {
        std::fs::remove_dir_all(path).map_err(|error| error.to_string())?;
        let _ = git(&common, &["worktree", "prune"], None).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_idle_worktrees_go_and_busy_or_recent_ones_stay() {
        let facts = |task: &str, last: i64, active: bool| WorktreeFacts {
            task_id: task.into(),
            path: PathBuf::from(task),
            last_activity_ms: last,
            active,
        };
        let day = 86_400_000;
        let worktrees = [facts("old", 0, false), facts("old-busy", 0, true), facts("recent", 6 * day, false)];
        assert_eq!(worktrees_to_remove(&worktrees, 7 * day, Duration::from_secs(7 * 86_400)), [PathBuf::from("old")]);
    }

    #[test]
    fn only_finished_old_runs_go() {
        let facts = |name: &str, terminal: bool, updated: i64| RunDirFacts { path: PathBuf::from(name), terminal, updated_at_ms: updated };
        let runs = [facts("done-old", true, 0), facts("running-old", false, 0), facts("done-new", true, 9_000)];
        assert_eq!(run_dirs_to_remove(&runs, 10_000, Duration::from_secs(5)), [PathBuf::from("done-old")]);
    }

    #[test]
    fn the_disk_guard_and_the_pace() {
        assert!(disk_allows_claims(Some(6_000_000_000), 5_000_000_000));
        assert!(!disk_allows_claims(Some(4_000_000_000), 5_000_000_000));
        assert!(disk_allows_claims(None, u64::MAX));
        assert_eq!(sweep_interval(Duration::from_secs(7 * 86_400), Duration::from_secs(30 * 86_400)), Duration::from_secs(600));
        assert_eq!(sweep_interval(Duration::from_secs(1), Duration::from_secs(30)), Duration::from_secs(1));
    }
}
