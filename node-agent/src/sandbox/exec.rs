//! `node-agent sandbox-exec --policy FILE -- COMMAND [ARGS…]`: reads a step's policy (JSON,
//! written by the runner into the run directory), restricts itself to it, and becomes the
//! command (exec: same process, same process group, same pid the runner recorded). A policy
//! that cannot be enforced fails the step (exit 126) rather than running it unconfined.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::policy::Policy;

/// Exit status of a step whose sandbox could not be set up (as a shell's "cannot execute").
pub const CANNOT_SANDBOX: i32 = 126;

/// The arguments that come before `/bin/sh -c …` for a sandboxed step, with the files they
/// need written into `run_dir` (`sandbox.json`; on macOS `sandbox.sb`, the profile).
pub fn wrapper(agent_binary: &Path, run_dir: &Path, policy: &Policy, own: &[PathBuf]) -> std::io::Result<Vec<OsString>> {
    if cfg!(target_os = "macos") {
        let profile = run_dir.join("sandbox.sb");
        std::fs::write(&profile, super::seatbelt::profile(policy, own))?;
        return Ok(vec!["/usr/bin/sandbox-exec".into(), "-f".into(), profile.into_os_string()]);
    }
    let file = run_dir.join("sandbox.json");
    std::fs::write(&file, serde_json::to_vec_pretty(policy).map_err(std::io::Error::other)?)?;
    Ok(vec![agent_binary.as_os_str().to_owned(), "sandbox-exec".into(), "--policy".into(), file.into_os_string(), "--".into()])
}

/// `sandbox-exec`'s process: the exit status when it cannot become the command.
pub fn main(args: &[String]) -> i32 {
    let (ours, command) = match args.iter().position(|arg| arg == "--") {
        Some(split) => (&args[..split], &args[split + 1..]),
        None => (args, &[][..]),
    };
    let policy_file = match ours {
        [flag, file] if flag == "--policy" => PathBuf::from(file),
        _ => {
            eprintln!("usage: node-agent sandbox-exec --policy FILE -- COMMAND [ARGS…]");
            return 2;
        }
    };
    if command.is_empty() {
        eprintln!("sandbox-exec: no command after --");
        return 2;
    }
    let policy: Policy = match std::fs::read(&policy_file)
        .map_err(|error| error.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|error| error.to_string()))
    {
        Ok(policy) => policy,
        Err(error) => {
            eprintln!("sandbox: the policy {} cannot be read: {error}; the step does not run", policy_file.display());
            return CANNOT_SANDBOX;
        }
    };
    if let Err(error) = crate::platform::restrict_to_policy(&policy) {
        eprintln!("sandbox: {error}; the step does not run unconfined");
        return CANNOT_SANDBOX;
    }
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new(&command[0]).args(&command[1..]).exec();
    eprintln!("sandbox-exec: {}: {error}", command[0]);
    CANNOT_SANDBOX
}
