//! A step in the sandbox (SPEC §19): which steps run repository code, and the launcher, policy
//! and private temp directory of one. The runner's own work — the merge of a wave, the push and
//! the pull request of a delivery, every commit — stays outside.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use shared::status::StepKind;

use super::run_dir::RunDir;
use crate::sandbox::exec::wrapper;
use crate::sandbox::policy::{for_step, list_dir, Places, HOME_CLI_PLACES};

/// Setup, the coding agent, shell and acceptance commands run what the repository holds.
pub fn runs_repository_code(kind: StepKind) -> bool {
    matches!(kind, StepKind::Setup | StepKind::Agent | StepKind::Shell | StepKind::Test)
}

/// The worktree's own git directory and its repository's (`gitdir:` of `.git`, and its
/// `commondir`), where git writes for this worktree.
pub fn git_dirs(worktree: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
    let Ok(text) = std::fs::read_to_string(worktree.join(".git")) else {
        return (Some(worktree.join(".git")), None);
    };
    let Some(own) = text.trim().strip_prefix("gitdir:").map(|dir| worktree.join(dir.trim())) else { return (None, None) };
    let common = std::fs::read_to_string(own.join("commondir"))
        .ok()
        .map(|relative| own.join(relative.trim()))
        .and_then(|common| common.canonicalize().ok());
    (common, own.canonicalize().ok().or(Some(own)))
}

/// Landlock allows what exists when the rules are made: a coding CLI's home that it would
/// create on its first run (`~/.codex`, `~/.claude`, …) is made first, empty, so the CLI can
/// keep its sessions there.
fn prepare_cli_homes(base: &Places) {
    let homes = HOME_CLI_PLACES.iter().filter(|place| !place.ends_with(".json")).map(|place| base.home.join(place));
    for home in homes.chain(base.cli_homes.iter().cloned()) {
        let _ = std::fs::create_dir_all(home);
    }
}

/// The launcher of a sandboxed step, its policy written into the run directory; `TMPDIR` set to
/// the run's private `tmp/`.
pub fn wrap(
    base: &Places,
    agent_binary: &Path,
    worktree: &Path,
    dir: &RunDir,
    env: &mut Vec<(&'static str, String)>,
) -> std::io::Result<Vec<OsString>> {
    let tmp = dir.root.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    env.push(("TMPDIR", tmp.to_string_lossy().into_owned()));
    env.push((crate::sandbox::SANDBOXED_ENV_VAR, if cfg!(target_os = "macos") { "seatbelt" } else { "landlock" }.into()));
    prepare_cli_homes(base);
    let (git_common_dir, git_worktree_dir) = git_dirs(worktree);
    // The task's runs, not only this one: a coding agent's next round reads the session the
    // last one recorded beside them (`agent-session.json`).
    let task_runs = dir.root.parent().map_or_else(|| dir.root.clone(), Path::to_path_buf);
    let places = Places {
        worktree: worktree.to_path_buf(),
        run_dir: task_runs.clone(),
        git_common_dir,
        git_worktree_dir: git_worktree_dir.clone(),
        ..base.clone()
    };
    let policy = for_step(&places, &list_dir);
    let mut own = vec![worktree.to_path_buf(), task_runs];
    own.extend(git_worktree_dir);
    wrapper(agent_binary, &dir.root, &policy, &own)
}
