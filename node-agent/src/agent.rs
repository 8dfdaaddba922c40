//! `node-agent start`: the embedded control plane (with `--embedded`), the conductor, the
//! runner and the status server, wired together and run until shutdown.

use thiserror::Error;

use crate::config::{self, AgentConfig};
use crate::log::log;
use crate::shutdown::{self, Shutdown};
use crate::{client, conductor, embedded, runner, status};

/// Why the agent could not start. (What goes wrong later is logged, and the loops go on.)
#[derive(Debug, Error)]
pub enum AgentError {
    #[error(
        "start needs a control plane: give --control-api-base URL (BAA_CONTROL_API_BASE) to use a running one, \
         or --embedded to run one in this process (on SQLite in the state directory)"
    )]
    NoControlPlane,
    #[error("the embedded control plane: {0}")]
    Embedded(String),
    #[error("starting the runtime: {0}")]
    Runtime(String),
    #[error("{0}")]
    Client(String),
}

impl AgentError {
    /// A bad option (2) or a failure at run time (1).
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::NoControlPlane => 2,
            _ => 1,
        }
    }
}

/// Runs the agent with `config` until `shutdown` is triggered (and its runs have settled or the
/// shutdown grace passed), or fails before it starts.
pub fn run(mut config: AgentConfig, shutdown: Shutdown) -> Result<(), AgentError> {
    let Some(mut base) = config.control_api_base.clone() else {
        return Err(AgentError::NoControlPlane);
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
            Err(error) => return Err(AgentError::Embedded(error.to_string())),
        },
    };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|error| AgentError::Runtime(error.to_string()))?;
    for warning in &config.warnings {
        log!("warning: {warning}");
    }
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        // Everything this process serves stops once the agent has released its lease and its
        // runs have settled.
        let (finished, finishing) = shutdown::channel();
        let mut servers = Vec::new();
        let mut embedded_status = status::snapshot::EmbeddedStatus { enabled: embedded.is_some(), ..Default::default() };
        // The status server's address as bound (port 0 picks a free one).
        let status_listener = match &config.local_api {
            None => None,
            Some(address) => match tokio::net::TcpListener::bind(address.as_str()).await {
                Ok(listener) => listener.local_addr().ok().map(|bound| (listener, bound)),
                // The agent's work matters more than its status page: go on without it.
                Err(error) => {
                    log!("warning: the status server cannot listen on {address}: {error}");
                    None
                }
            },
        };
        if let Some((address, embedded)) = embedded {
            match embedded::serve(address, &embedded).await {
                Ok((bound, listener, core)) => {
                    // The agent reaches its own control plane over loopback, at the port bound.
                    let reachable =
                        if bound.ip().is_unspecified() { std::net::SocketAddr::from(([127, 0, 0, 1], bound.port())) } else { bound };
                    base = format!("http://{reachable}");
                    // The people's CLI on this host finds its control plane here (SPEC §18).
                    if let Err(error) = embedded::write_address(&config.paths.state, &base) {
                        log!("warning: embedded control plane: {error}");
                    }
                    for warning in &embedded.warnings {
                        log!("warning: embedded control plane: {warning}");
                    }
                    log!(
                        "embedded control plane on http://{bound} (database {}, tokens in {})",
                        embedded.database.display(),
                        embedded.tokens_file.display()
                    );
                    embedded_status = status::snapshot::EmbeddedStatus {
                        enabled: true,
                        listen: Some(bound.to_string()),
                        database: Some(embedded.database.clone()),
                        tokens_file: Some(embedded.tokens_file.clone()),
                    };
                    if let Some(admin_token) = &embedded.new_admin_token {
                        // Shown once, on the first start; afterwards it is only in the tokens file.
                        println!("baa-conductor runs on this host.");
                        println!("  control plane  http://{bound}");
                        if let Some((_, status_bound)) = &status_listener {
                            println!("  status page    http://{status_bound}/");
                        }
                        println!("  admin token    {admin_token}");
                        println!("The admin token is shown only now; it is kept in {} (mode 0600).", embedded.tokens_file.display());
                    }
                    servers.push(tokio::task::spawn_local(control_worker::native::serve(
                        listener,
                        core,
                        embedded.limits.clone(),
                        false,
                        finishing.clone().wait(),
                    )));
                }
                Err(error) => return Err(AgentError::Embedded(error.to_string())),
            }
        }
        let conductor_client = client::ControlClient::new(&base, config.shared_token.clone(), &config.node_id, config.sync_timeout())
            .map_err(|error| AgentError::Client(error.to_string()))?;
        let mut runner_settings = runner::RunnerSettings::from_config(&config);
        // A runner with no room runs no steps: its CLI need not be asked.
        if let (Some(preset), None, true) = (config.runner.agent, &config.runner.agent_command, config.runner.capacity > 0) {
            let cli = crate::agents::probe::probe(preset).await;
            match (&cli.version, &cli.warning) {
                (Some(version), _) => log!("coding agent: {preset} ({version})"),
                (None, Some(warning)) => log!("warning: {warning}"),
                (None, None) => {}
            }
            runner_settings.agent_cli = Some(cli);
        }
        if config.runner.capacity > 0 {
            prove_sandbox(&config, &mut runner_settings);
        }
        let runner = runner::Runner::new(runner_settings);
        let run_once = config.run_once;
        let runs_dir = config.paths.runs.clone();
        let mut conductor = conductor::Conductor::new(config, conductor_client, conductor::clock_now());
        conductor.started_at = Some(runner::wall_ms() / 1_000);
        let board = std::rc::Rc::new(status::StatusBoard {
            conductor: std::cell::RefCell::new(conductor.snapshot(conductor::clock_now())),
            runner: runner.clone(),
            embedded: embedded_status,
        });
        if run_once {
            conductor.startup(conductor::clock_now(), true, &mut conductor::CountRuns(runs_dir, 0)).await;
            *board.conductor.borrow_mut() = conductor.snapshot(conductor::clock_now());
            // The snapshot is JSON with or without --json: it is meant for tools and people alike.
            println!("{}", serde_json::to_string_pretty(&board.snapshot()).unwrap_or_default());
            // One cycle is a probe: do not keep the fleet's lease for a TTL after exiting.
            conductor.shutdown().await;
            finished.trigger();
            return Ok(());
        }
        if let Some((listener, bound)) = status_listener {
            log!("status server on http://{bound}/");
            servers.push(tokio::task::spawn_local(status::serve(listener, board.clone(), finishing.clone().wait())));
        }
        log!("node-agent {} starting as {} ({})", env!("CARGO_PKG_VERSION"), conductor.config.node_id, conductor.config.role);
        conductor.seats = Box::new(runner.clone());
        // The notifier is its own task, so a webhook that does not answer never holds up a
        // sync; it stops with the agent (what it had not delivered goes out after the restart:
        // the control plane keeps how far it got).
        let notifier = conductor.config.notify.enabled().then(|| {
            let (feed, events, delivered) = crate::notify::feed();
            conductor.feed = Some(feed);
            tokio::task::spawn_local(crate::notify::deliver(conductor.config.notify.clone(), events, delivered))
        });
        conductor.startup(conductor::clock_now(), false, &mut RunnerStartup { runner: &runner, found: Vec::new() }).await;
        let publish = |conductor: &conductor::Conductor<client::ControlClient>| {
            *board.conductor.borrow_mut() = conductor.snapshot(conductor::clock_now())
        };
        tokio::join!(conductor::run(&mut conductor, shutdown.clone().wait(), runner.wake_handle(), publish), runner.run(shutdown),);
        if let Some(notifier) = notifier {
            notifier.abort();
        }
        finished.trigger();
        for server in servers {
            let _ = server.await;
        }
        log!("node-agent stopped");
        Ok(())
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

/// The startup proof (SPEC §19): steps run sandboxed where it passed; with `--sandbox auto` a
/// failed proof is a loud warning and steps run as the agent's user, with `required` this host
/// runs no step.
fn prove_sandbox(config: &AgentConfig, settings: &mut runner::RunnerSettings) {
    use crate::sandbox::Mode;
    let mode = config.runner.sandbox.mode;
    if mode == Mode::Off {
        settings.sandbox_line = "off".into();
        log!("warning: sandbox off (--sandbox off): steps run as this user and can reach everything it can");
        return;
    }
    let base = runner::RunnerSettings::sandbox_places(config, |name| std::env::var(name).ok());
    let proof = crate::sandbox::proof::run(&settings.agent_exec, &base);
    let engine = if cfg!(target_os = "macos") { "seatbelt" } else { "landlock" };
    settings.sandbox_line = format!("{engine}: {}", proof.summary());
    if proof.passed {
        log!("sandbox: {}: steps that run repository code run sandboxed", settings.sandbox_line);
        settings.sandbox = Some(base);
    } else if mode == Mode::Required {
        log!("WARNING: sandbox {} and --sandbox required: this host runs no step", settings.sandbox_line);
        settings.options.capacity = 0;
    } else {
        log!("WARNING: sandbox {}: steps run UNSANDBOXED as this user (--sandbox required refuses instead)", settings.sandbox_line);
    }
}
