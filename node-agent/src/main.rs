//! `node-agent [start|config|checklist|help] [options]`: one binary per host.
//!
//! - [`cli`]: raw arguments with environment fallbacks (clap).
//! - [`config`]: raw arguments → one validated `AgentConfig`, warnings, text and JSON output.
//! - [`checklist`]: the startup checklist, in order.
//! - [`clock`]: the agent's two clocks (tokio's instants, wall-clock milliseconds), read nowhere else
//!   by the runner and the conductor.
//! - [`client`]: the Control API client (reqwest + rustls) behind the `ControlPlane` trait.
//! - [`conductor`]: one `agents.sync` per tick: registration, the lease state machine, the
//!   leader's planning, the runner's room and reports.
//! - [`runner`]: the worker runner: steps as processes in git worktrees, run directories,
//!   log shipping, checkpoints, adoption after a restart.
//! - [`embedded`]: `start --embedded`: the control plane in this process, its tokens.
//! - [`status`]: the local status server (`/healthz`, `/v1/status`, the page, `/metrics`).
//! - [`log`]: timestamped log lines on stderr.
//! - [`units`]: durations and sizes as people write them (`7d`, `5GB`).
//! - [`platform`]: what differs between Linux and macOS (zombies, process start, group CPU, free disk).
//!
//! `main` alone maps errors to exit codes: 2 for a bad option, 1 for a failure at run time.

mod checklist;
mod cli;
mod client;
mod clock;
mod conductor;
mod config;
mod embedded;
mod log;
mod platform;
mod runner;
mod status;
mod units;

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

fn start(mut config: AgentConfig) -> ExitCode {
    let Some(base) = config.control_api_base.clone() else {
        eprintln!(
            "error: start needs a control plane: give --control-api-base URL (BAA_CONTROL_API_BASE) to use a running one, \
             or --embedded to run one in this process (on SQLite in the state directory)"
        );
        return ExitCode::from(2);
    };
    let embedded = match config.embedded {
        None => None,
        Some(address) => match embedded::prepare(&config.paths.state, |name| std::env::var(name).ok()) {
            Ok(embedded) => {
                if config.shared_token.is_none() {
                    config.shared_token = Some(config::Secret::new(embedded.service_token.clone()));
                }
                Some((address, embedded))
            }
            Err(error) => {
                eprintln!("error: the embedded control plane: {error}");
                return ExitCode::from(1);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: starting the runtime: {error}");
            return ExitCode::from(1);
        }
    };
    // One sync at a time, carrying up to about 2 MB of output: a third of the lease's TTL, so
    // a leader's retries still fall before its local deadline.
    let timeout = (std::time::Duration::from_secs(config.lease_ttl_sec as u64) / 3)
        .clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(10));
    let conductor_client = match client::ControlClient::new(&base, config.shared_token.clone(), &config.node_id, timeout) {
        Ok(client) => client,
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
        // Everything this process serves stops once the agent has released its lease and its
        // runs have settled.
        let (finished, finishing) = tokio::sync::watch::channel(false);
        let until_finished = |mut receiver: tokio::sync::watch::Receiver<bool>| async move {
            let _ = receiver.wait_for(|done| *done).await;
        };
        let mut servers = Vec::new();
        let mut extra = serde_json::json!({"embedded": {"enabled": embedded.is_some()}});
        if let Some((address, embedded)) = embedded {
            match embedded::serve(address, &embedded).await {
                Ok((bound, listener, core)) => {
                    for warning in &embedded.warnings {
                        log::log!("warning: embedded control plane: {warning}");
                    }
                    log::log!(
                        "embedded control plane on http://{bound} (database {}, tokens in {})",
                        embedded.database.display(),
                        embedded.tokens_file.display()
                    );
                    extra["embedded"] = serde_json::json!({"enabled": true, "listen": bound.to_string(), "database": embedded.database, "tokens_file": embedded.tokens_file});
                    if let Some(admin_token) = &embedded.new_admin_token {
                        // Shown once, on the first start; afterwards it is only in the tokens file.
                        println!("baa-conductor runs on this host.");
                        println!("  control plane  http://{bound}");
                        if let Some(local_api) = &config.local_api {
                            println!("  status page    http://{local_api}/");
                        }
                        println!("  admin token    {admin_token}");
                        println!("The admin token is shown only now; it is kept in {} (mode 0600).", embedded.tokens_file.display());
                    }
                    servers.push(tokio::task::spawn_local(control_worker::native::serve(listener, core, embedded.limits.clone(), false, until_finished(finishing.clone()))));
                }
                Err(error) => {
                    eprintln!("error: the embedded control plane: {error}");
                    return ExitCode::from(1);
                }
            }
        }
        let runner = runner::Runner::new(runner::RunnerSettings::from_config(&config));
        let run_once = config.run_once;
        let runs_dir = config.paths.runs.clone();
        let local_api = config.local_api.clone();
        let mut conductor = conductor::Conductor::new(config, conductor_client, conductor::clock_now());
        conductor.started_at = Some(runner::wall_ms() / 1_000);
        let board = std::rc::Rc::new(status::StatusBoard { conductor: std::cell::RefCell::new(conductor.snapshot(conductor::clock_now())), runner: runner.clone(), extra });
        if run_once {
            conductor.startup(conductor::clock_now(), true, &mut conductor::CountRuns(runs_dir, 0)).await;
            *board.conductor.borrow_mut() = conductor.snapshot(conductor::clock_now());
            // The snapshot is JSON with or without --json: it is meant for tools and people alike.
            println!("{}", serde_json::to_string_pretty(&board.snapshot()).unwrap_or_default());
            // One cycle is a probe: do not keep the fleet's lease for a TTL after exiting.
            conductor.shutdown().await;
            let _ = finished.send(true);
            return ExitCode::SUCCESS;
        }
        if let Some(address) = &local_api {
            match tokio::net::TcpListener::bind(address.as_str()).await {
                Ok(listener) => {
                    log::log!("status server on http://{}/", listener.local_addr().map(|bound| bound.to_string()).unwrap_or_else(|_| address.clone()));
                    servers.push(tokio::task::spawn_local(status::serve(listener, board.clone(), until_finished(finishing.clone()))));
                }
                // The agent's work matters more than its status page: go on without it.
                Err(error) => log::log!("warning: the status server cannot listen on {address}: {error}"),
            }
        }
        log::log!("node-agent {} starting as {} ({})", env!("CARGO_PKG_VERSION"), conductor.config.node_id, conductor.config.role);
        conductor.seats = Box::new(runner.clone());
        conductor.startup(conductor::clock_now(), false, &mut RunnerStartup { runner: &runner, found: Vec::new() }).await;
        let (stop, stopping) = tokio::sync::watch::channel(false);
        tokio::task::spawn_local(async move {
            control_worker::native::shutdown_signal().await;
            log::log!("shutdown signal received");
            let _ = stop.send(true);
        });
        let mut conductor_stopping = stopping.clone();
        let publish = |conductor: &conductor::Conductor<client::ControlClient>| *board.conductor.borrow_mut() = conductor.snapshot(conductor::clock_now());
        tokio::join!(
            conductor::run(
                &mut conductor,
                async move {
                    let _ = conductor_stopping.wait_for(|stopping| *stopping).await;
                },
                runner.wake_handle(),
                publish
            ),
            runner.run(stopping),
        );
        let _ = finished.send(true);
        for server in servers {
            let _ = server.await;
        }
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
        (
            status,
            format!(
                "{} live run(s) adopted, {} ended run(s) to settle, {} left alone",
                reconciled.adopted,
                reconciled.settling,
                reconciled.skipped.len()
            ),
        )
    }
}
