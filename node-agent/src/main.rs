//! `node-agent [start|config|checklist|help] [options]`, `node-agent tasks|system <verb>`,
//! `node-agent login|logout` (the people's CLI; its flags may come before its command too),
//! `node-agent --version`, `node-agent agent-exec --preset NAME [-- ARGS]` (an agent step's
//! process, started by the runner): one binary per host. The agent itself
//! is the `node_agent` library ([`node_agent::agent::run`]); `main` parses the arguments, turns
//! SIGINT/SIGTERM into the shutdown signal, and alone maps errors to exit codes: 2 for a bad
//! option, 1 for a failure at run time.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use node_agent::cli::RawArgs;
use node_agent::config::AgentConfig;
use node_agent::{agent, checklist, shutdown};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if node_agent::people::command_position(&args).is_some() {
        return node_agent::people::main(args);
    }
    if args.get(1).map(String::as_str) == Some("agent-exec") {
        return agent_exec(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("sandbox-exec") {
        return ExitCode::from(node_agent::sandbox::exec::main(&args[2..]).clamp(0, 255) as u8);
    }
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
    if raw.command.as_deref() == Some("config") {
        if config.json {
            println!("{}", serde_json::to_string_pretty(&config.to_json()).unwrap_or_default());
        } else {
            print!("{}", config.to_text());
        }
        return ExitCode::SUCCESS;
    }
    let (trigger, shutdown) = shutdown::channel();
    shutdown::on_signal(trigger);
    match agent::run(config, shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// `agent-exec --preset NAME [-- EXTRA ARGS]`: see [`node_agent::agents::exec`].
fn agent_exec(args: &[String]) -> ExitCode {
    let (ours, extra) = match args.iter().position(|arg| arg == "--") {
        Some(split) => (&args[..split], args[split + 1..].to_vec()),
        None => (args, Vec::new()),
    };
    let preset = match ours {
        [flag, name] if flag == "--preset" => name.parse::<node_agent::agents::Preset>(),
        _ => Err("usage: node-agent agent-exec --preset codex|claude|gemini|aider [-- EXTRA ARGS]".to_string()),
    };
    match preset {
        Ok(preset) => ExitCode::from(node_agent::agents::exec::main(preset, extra).clamp(0, 255) as u8),
        Err(error) => {
            eprintln!("error: --preset {error}");
            ExitCode::from(2)
        }
    }
}
