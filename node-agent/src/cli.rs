//! Raw command-line arguments with their environment fallbacks, exactly as typed. Nothing is
//! validated here: [`crate::config`] turns them into one validated configuration.

use clap::Parser;

#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "node-agent",
    about = "baa-conductor node agent: registers this host, competes for the leader lease, schedules while leading",
    disable_version_flag = true,
    disable_help_subcommand = true,
    allow_negative_numbers = true
)]
pub struct RawArgs {
    /// What to do: start (run the agent), config (print the resolved configuration),
    /// checklist (print the startup checklist), help.
    #[arg(value_parser = ["start", "config", "checklist", "help"])]
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
    /// With --embedded: where the control plane listens [default: 127.0.0.1:8787]
    #[arg(long, env = "BAA_CONTROL_LISTEN")]
    pub control_listen: Option<String>,
    /// Status server address, host:port or http://host:port; "off" disables it [default: 127.0.0.1:4317]
    #[arg(long, env = "BAA_CONDUCTOR_LOCAL_API")]
    pub local_api: Option<String>,
    /// Service token for the Control API (a shared or node-bound token)
    #[arg(long, env = "BAA_SHARED_TOKEN", hide_env_values = true)]
    pub shared_token: Option<String>,
    /// Lease priority [default: 100 for a primary, 50 for a standby]
    #[arg(long, env = "BAA_CONDUCTOR_PRIORITY")]
    pub priority: Option<String>,
    /// Version string this agent reports
    #[arg(long = "version", env = "BAA_CONDUCTOR_VERSION")]
    pub agent_version: Option<String>,
    /// Ask for the lease back from a standby (BAA_CONDUCTOR_PREFERRED=true|false) [default: true for a primary]
    #[arg(long, overrides_with = "no_preferred")]
    pub preferred: bool,
    /// Never ask for the lease back
    #[arg(long, overrides_with = "preferred")]
    pub no_preferred: bool,
    /// The longest between two syncs with the control plane, whatever pace it asks for, in milliseconds [default: 30000]
    #[arg(long, env = "BAA_CONDUCTOR_HEARTBEAT_INTERVAL_MS")]
    pub heartbeat_interval_ms: Option<String>,
    /// How soon to sync again after a sync failed (the lease retry pace), in milliseconds [default: 5000]
    #[arg(long, env = "BAA_CONDUCTOR_LEASE_RENEW_INTERVAL_MS")]
    pub lease_renew_interval_ms: Option<String>,
    /// Lease time to live in seconds [default: 30]
    #[arg(long, env = "BAA_CONDUCTOR_LEASE_TTL_SEC")]
    pub lease_ttl_sec: Option<String>,
    /// Consecutive renewal failures before the agent reports degraded [default: 2]
    #[arg(long, env = "BAA_CONDUCTOR_RENEW_FAILURE_THRESHOLD")]
    pub renew_failure_threshold: Option<String>,
    /// Steps this host runs at once; 0 turns the runner off [default: 1]
    #[arg(long, env = "BAA_RUNNER_CAPACITY")]
    pub capacity: Option<String>,
    /// Step heartbeat interval in milliseconds (also how soon a cancel is noticed) [default: 5000]
    #[arg(long, env = "BAA_RUNNER_HEARTBEAT_INTERVAL_MS")]
    pub step_heartbeat_interval_ms: Option<String>,
    /// Grace between SIGTERM and SIGKILL when a step times out or is canceled, in milliseconds [default: 10000]
    #[arg(long, env = "BAA_RUNNER_KILL_GRACE_MS")]
    pub kill_grace_ms: Option<String>,
    /// On SIGTERM, how long running steps may take to finish before the agent exits and leaves them to the next agent, in milliseconds [default: 10000]
    #[arg(long, env = "BAA_RUNNER_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: Option<String>,
    /// Bytes of stdout and stderr shipped per run; the rest stays in the run directory [default: 16777216]
    #[arg(long, env = "BAA_RUNNER_LOG_SHIP_LIMIT_BYTES")]
    pub log_ship_limit_bytes: Option<String>,
    /// The coding-agent command template for codex steps, run with sh -c in the worktree; variables {goal_file} {worktree} {task_id} {step_id} {run_id} {run_dir}
    #[arg(long, env = "BAA_AGENT_COMMAND")]
    pub agent_command: Option<String>,
    /// The pull-request command template for constraints.deliver "pr", run after the push; variables {branch} {base_branch} {title} {report_file} {remote} {task_id} {worktree}; the first URL it prints is the task's pr_url
    #[arg(long, env = "BAA_PR_COMMAND")]
    pub pr_command: Option<String>,
    /// Author (and committer) name of the runner's commits [default: baa-conductor]
    #[arg(long, env = "BAA_GIT_AUTHOR_NAME")]
    pub git_author_name: Option<String>,
    /// Author (and committer) email of the runner's commits [default: baa@<host>]
    #[arg(long, env = "BAA_GIT_AUTHOR_EMAIL")]
    pub git_author_email: Option<String>,
    /// How long after a task's last run on this host its worktree is removed (the branch stays), e.g. 7d, 12h, 90s [default: 7d]
    #[arg(long, env = "BAA_WORKTREE_RETENTION")]
    pub worktree_retention: Option<String>,
    /// How long a finished run's directory is kept, e.g. 30d [default: 30d]
    #[arg(long, env = "BAA_RUNS_RETENTION")]
    pub runs_retention: Option<String>,
    /// Below this much free disk (where the worktrees are) the runner stops claiming, e.g. 5GB, 500MB [default: 5GB]
    #[arg(long, env = "BAA_MIN_FREE_DISK")]
    pub min_free_disk: Option<String>,
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
