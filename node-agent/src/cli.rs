//! Raw command-line arguments with their environment fallbacks, exactly as typed. Nothing is
//! validated here: [`crate::config`] turns them into one validated configuration.
//!
//! Each option is defined once, by its `#[arg]` attribute: its flag, its environment variable
//! and its default. The configuration's errors and the documentation's table of options read
//! them back through [`options`] (a test holds `docs/node-agent.md` to them).

use std::sync::OnceLock;

use clap::{CommandFactory, Parser};

#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "node-agent",
    about = "baa-conductor node agent: registers this host, competes for the leader lease, schedules while leading",
    version,
    disable_help_subcommand = true,
    allow_negative_numbers = true
)]
pub struct RawArgs {
    /// What to do: start (run the agent), config (print the resolved configuration),
    /// checklist (print the startup checklist), help; `node-agent tasks …` talks to the control
    /// plane for people (see `node-agent tasks --help`); agent-exec is the process of an agent
    /// step on a host with --agent (the runner starts it).
    #[arg(value_parser = ["start", "config", "checklist", "help", "agent-exec", "sandbox-exec"])]
    pub command: Option<String>,

    /// This node's id [default: <host>-main for a primary, <host>-standby for a standby]
    #[arg(long, env = "BAA_NODE_ID")]
    pub node_id: Option<String>,
    /// This host's name [default: localhost]
    #[arg(long, env = "BAA_CONDUCTOR_HOST")]
    pub host: Option<String>,
    /// primary or standby [default: primary]
    #[arg(long, env = "BAA_CONDUCTOR_ROLE")]
    pub role: Option<String>,
    /// Base URL of the Control API, e.g. https://control.example.workers.dev
    #[arg(long, env = "BAA_CONTROL_API_BASE")]
    pub control_api_base: Option<String>,
    /// Run the control plane in this process, on SQLite in the state directory
    #[arg(long)]
    pub embedded: bool,
    /// With --embedded: where the control plane listens
    #[arg(long, env = "BAA_CONTROL_LISTEN", default_value = crate::config::DEFAULT_CONTROL_LISTEN)]
    pub control_listen: Option<String>,
    /// Status server address, host:port or http://host:port; "off" disables it
    #[arg(long, env = "BAA_CONDUCTOR_LOCAL_API", default_value = crate::config::DEFAULT_LOCAL_API)]
    pub local_api: Option<String>,
    /// Service token for the Control API (a shared or node-bound token)
    #[arg(long, env = "BAA_SHARED_TOKEN", hide_env_values = true)]
    pub shared_token: Option<String>,
    /// Lease priority [default: 100 for a primary, 50 for a standby]
    #[arg(long, env = "BAA_CONDUCTOR_PRIORITY")]
    pub priority: Option<String>,
    /// Version string this agent reports
    #[arg(long = "agent-version", env = "BAA_CONDUCTOR_VERSION")]
    pub agent_version: Option<String>,
    /// Ask for the lease back from a standby (BAA_CONDUCTOR_PREFERRED=true|false) [default: true for a primary]
    #[arg(long, overrides_with = "no_preferred")]
    pub preferred: bool,
    /// Never ask for the lease back
    #[arg(long, overrides_with = "preferred")]
    pub no_preferred: bool,
    /// The longest between two syncs with the control plane, whatever pace it asks for, in milliseconds
    #[arg(long, env = "BAA_CONDUCTOR_HEARTBEAT_INTERVAL_MS", default_value = "30000")]
    pub heartbeat_interval_ms: Option<String>,
    /// How soon to sync again after a sync failed (the lease retry pace), in milliseconds
    #[arg(long, env = "BAA_CONDUCTOR_LEASE_RENEW_INTERVAL_MS", default_value = "5000")]
    pub lease_renew_interval_ms: Option<String>,
    /// Lease time to live in seconds
    #[arg(long, env = "BAA_CONDUCTOR_LEASE_TTL_SEC", default_value = "30")]
    pub lease_ttl_sec: Option<String>,
    /// Consecutive renewal failures before the agent reports degraded
    #[arg(long, env = "BAA_CONDUCTOR_RENEW_FAILURE_THRESHOLD", default_value = "2")]
    pub renew_failure_threshold: Option<String>,
    /// Steps this host runs at once; 0 turns the runner off
    #[arg(long, env = "BAA_RUNNER_CAPACITY", default_value = "1")]
    pub capacity: Option<String>,
    /// How often a run's progress is refreshed, in milliseconds
    #[arg(long, env = "BAA_RUNNER_HEARTBEAT_INTERVAL_MS", default_value = "5000")]
    pub step_heartbeat_interval_ms: Option<String>,
    /// Grace between SIGTERM and SIGKILL when a step times out or is canceled, in milliseconds
    #[arg(long, env = "BAA_RUNNER_KILL_GRACE_MS", default_value = "10000")]
    pub kill_grace_ms: Option<String>,
    /// On SIGTERM, how long running steps may take to finish before the agent exits and leaves them to the next agent, in milliseconds
    #[arg(long, env = "BAA_RUNNER_SHUTDOWN_GRACE_MS", default_value = "10000")]
    pub shutdown_grace_ms: Option<String>,
    /// Bytes of stdout and stderr shipped per run; the rest stays in the run directory
    #[arg(long, env = "BAA_RUNNER_LOG_SHIP_LIMIT_BYTES", default_value = "16777216")]
    pub log_ship_limit_bytes: Option<String>,
    /// The coding CLI this host drives for agent steps: codex, claude, gemini or aider (the runner builds the command, writes the prompt, reads the CLI's events, resumes its session)
    #[arg(long, env = "BAA_AGENT")]
    pub agent: Option<String>,
    /// Extra flags for the --agent CLI, split like shell words, e.g. "-m gpt-5" or "--model opus"
    #[arg(long, env = "BAA_AGENT_ARGS", allow_hyphen_values = true)]
    pub agent_args: Option<String>,
    /// Any other coding-agent command, as a template for codex steps, run with sh -c in the worktree; variables {goal_file} {report_file} {feedback_file} {worktree} {task_id} {step_id} {run_id} {run_dir}
    #[arg(long, env = "BAA_AGENT_COMMAND")]
    pub agent_command: Option<String>,
    /// The account the coding agent runs under: a usage limit parks it for every host that uses it [default: the host]
    #[arg(long, env = "BAA_AGENT_ACCOUNT")]
    pub agent_account: Option<String>,
    /// More phrases (separated by |) that mark a usage-limit message in the agent's output, beside the built-in ones
    #[arg(long, env = "BAA_AGENT_LIMIT_PATTERNS")]
    pub agent_limit_patterns: Option<String>,
    /// While this host leads: POST every event of the feed, in order, to this URL (JSON with a one-line "text", as chat webhooks expect)
    #[arg(long, env = "BAA_NOTIFY_WEBHOOK")]
    pub notify_webhook: Option<String>,
    /// While this host leads: also raise a desktop notification for each event (macOS), true or false [default: false]
    #[arg(long, env = "BAA_NOTIFY_DESKTOP")]
    pub notify_desktop: Option<String>,
    /// The pull-request command template for constraints.deliver "pr", run after the push; variables {branch} {base_branch} {title} {report_file} {remote} {task_id} {worktree}; the first URL it prints is the task's pr_url
    #[arg(long, env = "BAA_PR_COMMAND")]
    pub pr_command: Option<String>,
    /// Author (and committer) name of the runner's commits
    #[arg(long, env = "BAA_GIT_AUTHOR_NAME", default_value = "baa-conductor")]
    pub git_author_name: Option<String>,
    /// Author (and committer) email of the runner's commits [default: baa@<host>]
    #[arg(long, env = "BAA_GIT_AUTHOR_EMAIL")]
    pub git_author_email: Option<String>,
    /// How long after a task's last run on this host its worktree is removed (the branch stays), e.g. 7d, 12h, 90s
    #[arg(long, env = "BAA_WORKTREE_RETENTION", default_value = "7d")]
    pub worktree_retention: Option<String>,
    /// How long a finished run's directory is kept, e.g. 30d
    #[arg(long, env = "BAA_RUNS_RETENTION", default_value = "30d")]
    pub runs_retention: Option<String>,
    /// Below this much free disk (where the worktrees are) the runner stops claiming, e.g. 5GB, 500MB
    #[arg(long, env = "BAA_MIN_FREE_DISK", default_value = "5GB")]
    pub min_free_disk: Option<String>,
    /// Sandbox every step that runs repository code: auto (where the startup proof passes; a loud warning where it does not), required (no step runs without a proven sandbox), or off (steps run as this user)
    #[arg(long, env = "BAA_SANDBOX", default_value = "auto")]
    pub sandbox: Option<String>,
    /// More places a sandboxed step may read, separated by ':' (a package cache, for example)
    #[arg(long, env = "BAA_SANDBOX_READ")]
    pub sandbox_read: Option<String>,
    /// More places a sandboxed step may read and write, separated by ':'
    #[arg(long, env = "BAA_SANDBOX_WRITE")]
    pub sandbox_write: Option<String>,
    /// Folder holding runs/, worktrees/, logs/, tmp/ and state/ [default: ~/Library/Application Support/baa-conductor on macOS, ~/.local/state/baa-conductor elsewhere]
    #[arg(long, env = "BAA_RUNTIME_ROOT")]
    pub runtime_root: Option<String>,
    /// Run directories [default: <runtime root>/runs]
    #[arg(long, env = "BAA_RUNS_DIR")]
    pub runs_dir: Option<String>,
    /// Git worktrees [default: <runtime root>/worktrees]
    #[arg(long, env = "BAA_WORKTREES_DIR")]
    pub worktrees_dir: Option<String>,
    /// Agent logs [default: <runtime root>/logs]
    #[arg(long, env = "BAA_LOGS_DIR")]
    pub logs_dir: Option<String>,
    /// Scratch files [default: <runtime root>/tmp]
    #[arg(long, env = "BAA_TMP_DIR")]
    pub tmp_dir: Option<String>,
    /// Durable agent state [default: <runtime root>/state]
    #[arg(long, env = "BAA_STATE_DIR")]
    pub state_dir: Option<String>,
    /// start: perform one cycle, print the runtime snapshot and exit
    #[arg(long)]
    pub run_once: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// One option as its `#[arg]` defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionInfo {
    /// The field of [`RawArgs`].
    pub id: String,
    pub flag: String,
    pub env: Option<String>,
    pub default: Option<String>,
}

/// Every option with a flag, in the order of [`RawArgs`].
pub fn options() -> &'static [OptionInfo] {
    static OPTIONS: OnceLock<Vec<OptionInfo>> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        RawArgs::command()
            .get_arguments()
            .filter_map(|arg| {
                Some(OptionInfo {
                    id: arg.get_id().to_string(),
                    flag: format!("--{}", arg.get_long()?),
                    env: arg.get_env().map(|env| env.to_string_lossy().into_owned()),
                    default: arg.get_default_values().first().map(|value| value.to_string_lossy().into_owned()),
                })
            })
            .collect()
    })
}

/// The option whose field is `id`.
pub fn option(id: &str) -> &'static OptionInfo {
    options().iter().find(|option| option.id == id).unwrap_or_else(|| panic!("{id} is not an option of RawArgs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/node-agent.md` lists every option with its variable and its default as defined.
    #[test]
    fn the_documented_options_are_the_defined_ones() {
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/node-agent.md")).unwrap();
        let rows: Vec<Vec<String>> = docs
            .lines()
            .filter(|line| line.starts_with("| `--"))
            .map(|line| line.trim_matches('|').split(" | ").map(|cell| cell.trim().to_string()).collect())
            .collect();
        assert!(options().len() > 30, "{} options", options().len());
        for option in options() {
            let named = |cell: &str| cell.contains(&format!("`{}`", option.flag)) || cell.contains(&format!("`{} ", option.flag));
            let row = rows.iter().find(|row| named(&row[0])).unwrap_or_else(|| panic!("{} is not in the table of options", option.flag));
            if let Some(env) = &option.env {
                assert!(row[1].contains(&format!("`{env}`")), "{}: the table says {:?}, the option reads {env}", option.flag, row[1]);
            }
            if let Some(default) = &option.default {
                let documented = row[2].replace('`', "");
                assert!(
                    documented.starts_with(default.as_str()),
                    "{}: the table says {documented:?}, the default is {default}",
                    option.flag
                );
            }
        }
    }
}
