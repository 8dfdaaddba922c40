//! `control-local`: the control plane served natively on SQLite, for self-hosting without
//! Cloudflare. Reads the same environment as the Worker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use control_worker::core::auth::mint_node_token;
use control_worker::core::config::Config;
use control_worker::core::Core;
use control_worker::native::{os_random, serve, shutdown_signal, FileBlobs, ServerLimits, SqliteDb, SystemClock};
use shared::auth::NODE_TOKEN_SECRET_ENV_VAR;

#[derive(Parser)]
#[command(name = "control-local", version, about = "baa-conductor control plane on a local SQLite database")]
struct Cli {
    /// Address to listen on (host:port).
    #[arg(long, env = "BAA_CONTROL_LISTEN", default_value = "127.0.0.1:8787")]
    listen: SocketAddr,
    /// SQLite database file; created and migrated on first start.
    #[arg(long, env = "BAA_CONTROL_DB", default_value = "control-local.db")]
    db: PathBuf,
    /// Directory of the object files (finished runs' compacted output, large checkpoints);
    /// default: beside the database, `<name>.blobs/`.
    #[arg(long, env = "BAA_CONTROL_BLOBS")]
    blobs: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the node-bound token of a node on its host, minted under CONTROL_API_NODE_TOKEN_SECRET:
    /// it acts only as that node and only for that host.
    MintNodeToken {
        #[arg(long)]
        node_id: String,
        /// The host the node runs on (its --host / BAA_CONDUCTOR_HOST).
        #[arg(long)]
        host: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (config, warnings) = Config::from_lookup(|name| std::env::var(name).ok()).map_err(|error| anyhow!("{error}"))?;
    if let Some(Command::MintNodeToken { node_id, host }) = cli.command {
        let secret = config.node_token_secret.ok_or_else(|| anyhow!("{NODE_TOKEN_SECRET_ENV_VAR} must be set to mint node tokens"))?;
        let token = mint_node_token(&secret, &node_id, &host).map_err(|error| {
            let option = if error.details.get("field").and_then(|field| field.as_str()) == Some("host") { "--host" } else { "--node-id" };
            anyhow!("{option} {}", error.message)
        })?;
        println!("{token}");
        return Ok(());
    }
    let limits = ServerLimits::from_lookup(|name| std::env::var(name).ok()).map_err(|error| anyhow!("{error}"))?;
    for warning in &warnings {
        eprintln!("WARNING: {warning}");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let db = SqliteDb::open(&cli.db).with_context(|| format!("opening database {}", cli.db.display()))?;
        let listener = tokio::net::TcpListener::bind(cli.listen).await.with_context(|| format!("binding {}", cli.listen))?;
        eprintln!("control-local {} listening on http://{} with database {}", config.version, listener.local_addr()?, cli.db.display());
        let blobs = match &cli.blobs {
            Some(directory) => FileBlobs::new(directory),
            None => FileBlobs::beside(&cli.db),
        };
        eprintln!("control-local objects in {}", blobs.root().display());
        let core = Rc::new(Core::new(db, blobs, SystemClock, os_random(), config));
        serve(listener, core, limits, true, shutdown_signal()).await;
        eprintln!("control-local stopped");
        Ok(())
    })
}
