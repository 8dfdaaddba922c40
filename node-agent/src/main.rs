//! `node-agent [start|config|checklist|help] [options]`: one binary per host.
//!
//! - [`cli`]: raw arguments with environment fallbacks (clap).
//! - [`config`]: raw arguments → one validated `AgentConfig`, warnings, text and JSON output.
//! - [`checklist`]: the startup checklist, in order.
//! - [`client`]: the Control API client (reqwest + rustls) behind the `ControlPlane` trait.
//! - [`conductor`]: registration, heartbeats, the lease state machine, the scheduler.
//! - [`runs`]: unfinished runs in the runs directory.
//! - [`log`]: timestamped log lines on stderr.
//!
//! `main` alone maps errors to exit codes: 2 for a bad option, 1 for a failure at run time.

mod checklist;
mod cli;
mod client;
mod conductor;
mod config;
mod log;
mod runs;

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
    // Requests end well before the next renewal is due.
    let timeout = (config.lease_renew_interval * 4 / 5).max(std::time::Duration::from_millis(200));
    let client = match client::ControlClient::new(&base, config.shared_token.clone(), &config.node_id, timeout) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    for warning in &config.warnings {
        log::log!("warning: {warning}");
    }
    let run_once = config.run_once;
    runtime.block_on(async move {
        let mut conductor = conductor::Conductor::new(config, client, conductor::clock_now());
        if run_once {
            conductor.startup(conductor::clock_now(), true).await;
            // The snapshot is JSON with or without --json: it is meant for tools and people alike.
            let snapshot = conductor.snapshot(conductor::clock_now());
            println!("{}", serde_json::to_string_pretty(&snapshot).unwrap_or_default());
            // One cycle is a probe: do not keep the fleet's lease for a TTL after exiting.
            conductor.shutdown().await;
            return ExitCode::SUCCESS;
        }
        log::log!("node-agent {} starting as {} ({})", env!("CARGO_PKG_VERSION"), conductor.config.node_id, conductor.config.role);
        conductor::run(&mut conductor, shutdown_signal()).await;
        log::log!("node-agent stopped");
        ExitCode::SUCCESS
    })
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
