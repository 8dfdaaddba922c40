//! The node agent as a library: `node-agent start` is [`agent::run`] with a configuration
//! and a shutdown signal; the binary (`main.rs`) only parses arguments and maps errors to exit
//! codes.
//!
//! - [`agent`]: `run(config, shutdown)`: wires the embedded control plane, the conductor, the
//!   runner and the status server, and runs them until shutdown.
//! - [`agents`]: the coding CLIs driven by preset (`--agent codex|claude|gemini|aider`): their
//!   command lines, their events read into a transcript, usage, session and limits;
//!   `node-agent agent-exec`, the process of such a step.
//! - [`shutdown`]: one shutdown signal for every loop and server.
//! - [`cli`]: raw arguments with environment fallbacks (clap).
//! - [`config`]: raw arguments → one validated `AgentConfig`, with warnings.
//! - [`config_show`]: the configuration as text and as JSON (`node-agent config`).
//! - [`checklist`]: the startup checklist, in order.
//! - [`clock`]: the agent's two clocks (tokio's instants, wall-clock milliseconds), read nowhere else
//!   by the runner and the conductor.
//! - [`client`]: the Control API client (reqwest + rustls) behind the `ControlPlane` trait.
//! - [`conductor`]: one `agents.sync` per tick: registration, the lease state machine, the
//!   leader's planning, the runner's room and reports.
//! - [`sandbox`]: the sandbox around steps that run repository code (Landlock, Seatbelt), proven at startup.
//! - [`runner`]: the worker runner: steps as processes in git worktrees, run directories,
//!   log shipping, checkpoints, adoption after a restart.
//! - [`embedded`]: `start --embedded`: the control plane in this process, its tokens.
//! - [`status`]: the local status server (`/healthz`, `/v1/status`, the page, `/metrics`).
//! - [`log`]: timestamped log lines on stderr.
//! - [`notify`]: the leader delivers the event feed to a webhook and the desktop.
//! - [`people`]: `node-agent tasks|system|login|logout …`: the control plane for people; task cards imported.
//! - [`mcp`]: `node-agent mcp`: the same as tools over the Model Context Protocol (stdio).
//! - [`units`]: durations and sizes as people write them (`7d`, `5GB`).
//! - `simulation` (tests only): the fleet under a seeded schedule of faults, every guarantee of
//!   SPEC §15 checked after every event (`scripts/simulate`).
//! - [`platform`]: what differs between Linux and macOS (zombies, process start, group CPU, free
//!   disk, desktop notifications).

pub mod agent;
pub mod agents;
pub mod checklist;
pub mod cli;
pub mod client;
pub mod clock;
pub mod conductor;
pub mod config;
pub mod config_show;
pub mod embedded;
pub mod log;
pub mod mcp;
pub mod notify;
pub mod people;
pub mod platform;
pub mod runner;
pub mod sandbox;
pub mod shutdown;
#[cfg(test)]
mod simulation;
pub mod status;
pub mod units;
