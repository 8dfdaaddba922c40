//! The runner's settings, from the agent's configuration.

use std::path::PathBuf;
use std::time::Duration;

use super::branch;
use super::machine::RunTiming;
use crate::config::{AgentConfig, RunnerConfig};

/// The runner's options as configured, and what the runner derives from the agent's
/// configuration (its identity, its folders, the timings that follow from the options).
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub options: RunnerConfig,
    pub worker_id: String,
    pub host: String,
    pub step_heartbeat_ttl_sec: i64,
    pub ship_interval: Duration,
    pub git_author: branch::Author,
    pub runs_dir: PathBuf,
    pub worktrees_dir: PathBuf,
    pub mirrors_dir: PathBuf,
    pub tmp_dir: PathBuf,
    /// The preset's CLI as probed at startup (`--agent`), when the host drives one.
    pub agent_cli: Option<crate::agents::probe::AgentCli>,
    /// This binary, which an agent step of a preset runs as `agent-exec`, and a sandboxed step
    /// as `sandbox-exec`.
    pub agent_exec: PathBuf,
    /// The agent's places a step is kept from, when steps run sandboxed (SPEC §19: the startup
    /// proof passed); `None` runs them as the agent's user.
    pub sandbox: Option<crate::sandbox::policy::Places>,
    /// The sandbox as the startup proof found it, for the log, the status page and the sync.
    pub sandbox_line: String,
}

impl RunnerSettings {
    pub fn from_config(config: &AgentConfig) -> RunnerSettings {
        let options = config.runner.clone();
        RunnerSettings {
            worker_id: config.node_id.clone(),
            host: config.host.clone(),
            // Four missed heartbeats, and never under the control plane's default minute.
            step_heartbeat_ttl_sec: (options.step_heartbeat_interval.as_secs() as i64 * 4).max(60),
            ship_interval: Duration::from_secs(1),
            git_author: branch::Author { name: options.git_author_name.clone(), email: options.git_author_email.clone() },
            runs_dir: config.paths.runs.clone(),
            worktrees_dir: config.paths.worktrees.clone(),
            mirrors_dir: config.paths.state.join("mirrors"),
            tmp_dir: config.paths.tmp.clone(),
            agent_cli: None,
            agent_exec: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("node-agent")),
            sandbox: None,
            sandbox_line: "off".into(),
            options,
        }
    }

    /// The agent's places, as the sandbox keeps a step from them (its own are added per step).
    pub fn sandbox_places(config: &AgentConfig, lookup: impl Fn(&str) -> Option<String>) -> crate::sandbox::policy::Places {
        let home = PathBuf::from(lookup("HOME").unwrap_or_else(|| "/".into()));
        crate::sandbox::policy::Places {
            home,
            state_dir: config.paths.state.clone(),
            worktrees_dir: config.paths.worktrees.clone(),
            runs_dir: config.paths.runs.clone(),
            logs_dir: config.paths.logs.clone(),
            tmp_dir: config.paths.tmp.clone(),
            cli_homes: crate::sandbox::CLI_HOME_VARIABLES.iter().filter_map(|name| lookup(name)).map(PathBuf::from).collect(),
            extra_read: config.runner.sandbox.read.clone(),
            extra_write: config.runner.sandbox.write.clone(),
            ..Default::default()
        }
    }

    pub fn run_timing(&self) -> RunTiming {
        RunTiming {
            heartbeat_interval: self.options.step_heartbeat_interval,
            ship_interval: self.ship_interval,
            kill_grace: self.options.kill_grace,
            log_ship_limit_bytes: self.options.log_ship_limit_bytes,
        }
    }

    /// The kinds of step this host can run: a coding-agent step only with a template, or with
    /// a preset whose CLI answered at startup.
    pub fn worker_kinds(&self) -> Vec<String> {
        let mut kinds = vec!["shell".to_string()];
        if self.runs_agent_steps() {
            kinds.push("codex".into());
        }
        kinds
    }

    /// A template, or a preset whose CLI answered `--version` at startup.
    fn runs_agent_steps(&self) -> bool {
        self.options.agent_command.is_some() || (self.options.agent.is_some() && self.agent_cli.as_ref().is_some_and(|cli| cli.ready()))
    }

    /// The shell command of an agent step, as a template (SPEC §6): `--agent-command` as
    /// given, or for a preset this binary's `agent-exec`, which drives the CLI.
    pub fn agent_template(&self) -> Option<String> {
        if let Some(template) = &self.options.agent_command {
            return Some(template.clone());
        }
        let preset = self.options.agent.filter(|_| self.runs_agent_steps())?;
        let mut words = vec![
            super::command::shell_quote(&self.agent_exec.to_string_lossy()),
            "agent-exec".into(),
            "--preset".into(),
            preset.name().into(),
        ];
        if !self.options.agent_args.is_empty() {
            words.push("--".into());
            words.extend(self.options.agent_args.iter().map(|arg| super::command::shell_quote(arg)));
        }
        Some(format!("exec {}", words.join(" ")))
    }

    /// What the heartbeat says of the coding CLI: `codex: codex-cli 0.171.0`, or why it is missing.
    pub fn agent_cli_line(&self) -> Option<String> {
        if self.options.agent_command.is_some() {
            return Some("custom command (--agent-command)".into());
        }
        let cli = self.agent_cli.as_ref()?;
        Some(match &cli.version {
            Some(version) => format!("{}: {version}", cli.agent),
            None => format!("{}: not available", cli.agent),
        })
    }
}
