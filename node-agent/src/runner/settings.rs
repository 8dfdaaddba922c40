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
            options,
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

    /// The kinds of step this host can run: a coding-agent step only with a template.
    pub fn worker_kinds(&self) -> Vec<String> {
        let mut kinds = vec!["shell".to_string()];
        if self.options.agent_command.is_some() {
            kinds.push("codex".into());
        }
        kinds
    }
}
