//! The people's command line as clap reads it: global flags (accepted anywhere on the line),
//! the commands and their verbs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The words that start the people's CLI (`node-agent <word> …`).
pub const COMMANDS: [&str; 5] = ["tasks", "system", "login", "logout", "mcp"];

#[derive(Debug, Parser)]
#[command(
    name = "node-agent",
    about = "The control plane for people: tasks, the fleet's mode, a login; on a host with the embedded control plane no flags are needed"
)]
pub struct PeopleArgs {
    /// Base URL of the Control API [default: the login's, else this host's embedded control plane]
    #[arg(long, env = "BAA_CONTROL_API_BASE", global = true)]
    pub control_api_base: Option<String>,
    /// An admin token (a read-only one is enough to look) [default: the login's, else the embedded plane's]
    #[arg(long, env = "BAA_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The agent's state directory, where an embedded control plane leaves its address and token
    #[arg(long, env = "BAA_STATE_DIR", global = true)]
    pub state_dir: Option<String>,
    /// The agent's runtime root (its state directory is <runtime root>/state)
    #[arg(long, env = "BAA_RUNTIME_ROOT", global = true)]
    pub runtime_root: Option<String>,
    /// Print the control plane's JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tasks: create, list, show, logs, diff, wave, cancel, approve, reject, report, watch, import
    Tasks {
        #[command(subcommand)]
        verb: Box<Verb>,
    },
    /// The fleet: pause, resume, drain, state
    System {
        #[command(subcommand)]
        verb: SystemVerb,
    },
    /// Keep a fleet's control plane and token for this user (0600): asks for the token without
    /// echoing it, or reads it from stdin when that is not a terminal
    Login,
    /// Forget the kept login
    Logout,
    /// Serve the fleet as tools over the Model Context Protocol on stdin and stdout, for a
    /// coding agent's client: `claude mcp add baa -- node-agent mcp` (see docs/mcp.md)
    Mcp,
}

#[derive(Debug, Subcommand)]
pub enum SystemVerb {
    /// Nothing new starts; running steps go on
    Pause {
        #[arg(long)]
        reason: Option<String>,
    },
    /// Back to running
    Resume {
        #[arg(long)]
        reason: Option<String>,
    },
    /// Started tasks finish; no new task starts
    Drain {
        #[arg(long)]
        reason: Option<String>,
    },
    /// The mode, the leader, task and step counts, the hosts, parked accounts
    State,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create a task
    Create {
        #[arg(long)]
        repo: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        goal: String,
        /// shell, codex, or integrate (merges the branches of its --depends-on)
        #[arg(long = "type", default_value = "codex")]
        task_type: String,
        #[arg(long)]
        key: Option<String>,
        /// The task's branch (default baa/<task id>)
        #[arg(long)]
        branch: Option<String>,
        /// none, push, or pr
        #[arg(long)]
        deliver: Option<String>,
        #[arg(long = "depends-on")]
        depends_on: Vec<String>,
        #[arg(long = "write-scope")]
        write_scope: Vec<String>,
        #[arg(long)]
        acceptance: Vec<String>,
        #[arg(long)]
        review: bool,
    },
    /// Newest tasks first
    List {
        #[arg(long)]
        status: Option<String>,
    },
    /// One task (its id or its key): where it stands, why it waits, what it delivered, what it cost
    Show { task: String },
    /// The diff of the task's branch against where it started (coloured on a terminal)
    Diff {
        task: String,
        /// Never colour
        #[arg(long)]
        no_color: bool,
    },
    /// A wave's cards as a dependency graph: an integrate task (its id or key), or a key prefix
    Wave { target: String },
    /// A task's output (stdout and stderr); with --follow, until the task ends
    Logs {
        task: String,
        #[arg(long)]
        follow: bool,
        /// The runner's own events (worker.log) too
        #[arg(long)]
        events: bool,
    },
    Cancel {
        task: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Approve {
        task: String,
        #[arg(long)]
        comment: Option<String>,
    },
    Reject {
        task: String,
        #[arg(long)]
        reason: String,
        /// Another agent round with the reason and the comments as its feedback
        #[arg(long)]
        retry: bool,
        /// A comment on a line of the branch's diff, as path:line:text (repeat for more)
        #[arg(long = "comment")]
        comments: Vec<String>,
    },
    /// A task's report in the card's sections
    Report { task: String },
    /// The event feed as it comes (tasks started, rounds, ends, reviews, parked accounts, mode changes), until interrupted
    Watch {
        /// Print this many of the latest events first
        #[arg(long, default_value = "10")]
        last: u32,
        /// Stop after this many seconds (for scripts) [default: never]
        #[arg(long)]
        for_sec: Option<u64>,
    },
    /// Create the tasks of card files, in dependency order; a card already imported is left as it is
    Import {
        /// For cards without a repo: line
        #[arg(long)]
        repo: Option<String>,
        /// For cards without a deliver: line: none, push (needed when a wave spreads over hosts), pr
        #[arg(long)]
        deliver: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}
