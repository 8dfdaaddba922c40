//! The sandbox around repository code (SPEC §19): every step that runs what a repository
//! holds — the coding agent, shell and acceptance commands, `.baa/setup` — runs where it can
//! write its worktree and run directory and cannot reach the agent's tokens, database, other
//! tasks, or a person's secrets. The runner's own work (worktree, commit, push) stays outside.
//!
//! - [`policy`]: what a step may read and write, a pure function of where things are.
//! - `crate::platform::restrict_to_policy`: the policy enforced by Landlock (Linux) in
//!   `node-agent sandbox-exec`.
//! - [`seatbelt`]: the policy as a macOS `sandbox-exec` profile.
//! - [`exec`]: `node-agent sandbox-exec --policy FILE -- COMMAND…`, and how a step is wrapped.
//! - [`refusal`]: the refused path a failed step's output names, for its error.
//! - [`proof`]: the startup proof: a probe step under the sandbox must write its worktree and
//!   fail to read the agent's state and to write outside.

pub mod exec;
pub mod policy;
pub mod proof;
pub mod refusal;
pub mod seatbelt;

use std::path::PathBuf;

/// `--sandbox`: `auto` sandboxes steps where the startup proof passed and warns loudly where it
/// did not; `required` runs no step without a proven sandbox; `off` runs steps as the agent's
/// user. `auto` is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Required,
    Off,
}

impl Mode {
    pub fn parse(text: &str) -> Option<Mode> {
        match text.trim() {
            "auto" => Some(Mode::Auto),
            "required" => Some(Mode::Required),
            "off" => Some(Mode::Off),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Required => "required",
            Mode::Off => "off",
        }
    }
}

/// The sandbox as configured: its mode and the extra places (`--sandbox-read`, `--sandbox-write`).
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxConfig {
    pub mode: Mode,
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
}

/// Set in a sandboxed step's environment to the sandbox's engine (`landlock`, `seatbelt`): a
/// coding CLI's preset turns its own sandbox off under ours.
pub const SANDBOXED_ENV_VAR: &str = "BAA_SANDBOXED";

/// The environment variables naming where the coding CLIs keep their homes.
pub const CLI_HOME_VARIABLES: [&str; 4] = ["CODEX_HOME", "CLAUDE_CONFIG_DIR", "GEMINI_CLI_HOME", "XDG_CONFIG_HOME"];
