//! Raw arguments → one validated [`AgentConfig`]. Every bad value is one [`ConfigError`]
//! naming the option and its environment variable; warnings are collected, not fatal.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use shared::ids::is_valid_node_id;
use shared::status::ControllerRole;
use thiserror::Error;

use control_worker::core::config::parse_bool;

use crate::cli::RawArgs;
use crate::units::{parse_bytes, parse_duration};

pub const PREFERRED_ENV: &str = "BAA_CONDUCTOR_PREFERRED";
pub const DEFAULT_LOCAL_API: &str = "127.0.0.1:4317";
pub const DEFAULT_CONTROL_LISTEN: &str = "127.0.0.1:8787";

#[derive(Debug, Error, PartialEq)]
#[error("{option}{}: {rule}", env.as_ref().map(|env| format!(" ({env})")).unwrap_or_default())]
pub struct ConfigError {
    pub option: String,
    pub env: Option<String>,
    pub rule: String,
}

/// The error of the option whose [`RawArgs`] field is `id`, named by its flag and variable.
fn bad(id: &str, rule: impl Into<String>) -> ConfigError {
    let option = crate::cli::option(id);
    ConfigError { option: option.flag.clone(), env: option.env.clone(), rule: rule.into() }
}

/// The option's text as given, else its default as its `#[arg]` declares it (a [`RawArgs`]
/// built in code has no defaults filled in).
fn given_or_default(value: Option<&str>, id: &str) -> Option<String> {
    value.map(str::to_string).or_else(|| crate::cli::option(id).default.clone())
}

/// A secret that never prints: `Debug` and `Display` say only that it is set.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(set)")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuntimePaths {
    pub root: PathBuf,
    pub runs: PathBuf,
    pub worktrees: PathBuf,
    pub logs: PathBuf,
    pub tmp: PathBuf,
    pub state: PathBuf,
}

/// The worker runner's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerConfig {
    pub capacity: usize,
    pub step_heartbeat_interval: Duration,
    pub kill_grace: Duration,
    pub shutdown_grace: Duration,
    pub log_ship_limit_bytes: u64,
    pub agent_command: Option<String>,
    /// The coding CLI driven by preset (`--agent`); `agent_command` wins where both are given.
    pub agent: Option<crate::agents::Preset>,
    /// Extra flags for the preset's CLI (`--agent-args`), split into words.
    pub agent_args: Vec<String>,
    /// The coding agent's account (SPEC §13); the host's name unless given.
    pub agent_account: String,
    /// The host's own usage-limit phrases, beside the built-in ones.
    pub agent_limit_patterns: Vec<String>,
    pub pr_command: Option<String>,
    pub git_author_name: String,
    pub git_author_email: String,
    pub worktree_retention: Duration,
    pub runs_retention: Duration,
    pub min_free_disk_bytes: u64,
    /// The sandbox around steps that run repository code (SPEC §19).
    pub sandbox: crate::sandbox::SandboxConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub node_id: String,
    pub host: String,
    pub role: ControllerRole,
    pub control_api_base: Option<String>,
    /// `Some(address)` with `--embedded`: this process serves the control plane there.
    pub embedded: Option<std::net::SocketAddr>,
    /// `None` when the status server is turned off.
    pub local_api: Option<String>,
    pub shared_token: Option<Secret>,
    pub priority: i64,
    /// What this agent reports as its version: `--version`, else the binary's own.
    pub version: String,
    pub preferred: bool,
    /// The longest between two syncs, whatever pace the control plane asks for.
    pub heartbeat_interval: Duration,
    /// How soon to sync again after a failed sync.
    pub lease_renew_interval: Duration,
    pub lease_ttl_sec: i64,
    pub renew_failure_threshold: u32,
    pub runner: RunnerConfig,
    /// Where the leader delivers the event feed (SPEC §13).
    pub notify: crate::notify::NotifyConfig,
    pub paths: RuntimePaths,
    pub run_once: bool,
    pub json: bool,
    pub warnings: Vec<String>,
}

/// `--sandbox-read` / `--sandbox-write`: absolute paths separated by ':'.
fn sandbox_paths(value: Option<&str>, id: &str) -> Result<Vec<PathBuf>, ConfigError> {
    value
        .unwrap_or("")
        .split(':')
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .map(|path| {
            let path = PathBuf::from(path);
            if path.is_absolute() {
                Ok(path)
            } else {
                Err(bad(id, format!("must be absolute paths separated by ':', got {}", path.display())))
            }
        })
        .collect()
}

fn milliseconds(value: Option<&str>, id: &str) -> Result<Duration, ConfigError> {
    let text = given_or_default(value, id).unwrap_or_default();
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| (100..=3_600_000).contains(ms))
        .map(Duration::from_millis)
        .ok_or_else(|| bad(id, format!("must be a whole number of milliseconds from 100 to 3600000, got {text:?}")))
}

fn duration(value: Option<&str>, id: &str) -> Result<Duration, ConfigError> {
    let text = given_or_default(value, id).unwrap_or_default();
    parse_duration(text.trim()).ok_or_else(|| bad(id, format!("must be a duration such as 90s, 15m, 12h or 7d, got {text:?}")))
}

/// A whole number in `min..=max`; `fallback` for an option whose default depends on others.
fn integer(value: Option<&str>, id: &str, min: i64, max: i64, fallback: Option<i64>) -> Result<i64, ConfigError> {
    let Some(text) = given_or_default(value, id) else {
        return Ok(fallback.unwrap_or(min));
    };
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|number| (min..=max).contains(number))
        .ok_or_else(|| bad(id, format!("must be a whole number from {min} to {max}, got {text:?}")))
}

/// `host:port` or `http://host:port` → `host:port`; `off`/`none` → `None`.
fn local_api(value: Option<&str>) -> Result<Option<String>, ConfigError> {
    let text = value.unwrap_or(DEFAULT_LOCAL_API).trim();
    if matches!(text.to_ascii_lowercase().as_str(), "off" | "none" | "") {
        return Ok(None);
    }
    let address = text.strip_prefix("http://").unwrap_or(text).trim_end_matches('/');
    let valid = address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok());
    if !valid {
        return Err(bad("local_api", format!("must be host:port or http://host:port (or off), got {text:?}")));
    }
    Ok(Some(address.to_string()))
}

fn control_api_base(value: Option<&str>) -> Result<Option<String>, ConfigError> {
    let Some(text) = value.map(str::trim).filter(|text| !text.is_empty()) else { return Ok(None) };
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains(char::is_whitespace) => Ok(Some(text.trim_end_matches('/').to_string())),
        _ => Err(bad("control_api_base", format!("must be an http:// or https:// URL, got {text:?}"))),
    }
}

/// The default runtime root for this platform under `home`.
pub fn default_runtime_root(home: Option<&str>) -> PathBuf {
    let home = PathBuf::from(home.unwrap_or("."));
    if cfg!(target_os = "macos") {
        home.join("Library/Application Support/baa-conductor")
    } else {
        home.join(".local/state/baa-conductor")
    }
}

impl AgentConfig {
    /// How long one sync may take: it carries up to about 2 MB of output, and a third of the
    /// lease's TTL lets a leader's retries still fall before its local deadline.
    pub fn sync_timeout(&self) -> std::time::Duration {
        (std::time::Duration::from_secs(self.lease_ttl_sec as u64) / 3)
            .clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(10))
    }

    /// Validates `raw`; `lookup` reads the environment for what clap does not (the
    /// `BAA_CONDUCTOR_PREFERRED` fallback of the two preferred flags, and `HOME`).
    pub fn resolve(raw: &RawArgs, lookup: impl Fn(&str) -> Option<String>) -> Result<AgentConfig, ConfigError> {
        let mut warnings = Vec::new();
        let role = match raw.role.as_deref().map(str::trim) {
            None => ControllerRole::Primary,
            Some(text) => ControllerRole::parse(text).ok_or_else(|| bad("role", format!("must be primary or standby, got {text:?}")))?,
        };
        let host = raw.host.as_deref().map(str::trim).unwrap_or("localhost").to_string();
        if host.is_empty() || host.len() > 255 || host.contains(char::is_whitespace) {
            return Err(bad("host", format!("must be a host name without spaces, got {host:?}")));
        }
        let node_id = match raw.node_id.as_deref().map(str::trim) {
            Some(id) => id.to_string(),
            None => match role {
                ControllerRole::Primary => format!("{host}-main"),
                ControllerRole::Standby => format!("{host}-standby"),
            },
        };
        if !is_valid_node_id(&node_id) {
            return Err(bad(
                "node_id",
                format!("must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit, got {node_id:?}"),
            ));
        }
        let primary = role == ControllerRole::Primary;
        let priority = integer(raw.priority.as_deref(), "priority", 0, 1_000_000, Some(if primary { 100 } else { 50 }))?;
        let preferred = if raw.preferred {
            true
        } else if raw.no_preferred {
            false
        } else {
            match lookup(PREFERRED_ENV).filter(|text| !text.trim().is_empty()) {
                None => primary,
                Some(text) => parse_bool(&text).ok_or_else(|| ConfigError {
                    option: "--preferred/--no-preferred".into(),
                    env: Some(PREFERRED_ENV.into()),
                    rule: format!("must be true or false, got {text:?}"),
                })?,
            }
        };
        let heartbeat_interval = milliseconds(raw.heartbeat_interval_ms.as_deref(), "heartbeat_interval_ms")?;
        let lease_renew_interval = milliseconds(raw.lease_renew_interval_ms.as_deref(), "lease_renew_interval_ms")?;
        let lease_ttl_sec = integer(raw.lease_ttl_sec.as_deref(), "lease_ttl_sec", 1, 3_600, None)?;
        let renew_failure_threshold = integer(raw.renew_failure_threshold.as_deref(), "renew_failure_threshold", 1, 100, None)? as u32;
        let runner = RunnerConfig {
            capacity: integer(raw.capacity.as_deref(), "capacity", 0, 32, None)? as usize,
            step_heartbeat_interval: milliseconds(raw.step_heartbeat_interval_ms.as_deref(), "step_heartbeat_interval_ms")?,
            kill_grace: milliseconds(raw.kill_grace_ms.as_deref(), "kill_grace_ms")?,
            shutdown_grace: milliseconds(raw.shutdown_grace_ms.as_deref(), "shutdown_grace_ms")?,
            log_ship_limit_bytes: integer(raw.log_ship_limit_bytes.as_deref(), "log_ship_limit_bytes", 0, 1 << 40, None)? as u64,
            agent_command: raw.agent_command.as_deref().map(str::trim).filter(|command| !command.is_empty()).map(str::to_string),
            agent: match raw.agent.as_deref().map(str::trim).filter(|name| !name.is_empty()) {
                Some(name) => Some(name.parse().map_err(|rule: String| bad("agent", rule))?),
                None => None,
            },
            agent_args: crate::agents::split_arguments(raw.agent_args.as_deref().unwrap_or(""))
                .map_err(|rule| bad("agent_args", format!("{rule}: give the flags as shell words")))?,
            agent_account: raw.agent_account.as_deref().map(str::trim).filter(|account| !account.is_empty()).unwrap_or(&host).to_string(),
            agent_limit_patterns: raw
                .agent_limit_patterns
                .as_deref()
                .unwrap_or("")
                .split('|')
                .map(str::trim)
                .filter(|phrase| !phrase.is_empty())
                .map(str::to_string)
                .collect(),
            pr_command: raw.pr_command.as_deref().map(str::trim).filter(|command| !command.is_empty()).map(str::to_string),
            git_author_name: given_or_default(
                raw.git_author_name.as_deref().map(str::trim).filter(|name| !name.is_empty()),
                "git_author_name",
            )
            .unwrap_or_default(),
            git_author_email: match raw.git_author_email.as_deref().map(str::trim).filter(|email| !email.is_empty()) {
                Some(email) => email.to_string(),
                None => format!("baa@{host}"),
            },
            worktree_retention: duration(raw.worktree_retention.as_deref().filter(|text| !text.trim().is_empty()), "worktree_retention")?,
            runs_retention: duration(raw.runs_retention.as_deref().filter(|text| !text.trim().is_empty()), "runs_retention")?,
            min_free_disk_bytes: {
                let text = given_or_default(raw.min_free_disk.as_deref().filter(|text| !text.trim().is_empty()), "min_free_disk")
                    .unwrap_or_default();
                parse_bytes(text.trim())
                    .ok_or_else(|| bad("min_free_disk", format!("must be a size such as 5GB, 500MB or 0, got {text:?}")))?
            },
            sandbox: crate::sandbox::SandboxConfig {
                mode: {
                    let text =
                        given_or_default(raw.sandbox.as_deref().filter(|text| !text.trim().is_empty()), "sandbox").unwrap_or_default();
                    crate::sandbox::Mode::parse(&text)
                        .ok_or_else(|| bad("sandbox", format!("must be auto, required or off, got {text:?}")))?
                },
                read: sandbox_paths(raw.sandbox_read.as_deref(), "sandbox_read")?,
                write: sandbox_paths(raw.sandbox_write.as_deref(), "sandbox_write")?,
            },
        };
        if runner.capacity > 0 && runner.agent_command.is_none() && runner.agent.is_none() {
            warnings.push("no coding agent (--agent codex|claude|gemini|aider, or --agent-command): this host runs shell and test steps only, and leaves codex steps to hosts that have one".into());
        }
        if let (Some(preset), Some(_)) = (runner.agent, &runner.agent_command) {
            warnings.push(format!("both --agent {preset} and --agent-command are given: the command template is used"));
        }
        if lease_renew_interval >= Duration::from_secs(lease_ttl_sec as u64) {
            warnings.push(format!(
                "the lease renew interval ({} ms) is not shorter than the lease TTL ({lease_ttl_sec} s): a leader whose sync failed retries only after its lease lapsed",
                lease_renew_interval.as_millis()
            ));
        }
        let local_api = local_api(raw.local_api.as_deref())?;
        if local_api.is_none() {
            warnings.push("no local API: the status server is off, so this host's state is visible only through the control plane".into());
        }
        let mut control_api_base = control_api_base(raw.control_api_base.as_deref())?;
        let embedded = if raw.embedded {
            let text = raw.control_listen.as_deref().map(str::trim).unwrap_or(DEFAULT_CONTROL_LISTEN);
            let address: std::net::SocketAddr = text
                .parse()
                .map_err(|_| bad("control_listen", format!("must be an IP address and port such as 127.0.0.1:8787, got {text:?}")))?;
            if control_api_base.is_some() {
                return Err(bad("control_api_base", "cannot be combined with --embedded, which runs this host's own control plane"));
            }
            // The agent reaches its own control plane over loopback, whatever address it serves.
            let reachable =
                if address.ip().is_unspecified() { std::net::SocketAddr::from(([127, 0, 0, 1], address.port())) } else { address };
            control_api_base = Some(format!("http://{reachable}"));
            Some(address)
        } else {
            None
        };
        if control_api_base.is_none() {
            warnings.push(
                "no control API base (--control-api-base / BAA_CONTROL_API_BASE) and not --embedded: start will refuse to run".into(),
            );
        }
        let shared_token =
            raw.shared_token.as_deref().map(str::trim).filter(|token| !token.is_empty()).map(|token| Secret(token.to_string()));
        match &shared_token {
            // Embedded, the token comes from the state directory when the environment has none.
            None if embedded.is_some() => {}
            None => warnings.push("no token (--shared-token / BAA_SHARED_TOKEN): the control plane will refuse this agent".into()),
            Some(token) if token.expose() == "replace-me" => {
                warnings.push("the token is still the sample value replace-me: set BAA_SHARED_TOKEN to a real token".into())
            }
            Some(_) => {}
        }
        let version = raw
            .agent_version
            .as_deref()
            .map(str::trim)
            .filter(|version| !version.is_empty())
            .unwrap_or(env!("CARGO_PKG_VERSION"))
            .to_string();
        let root = match raw.runtime_root.as_deref().map(str::trim).filter(|root| !root.is_empty()) {
            Some(root) => PathBuf::from(root),
            None => default_runtime_root(lookup("HOME").as_deref()),
        };
        let path = |value: &Option<String>, name: &str| match value.as_deref().map(str::trim).filter(|path| !path.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => root.join(name),
        };
        let paths = RuntimePaths {
            runs: path(&raw.runs_dir, "runs"),
            worktrees: path(&raw.worktrees_dir, "worktrees"),
            logs: path(&raw.logs_dir, "logs"),
            tmp: path(&raw.tmp_dir, "tmp"),
            state: path(&raw.state_dir, "state"),
            root,
        };
        Ok(AgentConfig {
            node_id,
            host,
            role,
            control_api_base,
            embedded,
            local_api,
            shared_token,
            priority,
            version,
            preferred,
            heartbeat_interval,
            lease_renew_interval,
            lease_ttl_sec,
            renew_failure_threshold,
            runner,
            paths,
            run_once: raw.run_once,
            json: raw.json,
            notify: crate::notify::NotifyConfig {
                webhook: match raw.notify_webhook.as_deref().map(str::trim).filter(|url| !url.is_empty()) {
                    Some(url) if url.starts_with("http://") || url.starts_with("https://") => Some(url.to_string()),
                    Some(url) => return Err(bad("notify_webhook", format!("must be an http:// or https:// URL, got {url:?}"))),
                    None => None,
                },
                desktop: match raw.notify_desktop.as_deref().map(str::trim).unwrap_or("") {
                    "" | "false" => false,
                    "true" => true,
                    other => return Err(bad("notify_desktop", format!("must be true or false, got {other:?}"))),
                },
            },
            warnings,
        })
    }
}
