//! The runner's settings, from the agent's configuration.

use std::path::PathBuf;
use std::time::Duration;

use super::branch;
use super::machine::RunTiming;
use crate::config::AgentConfig;

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub worker_id: String,
    pub host: String,
    /// Steps this host runs at once; 0 turns the runner off.
    pub capacity: usize,
    pub step_heartbeat_interval: Duration,
    pub step_heartbeat_ttl_sec: i64,
    pub ship_interval: Duration,
    pub kill_grace: Duration,
    pub shutdown_grace: Duration,
    pub log_ship_limit_bytes: u64,
    pub agent_command: Option<String>,
    pub pr_command: Option<String>,
    pub git_author: branch::Author,
    pub worktree_retention: Duration,
    pub runs_retention: Duration,
    pub min_free_disk_bytes: u64,
    pub runs_dir: PathBuf,
    pub worktrees_dir: PathBuf,
    pub mirrors_dir: PathBuf,
    pub tmp_dir: PathBuf,
}

impl RunnerSettings {
    pub fn from_config(config: &AgentConfig) -> RunnerSettings {
        RunnerSettings {
            worker_id: config.node_id.clone(),
            host: config.host.clone(),
            capacity: config.runner.capacity,
            step_heartbeat_interval: config.runner.step_heartbeat_interval,
            // Four missed heartbeats, and never under the control plane's default minute.
            step_heartbeat_ttl_sec: (config.runner.step_heartbeat_interval.as_secs() as i64 * 4).max(60),
            ship_interval: Duration::from_secs(1),
            kill_grace: config.runner.kill_grace,
            shutdown_grace: config.runner.shutdown_grace,
            log_ship_limit_bytes: config.runner.log_ship_limit_bytes,
            agent_command: config.runner.agent_command.clone(),
            pr_command: config.runner.pr_command.clone(),
            git_author: branch::Author { name: config.runner.git_author_name.clone(), email: config.runner.git_author_email.clone() },
            worktree_retention: config.runner.worktree_retention,
            runs_retention: config.runner.runs_retention,
            min_free_disk_bytes: config.runner.min_free_disk_bytes,
            runs_dir: config.paths.runs.clone(),
            worktrees_dir: config.paths.worktrees.clone(),
            mirrors_dir: config.paths.state.join("mirrors"),
            tmp_dir: config.paths.tmp.clone(),
        }
    }

    pub fn run_timing(&self) -> RunTiming {
        RunTiming {
            heartbeat_interval: self.step_heartbeat_interval,
            ship_interval: self.ship_interval,
            kill_grace: self.kill_grace,
            log_ship_limit_bytes: self.log_ship_limit_bytes,
        }
    }

    /// The kinds of step this host can run: a coding-agent step only with a template.
    pub fn worker_kinds(&self) -> Vec<String> {
        let mut kinds = vec!["shell".to_string()];
        if self.agent_command.is_some() {
            kinds.push("codex".into());
        }
        kinds
    }
}
