//! How `node-agent config` shows the resolved configuration: JSON, or aligned `key: value`
//! lines followed by the warnings. A token appears only as whether it is set.

use serde_json::json;

use crate::config::AgentConfig;

impl AgentConfig {
    /// The configuration as JSON; the token appears only as whether it is set.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "node_id": self.node_id,
            "host": self.host,
            "role": self.role,
            "control_api_base": self.control_api_base,
            "embedded": self.embedded.map(|address| address.to_string()),
            "local_api": self.local_api,
            "token_set": self.shared_token.is_some(),
            "priority": self.priority,
            "version": self.version,
            "preferred": self.preferred,
            "heartbeat_interval_ms": self.heartbeat_interval.as_millis() as u64,
            "lease_renew_interval_ms": self.lease_renew_interval.as_millis() as u64,
            "lease_ttl_sec": self.lease_ttl_sec,
            "renew_failure_threshold": self.renew_failure_threshold,
            "runner": {
                "capacity": self.runner.capacity,
                "step_heartbeat_interval_ms": self.runner.step_heartbeat_interval.as_millis() as u64,
                "kill_grace_ms": self.runner.kill_grace.as_millis() as u64,
                "shutdown_grace_ms": self.runner.shutdown_grace.as_millis() as u64,
                "log_ship_limit_bytes": self.runner.log_ship_limit_bytes,
                "agent": self.runner.agent.map(|preset| preset.name()),
                "agent_args": self.runner.agent_args,
                "agent_command": self.runner.agent_command,
                "pr_command": self.runner.pr_command,
                "git_author": format!("{} <{}>", self.runner.git_author_name, self.runner.git_author_email),
                "worktree_retention_sec": self.runner.worktree_retention.as_secs(),
                "runs_retention_sec": self.runner.runs_retention.as_secs(),
                "min_free_disk_bytes": self.runner.min_free_disk_bytes,
                "sandbox": self.runner.sandbox.mode.as_str(),
                "sandbox_read": self.runner.sandbox.read,
                "sandbox_write": self.runner.sandbox.write,
            },
            "paths": self.paths,
            "warnings": self.warnings,
        })
    }

    /// The configuration as aligned `key: value` lines, then the warnings.
    pub fn to_text(&self) -> String {
        let unset = || "(not set)".to_string();
        let rows = [
            ("node_id", self.node_id.clone()),
            ("host", self.host.clone()),
            ("role", self.role.to_string()),
            ("control_api_base", self.control_api_base.clone().unwrap_or_else(unset)),
            ("embedded", self.embedded.map(|address| format!("serving the control plane on {address}")).unwrap_or_else(|| "no".into())),
            ("local_api", self.local_api.clone().unwrap_or_else(|| "off".into())),
            ("token", if self.shared_token.is_some() { "set".into() } else { unset() }),
            ("priority", self.priority.to_string()),
            ("version", self.version.clone()),
            ("preferred", self.preferred.to_string()),
            ("heartbeat_interval_ms", self.heartbeat_interval.as_millis().to_string()),
            ("lease_renew_interval_ms", self.lease_renew_interval.as_millis().to_string()),
            ("lease_ttl_sec", self.lease_ttl_sec.to_string()),
            ("renew_failure_threshold", self.renew_failure_threshold.to_string()),
            ("capacity", self.runner.capacity.to_string()),
            ("step_heartbeat_interval_ms", self.runner.step_heartbeat_interval.as_millis().to_string()),
            ("kill_grace_ms", self.runner.kill_grace.as_millis().to_string()),
            ("shutdown_grace_ms", self.runner.shutdown_grace.as_millis().to_string()),
            ("log_ship_limit_bytes", self.runner.log_ship_limit_bytes.to_string()),
            ("agent", self.runner.agent.map(|preset| preset.name().to_string()).unwrap_or_else(unset)),
            ("agent_args", if self.runner.agent_args.is_empty() { unset() } else { self.runner.agent_args.join(" ") }),
            ("agent_command", self.runner.agent_command.clone().unwrap_or_else(unset)),
            ("pr_command", self.runner.pr_command.clone().unwrap_or_else(unset)),
            ("git_author", format!("{} <{}>", self.runner.git_author_name, self.runner.git_author_email)),
            ("worktree_retention_sec", self.runner.worktree_retention.as_secs().to_string()),
            ("runs_retention_sec", self.runner.runs_retention.as_secs().to_string()),
            ("min_free_disk_bytes", self.runner.min_free_disk_bytes.to_string()),
            ("sandbox", self.runner.sandbox.mode.as_str().to_string()),
            ("runtime_root", self.paths.root.display().to_string()),
            ("runs_dir", self.paths.runs.display().to_string()),
            ("worktrees_dir", self.paths.worktrees.display().to_string()),
            ("logs_dir", self.paths.logs.display().to_string()),
            ("tmp_dir", self.paths.tmp.display().to_string()),
            ("state_dir", self.paths.state.display().to_string()),
        ];
        let mut text: String = rows.iter().map(|(key, value)| format!("{key:<24} {value}\n")).collect();
        for warning in &self.warnings {
            text.push_str(&format!("warning: {warning}\n"));
        }
        text
    }
}
