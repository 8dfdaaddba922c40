//! `start --embedded`: the control plane in this process, natively on SQLite in the state
//! directory, served on `--control-listen` (default 127.0.0.1:8787); the conductor and the
//! runner talk to it over loopback like any other client.
//!
//! Tokens come from the environment when set (`CONTROL_API_BROWSER_ADMIN_TOKEN`,
//! `BAA_SHARED_TOKEN`); otherwise they are generated once into `<state>/embedded-tokens.env`
//! (mode 0600) and reused on every later start.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use control_worker::core::config::{Config, SYNC_IDLE_ENV_VAR};
use shared::auth::{Role, SHARED_TOKEN_ENV_VAR};
use thiserror::Error;

pub const TOKENS_FILE: &str = "embedded-tokens.env";
pub const DATABASE_FILE: &str = "control.db";
/// The embedded control plane's URL as last bound, one line, for `node-agent tasks` on this host.
pub const ADDRESS_FILE: &str = "embedded-address";
/// The idle `next_sync_ms` of the embedded control plane (a fleet on Cloudflare uses 10 s): a
/// new task reaches its first step within about this and a quarter of a second, and one
/// host's SQLite has no bill to mind.
pub const EMBEDDED_SYNC_IDLE_MS: i64 = 500;
const ADMIN_TOKEN_VAR: &str = "CONTROL_API_BROWSER_ADMIN_TOKEN";

#[derive(Debug, Error)]
pub enum EmbeddedError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("{path}: line {line} is not NAME=value")]
    BadTokensFile { path: PathBuf, line: usize },
    #[error("no randomness from the operating system for a token")]
    NoRandomness,
    #[error("the control plane's configuration: {0}")]
    Config(String),
}

/// What `start --embedded` needs to run the control plane and talk to it.
pub struct Embedded {
    pub database: PathBuf,
    pub config: Config,
    /// The server's limits (`CONTROL_API_HEADER_TIMEOUT_SEC` …), from the environment.
    pub limits: control_worker::native::ServerLimits,
    pub warnings: Vec<String>,
    /// The token the agent itself uses (the shared service token).
    pub service_token: String,
    /// Set on the first start only, when the tokens were just generated: shown once.
    pub new_admin_token: Option<String>,
    pub tokens_file: PathBuf,
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> EmbeddedError + '_ {
    move |error| EmbeddedError::Io { path: path.to_path_buf(), error }
}

fn new_token() -> Result<String, EmbeddedError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|_| EmbeddedError::NoRandomness)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn read_tokens(path: &Path) -> Result<BTreeMap<String, String>, EmbeddedError> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    let mut tokens = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=').ok_or(EmbeddedError::BadTokensFile { path: path.to_path_buf(), line: index + 1 })?;
        tokens.insert(name.trim().to_string(), value.trim().to_string());
    }
    Ok(tokens)
}

/// Tokens from the environment, else from the tokens file, else generated into it.
pub fn prepare(state_dir: &Path, lookup: impl Fn(&str) -> Option<String>) -> Result<Embedded, EmbeddedError> {
    std::fs::create_dir_all(state_dir).map_err(io_error(state_dir))?;
    let tokens_file = state_dir.join(TOKENS_FILE);
    let from_env = |name: &str| lookup(name).map(|value| value.trim().to_string()).filter(|value| !value.is_empty());
    let mut new_admin_token = None;
    let mut tokens = if tokens_file.exists() { read_tokens(&tokens_file)? } else { BTreeMap::new() };
    let missing: Vec<&str> = [ADMIN_TOKEN_VAR, SHARED_TOKEN_ENV_VAR]
        .into_iter()
        .filter(|name| from_env(name).is_none() && !tokens.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        for name in &missing {
            tokens.insert(name.to_string(), new_token()?);
        }
        if missing.contains(&ADMIN_TOKEN_VAR) {
            new_admin_token = tokens.get(ADMIN_TOKEN_VAR).cloned();
        }
        let mut text = String::from("# Tokens of this host's embedded control plane (node-agent start --embedded). Keep private.\n");
        for (name, value) in &tokens {
            text.push_str(&format!("{name}={value}\n"));
        }
        let temporary = state_dir.join(format!(".{TOKENS_FILE}.tmp"));
        let _ = std::fs::remove_file(&temporary);
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary).map_err(io_error(&temporary))?;
        file.write_all(text.as_bytes()).and_then(|_| file.sync_all()).map_err(io_error(&temporary))?;
        std::fs::rename(&temporary, &tokens_file).map_err(io_error(&tokens_file))?;
    }
    let value_of = |name: &str| from_env(name).or_else(|| tokens.get(name).cloned());
    let service_token = value_of(SHARED_TOKEN_ENV_VAR).unwrap_or_default();
    let (config, warnings) = Config::from_lookup(|name| {
        let known = Role::ALL.iter().any(|role| role.token_env_var() == name) || name == SHARED_TOKEN_ENV_VAR;
        if known {
            value_of(name)
        } else if name == SYNC_IDLE_ENV_VAR {
            // Embedded mode has no bill to mind: an idle agent syncs every second.
            lookup(name).or_else(|| Some(EMBEDDED_SYNC_IDLE_MS.to_string()))
        } else {
            lookup(name)
        }
    })
    .map_err(|error| EmbeddedError::Config(error.to_string()))?;
    let limits = control_worker::native::ServerLimits::from_lookup(&lookup).map_err(|error| EmbeddedError::Config(error.to_string()))?;
    Ok(Embedded { database: state_dir.join(DATABASE_FILE), config, limits, warnings, service_token, new_admin_token, tokens_file })
}

/// Writes the URL the embedded control plane answers on (replaced atomically at every start).
pub fn write_address(state_dir: &Path, base: &str) -> Result<(), EmbeddedError> {
    let path = state_dir.join(ADDRESS_FILE);
    let temporary = state_dir.join(format!(".{ADDRESS_FILE}.tmp"));
    std::fs::write(&temporary, format!("{base}\n")).map_err(io_error(&temporary))?;
    std::fs::rename(&temporary, &path).map_err(io_error(&path))
}

/// The admin token of the tokens file (`None` when the tokens came from the environment).
pub fn read_admin_token(state_dir: &Path) -> Result<Option<String>, EmbeddedError> {
    let path = state_dir.join(TOKENS_FILE);
    if !path.exists() {
        return Ok(None);
    }
    Ok(read_tokens(&path)?.remove(ADMIN_TOKEN_VAR))
}

/// Opens (and migrates) the database and binds the listener: what can fail happens before
/// anything is served.
pub async fn serve(
    address: std::net::SocketAddr,
    embedded: &Embedded,
) -> Result<
    (
        std::net::SocketAddr,
        tokio::net::TcpListener,
        std::rc::Rc<
            control_worker::core::Core<
                control_worker::native::SqliteDb,
                control_worker::native::SystemClock,
                control_worker::core::clock::SeededRandom,
                control_worker::native::FileBlobs,
            >,
        >,
    ),
    EmbeddedError,
> {
    let db = control_worker::native::SqliteDb::open(&embedded.database)
        .map_err(|error| EmbeddedError::Io { path: embedded.database.clone(), error: io::Error::other(error.to_string()) })?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| EmbeddedError::Io { path: PathBuf::from(address.to_string()), error })?;
    let bound = listener.local_addr().unwrap_or(address);
    let core = control_worker::core::Core::new(
        db,
        control_worker::native::FileBlobs::beside(&embedded.database),
        control_worker::native::SystemClock,
        control_worker::native::os_random(),
        embedded.config.clone(),
    );
    Ok((bound, listener, std::rc::Rc::new(core)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_are_generated_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = prepare(dir.path(), |_| None).unwrap();
        let admin = first.new_admin_token.clone().expect("shown on the first start");
        assert_eq!(admin.len(), 48);
        let mode = std::fs::metadata(&first.tokens_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = prepare(dir.path(), |_| None).unwrap();
        assert_eq!(second.new_admin_token, None, "shown only once");
        assert_eq!(second.service_token, first.service_token);
        assert!(second.config.has_any_token());
    }

    #[test]
    fn tokens_from_the_environment_win_and_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let env = |name: &str| match name {
            "CONTROL_API_BROWSER_ADMIN_TOKEN" => Some("admin-from-env".to_string()),
            "BAA_SHARED_TOKEN" => Some("service-from-env".to_string()),
            _ => None,
        };
        let embedded = prepare(dir.path(), env).unwrap();
        assert_eq!(embedded.service_token, "service-from-env");
        assert_eq!(embedded.new_admin_token, None);
        assert!(!embedded.tokens_file.exists());
    }
}
