//! `node-agent [start|config|checklist|help] [options]`: one binary per host.
//!
//! - [`cli`]: raw arguments with environment fallbacks (clap).
//! - [`config`]: raw arguments → one validated `AgentConfig`, warnings, text and JSON output.
//! - [`checklist`]: the startup checklist, in order.
//! - [`client`]: the Control API client (reqwest + rustls) behind the `ControlPlane` trait.
//! - [`conductor`]: registration, heartbeats, the lease state machine, the scheduler.
//! - [`runner`]: the worker runner: steps as processes in git worktrees, run directories,
//!   log shipping, checkpoints, adoption after a restart.
//! - [`log`]: timestamped log lines on stderr.
//!
//! `main` alone maps errors to exit codes: 2 for a bad option, 1 for a failure at run time.

mod checklist;
mod cli;
mod client;
mod conductor;
mod config;
mod log;
mod runner;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::RawArgs;
use crate::config::AgentConfig;

fn main() -> ExitCode {
    let raw = RawArgs::parse();
    match raw.command.as_deref() {
        Some("help") => {
            let _ = RawArgs::command().print_long_help();
            return ExitCode::SUCCESS;
        }
        Some("checklist") => {
            if raw.json {
                println!("{}", serde_json::to_string_pretty(&checklist::STARTUP_CHECKLIST).unwrap_or_default());
            } else {
                print!("{}", checklist::to_text());
            }
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let config = match AgentConfig::resolve(&raw, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match raw.command.as_deref() {
        Some("config") => {
            if config.json {
                println!("{}", serde_json::to_string_pretty(&config.to_json()).unwrap_or_default());
            } else {
                print!("{}", config.to_text());
            }
            ExitCode::SUCCESS
        }
        _ => start(config),
    }
}

fn start(config: AgentConfig) -> ExitCode {
    let Some(base) = config.control_api_base.clone() else {
        eprintln!("error: --control-api-base (BAA_CONTROL_API_BASE) is required: the URL of the control plane, e.g. http://127.0.0.1:8787");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    // Lease calls end well before the next renewal is due; the runner's uploads may take longer.
    let timeout = (config.lease_renew_interval * 4 / 5).max(std::time::Duration::from_millis(200));
    let clients = client::ControlClient::new(&base, config.shared_token.clone(), &config.node_id, timeout).and_then(|conductor_client| {
        let runner_client = client::ControlClient::new(&base, config.shared_token.clone(), &config.node_id, std::time::Duration::from_secs(30))?;
        Ok((conductor_client, runner_client))
    });
    let (conductor_client, runner_client) = match clients {
        Ok(clients) => clients,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    for warning in &config.warnings {
        log::log!("warning: {warning}");
    }
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let runner = runner::Runner::new(runner::RunnerSettings::from_config(&config), runner_client);
        let run_once = config.run_once;
        let runs_dir = config.paths.runs.clone();
        let mut conductor = conductor::Conductor::new(config, conductor_client, conductor::clock_now());
        conductor.planned = Some(runner.wake_handle());
        if run_once {
            conductor.startup(conductor::clock_now(), true, &mut conductor::CountRuns(runs_dir, 0)).await;
            // The snapshot is JSON with or without --json: it is meant for tools and people alike.
            let mut snapshot = conductor.snapshot(conductor::clock_now());
            snapshot["runner"] = runner.snapshot();
            println!("{}", serde_json::to_string_pretty(&snapshot).unwrap_or_default());
            // One cycle is a probe: do not keep the fleet's lease for a TTL after exiting.
            conductor.shutdown().await;
            return ExitCode::SUCCESS;
        }
        log::log!("node-agent {} starting as {} ({})", env!("CARGO_PKG_VERSION"), conductor.config.node_id, conductor.config.role);
        conductor.startup(conductor::clock_now(), false, &mut RunnerStartup { runner: &runner, found: Vec::new() }).await;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        tokio::task::spawn_local(async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        });
        let mut conductor_stopping = stopping.clone();
        tokio::join!(
            conductor::run(&mut conductor, async move {
                let _ = conductor_stopping.wait_for(|stopping| *stopping).await;
            }),
            runner.run(stopping),
        );
        log::log!("node-agent stopped");
        ExitCode::SUCCESS
    })
}

/// The runner's part of the startup checklist.
struct RunnerStartup<'a> {
    runner: &'a runner::Runner,
    found: Vec<std::path::PathBuf>,
}

impl conductor::StartupRuns for RunnerStartup<'_> {
    fn load_runs(&mut self) -> (&'static str, String) {
        self.found = self.runner.load_runs();
        ("done", format!("{} unfinished run(s)", self.found.len()))
    }

    fn reconcile_runs(&mut self) -> (&'static str, String) {
        let reconciled = self.runner.reconcile(&self.found);
        let status = if reconciled.skipped.is_empty() { "done" } else { "partial" };
        (status, format!("{} live run(s) adopted, {} ended run(s) to settle, {} left alone", reconciled.adopted, reconciled.settling, reconciled.skipped.len()))
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
    log::log!("shutdown signal received");
}
