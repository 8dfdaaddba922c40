//! What a step that runs repository code may reach (SPEC §19), as a pure function of where
//! things are: read (and execute) the system, toolchains and the CLI homes; read and write its
//! own worktree, its run directory (with its private temp directory) and the CLI homes; nothing
//! of the agent's state (tokens, database, mirrors but its own repository's), other tasks'
//! worktrees and run directories, the agent's logs, or a person's secrets (`~/.ssh`, …).
//!
//! Landlock only allows: a denied place inside an allowed one is carved out by allowing the
//! allowed one's children instead, down to the denied place ([`carve`]). The macOS profile
//! says the same with deny rules after allow rules.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The places of one step, and of the agent around it.
#[derive(Debug, Clone, Default)]
pub struct Places {
    pub home: PathBuf,
    /// The agent's own directories: never reachable from a step.
    pub state_dir: PathBuf,
    pub worktrees_dir: PathBuf,
    pub runs_dir: PathBuf,
    pub logs_dir: PathBuf,
    pub tmp_dir: PathBuf,
    /// The step's own.
    pub worktree: PathBuf,
    pub run_dir: PathBuf,
    /// The repository the worktree belongs to (its git common directory), and the worktree's
    /// own git directory in it.
    pub git_common_dir: Option<PathBuf>,
    pub git_worktree_dir: Option<PathBuf>,
    /// Where the coding CLIs keep their sessions (`CODEX_HOME`, …), beside the usual ones.
    pub cli_homes: Vec<PathBuf>,
    /// `--sandbox-read` and `--sandbox-write`.
    pub extra_read: Vec<PathBuf>,
    pub extra_write: Vec<PathBuf>,
}

/// The rules, as paths beneath which access is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Read and execute.
    pub read: Vec<PathBuf>,
    /// Read, write and execute.
    pub write: Vec<PathBuf>,
    /// What the rules keep out (the macOS profile denies these after its allows).
    pub deny: Vec<PathBuf>,
}

/// A person's secrets under `$HOME`, never reachable from a step.
pub const HOME_SECRETS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".config/gh",
    ".config/gcloud",
    ".config/baa-conductor",
    "Library/Keychains",
    "Library/LaunchAgents",
];

/// The coding CLIs' homes under `$HOME` (sessions, logins, caches): read and written.
pub const HOME_CLI_PLACES: &[&str] =
    &[".codex", ".claude", ".claude.json", ".gemini", ".aider", ".cache", ".npm", ".config", ".local/share"];

/// Scratch places every tool expects to write.
pub const SYSTEM_WRITABLE: &[&str] = &["/dev", "/tmp", "/var/tmp", "/private/tmp", "/private/var/folders"];

/// The rules of one step.
pub fn for_step(places: &Places, list_dir: &dyn Fn(&Path) -> Vec<PathBuf>) -> Policy {
    let mut deny = vec![
        places.state_dir.clone(),
        places.worktrees_dir.clone(),
        places.runs_dir.clone(),
        places.logs_dir.clone(),
        places.tmp_dir.clone(),
    ];
    deny.extend(HOME_SECRETS.iter().map(|secret| places.home.join(secret)));
    let own = [places.worktree.clone(), places.run_dir.clone()];
    let mut read = carve(Path::new("/"), &deny, list_dir);
    let mut write: Vec<PathBuf> = own.to_vec();
    // `$HOME` itself is not writable (its CLI places are), even where it lies in a writable
    // place such as /tmp.
    let mut deny_writing = deny.clone();
    deny_writing.push(places.home.clone());
    for root in SYSTEM_WRITABLE.iter().map(PathBuf::from).chain(places.extra_write.iter().cloned()) {
        write.extend(carve(&root, &deny_writing, list_dir));
    }
    for root in HOME_CLI_PLACES.iter().map(|place| places.home.join(place)).chain(places.cli_homes.iter().cloned()) {
        write.extend(carve(&root, &deny, list_dir));
    }
    // Its repository: read (objects, refs), and write where git writes for this worktree.
    if let Some(common) = &places.git_common_dir {
        read.push(common.clone());
        write.push(common.join("objects"));
    }
    if let Some(worktree_git) = &places.git_worktree_dir {
        write.push(worktree_git.clone());
    }
    read.extend(places.extra_read.iter().cloned());
    read.sort();
    read.dedup();
    write.sort();
    write.dedup();
    Policy { read, write, deny }
}

/// `root` allowed but for the `deny` places inside it: `[root]` when none is, nothing when
/// `root` is one, else its children carved the same way (a file of `root` stays allowed).
pub fn carve(root: &Path, deny: &[PathBuf], list_dir: &dyn Fn(&Path) -> Vec<PathBuf>) -> Vec<PathBuf> {
    if deny.iter().any(|denied| root.starts_with(denied)) {
        return Vec::new();
    }
    if !deny.iter().any(|denied| denied.starts_with(root)) {
        return vec![root.to_path_buf()];
    }
    let mut children = list_dir(root);
    children.sort();
    children.iter().flat_map(|child| carve(child, deny, list_dir)).collect()
}

/// The children of a directory on this machine (none when it cannot be read).
pub fn list_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|entries| entries.flatten().map(|entry| entry.path()).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tree(paths: &[&str]) -> impl Fn(&Path) -> Vec<PathBuf> {
        let mut children: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
        for path in paths {
            let path = PathBuf::from(path);
            for ancestor in path.ancestors().collect::<Vec<_>>().windows(2) {
                let list = children.entry(ancestor[1].to_path_buf()).or_default();
                if !list.contains(&ancestor[0].to_path_buf()) {
                    list.push(ancestor[0].to_path_buf());
                }
            }
        }
        move |dir: &Path| children.get(dir).cloned().unwrap_or_default()
    }

    #[test]
    fn a_denied_place_is_carved_out_of_its_parents() {
        let list = tree(&["/usr/bin", "/home/ann/.ssh/id_ed25519", "/home/ann/code/x", "/home/ann/.bashrc", "/home/bob/y"]);
        let deny = vec![PathBuf::from("/home/ann/.ssh")];
        let carved = carve(Path::new("/"), &deny, &list);
        let shown: Vec<&str> = carved.iter().map(|path| path.to_str().unwrap()).collect();
        assert_eq!(shown, ["/home/ann/.bashrc", "/home/ann/code", "/home/bob", "/usr"]);
        assert_eq!(carve(Path::new("/home/ann/.ssh/keys"), &deny, &list), Vec::<PathBuf>::new());
    }

    #[test]
    fn a_step_reaches_its_own_places_and_not_the_agents() {
        let list = tree(&[
            "/usr/bin/sh",
            "/home/ann/.ssh/id_ed25519",
            "/home/ann/.codex/sessions",
            "/home/ann/.local/state/baa/state/embedded-tokens.env",
            "/home/ann/.local/state/baa/worktrees/t1/src",
            "/home/ann/.local/state/baa/worktrees/t2/src",
            "/home/ann/.local/state/baa/runs/t1/r1",
            "/home/ann/.local/state/baa/runs/t2/r9",
            "/home/ann/.local/state/baa/logs/agent.log",
            "/home/ann/.local/state/baa/tmp/x",
            "/home/ann/code/repo/.git/worktrees/t1",
            "/tmp/scratch",
        ]);
        let root = PathBuf::from("/home/ann/.local/state/baa");
        let places = Places {
            home: "/home/ann".into(),
            state_dir: root.join("state"),
            worktrees_dir: root.join("worktrees"),
            runs_dir: root.join("runs"),
            logs_dir: root.join("logs"),
            tmp_dir: root.join("tmp"),
            worktree: root.join("worktrees/t1"),
            run_dir: root.join("runs/t1/r1"),
            git_common_dir: Some("/home/ann/code/repo/.git".into()),
            git_worktree_dir: Some("/home/ann/code/repo/.git/worktrees/t1".into()),
            ..Places::default()
        };
        let policy = for_step(&places, &list);
        let reads = |path: &str| policy.read.iter().chain(&policy.write).any(|allowed| Path::new(path).starts_with(allowed));
        let writes = |path: &str| policy.write.iter().any(|allowed| Path::new(path).starts_with(allowed));
        for allowed in ["/usr/bin/sh", "/home/ann/code/repo/src/lib.rs", "/home/ann/.codex/sessions/s.jsonl"] {
            assert!(reads(allowed), "{allowed} readable: {policy:#?}");
        }
        for written in [
            "/home/ann/.local/state/baa/worktrees/t1/src/a.rs",
            "/home/ann/.local/state/baa/runs/t1/r1/usage.json",
            "/tmp/scratch/x",
            "/home/ann/.codex/sessions/s",
            "/home/ann/code/repo/.git/objects/ab/cd",
            "/home/ann/code/repo/.git/worktrees/t1/index",
        ] {
            assert!(writes(written), "{written} writable: {policy:#?}");
        }
        for kept in [
            "/home/ann/.ssh/id_ed25519",
            "/home/ann/.local/state/baa/state/embedded-tokens.env",
            "/home/ann/.local/state/baa/worktrees/t2/src",
            "/home/ann/.local/state/baa/runs/t2/r9",
            "/home/ann/.local/state/baa/logs/agent.log",
        ] {
            assert!(!reads(kept), "{kept} out of reach: {policy:#?}");
        }
        for kept in ["/home/ann/x", "/home/ann/code/repo/src/lib.rs", "/usr/bin/sh", "/home/ann/code/repo/.git/refs/heads/main"] {
            assert!(!writes(kept), "{kept} not writable: {policy:#?}");
        }
    }
}
