//! A step's process: started in its own process group, writing its output straight into the
//! run directory, its exit status recorded by a wrapper shell so that an agent that was not
//! its parent (one restarted after a crash) still learns how it ended.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::process::Stdio;

use shared::auth::{Role, NODE_TOKEN_SECRET_ENV_VAR, SHARED_TOKEN_ENV_VAR};

use super::ladder::Signal;

/// `$1` is the step's shell command, `$2` the exit-status file. The status is written to a
/// temporary name and renamed, so a reader never sees half of it. When the group is signalled
/// this shell dies too and writes nothing: the runner then knows from its own stop request.
const WRAPPER: &str = r#"sh -c "$1"; status=$?; printf '%s\n' "$status" > "$2.tmp" && mv -f "$2.tmp" "$2"; exit "$status""#;

pub struct StepCommand<'a> {
    /// What runs the wrapper shell: nothing (it runs as the agent's user), or the sandbox's
    /// launcher and its arguments (`node-agent sandbox-exec --policy … --`, `sandbox-exec -f …`).
    pub wrapper: Vec<std::ffi::OsString>,
    pub shell_command: &'a str,
    pub worktree: &'a Path,
    pub stdout: &'a Path,
    pub stderr: &'a Path,
    pub exit_status: &'a Path,
    pub env: Vec<(&'static str, String)>,
}

/// Starts the step. Output files are opened for appending and handed to the child: the agent
/// holds no pipe, so the child neither blocks on nor dies with the agent.
pub fn spawn(step: &StepCommand<'_>) -> io::Result<tokio::process::Child> {
    let stdout = OpenOptions::new().create(true).append(true).open(step.stdout)?;
    let stderr = OpenOptions::new().create(true).append(true).open(step.stderr)?;
    let mut command = match step.wrapper.split_first() {
        None => tokio::process::Command::new("/bin/sh"),
        Some((launcher, arguments)) => {
            let mut command = tokio::process::Command::new(launcher);
            command.args(arguments).arg("/bin/sh");
            command
        }
    };
    command
        .arg("-c")
        .arg(WRAPPER)
        .arg("baa-step")
        .arg(step.shell_command)
        .arg(step.exit_status)
        .current_dir(step.worktree)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    // The agent's credentials are not the step's business.
    for name in Role::ALL.map(Role::token_env_var).into_iter().chain([SHARED_TOKEN_ENV_VAR, NODE_TOKEN_SECRET_ENV_VAR]) {
        command.env_remove(name);
    }
    for (name, value) in &step.env {
        command.env(name, value);
    }
    command.spawn()
}

/// Sends `signal` to every process of the group; false when the group no longer exists.
pub fn signal_group(pgid: i32, signal: Signal) -> bool {
    let number = match signal {
        Signal::Terminate => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is shared.
    unsafe { libc::kill(-pgid, number) == 0 }
}

/// Whether any process of the group is left.
pub fn group_exists(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let result = unsafe { libc::kill(-pgid, 0) };
    result == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether `pid` is a live process (a zombie waiting to be reaped by someone else is not).
pub fn is_alive(pid: i32) -> bool {
    if pid <= 1 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    exists && !crate::platform::is_zombie(pid)
}
