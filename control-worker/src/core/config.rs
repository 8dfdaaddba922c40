//! Control plane configuration, read through a lookup function so the Worker env and the
//! process environment use the same names and rules.

use shared::auth::{NODE_TOKEN_SECRET_ENV_VAR, SHARED_TOKEN_ENV_VAR};
use shared::Role;
use thiserror::Error;

pub const AUTH_REQUIRED_ENV_VAR: &str = "CONTROL_API_AUTH_REQUIRED";
pub const ALLOWED_ORIGINS_ENV_VAR: &str = "CONTROL_API_ALLOWED_ORIGINS";
pub const VERSION_ENV_VAR: &str = "CONTROL_API_VERSION";
pub const CONTROLLER_LIVENESS_ENV_VAR: &str = "CONTROL_API_CONTROLLER_LIVENESS_SEC";
pub const STEP_HEARTBEAT_TTL_ENV_VAR: &str = "CONTROL_API_STEP_HEARTBEAT_TTL_SEC";
pub const HOST_LOST_AFTER_ENV_VAR: &str = "CONTROL_API_HOST_LOST_AFTER_SEC";
pub const SYNC_IDLE_ENV_VAR: &str = "CONTROL_API_SYNC_IDLE_MS";
pub const LOG_RETENTION_ENV_VAR: &str = "CONTROL_API_LOG_RETENTION_DAYS";
pub const EVENT_RETENTION_ENV_VAR: &str = "CONTROL_API_EVENT_RETENTION_DAYS";
pub const COMPACT_AFTER_ENV_VAR: &str = "CONTROL_API_COMPACT_AFTER_SEC";

#[derive(Clone, Default)]
pub struct Config {
    /// Plain tokens per role, in [`Role::ALL`] order.
    pub role_tokens: Vec<(Role, String)>,
    pub shared_token: Option<String>,
    pub node_token_secret: Option<String>,
    pub auth_required: bool,
    pub allowed_origins: Vec<String>,
    pub version: String,
    /// A controller whose last heartbeat is older than this is reported not alive.
    pub controller_liveness_sec: i64,
    /// Step heartbeat deadline granted when the worker does not ask for one.
    pub default_step_heartbeat_ttl_sec: i64,
    /// A task's assigned host silent this long is lost: the task starts over elsewhere (§11).
    pub host_lost_after_sec: i64,
    /// The `next_sync_ms` of an idle agent (SPEC §14): what an idle fleet costs.
    pub sync_idle_ms: i64,
    /// A finished run's output (its log objects and moved checkpoints) is deleted this many
    /// days after the run finished (SPEC §17).
    pub log_retention_days: i64,
    /// Events of the feed are deleted this many days after they happened.
    pub event_retention_days: i64,
    /// A run is compacted this long after it finished: the grace in which a late upload of a
    /// finished run is still stored as a row.
    pub compact_after_sec: i64,
}

// Tokens are secrets: Debug shows only whether each one is set.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("role_tokens", &self.role_tokens.iter().map(|(role, _)| role.as_str()).collect::<Vec<_>>())
            .field("shared_token_set", &self.shared_token.is_some())
            .field("node_token_secret_set", &self.node_token_secret.is_some())
            .field("auth_required", &self.auth_required)
            .field("allowed_origins", &self.allowed_origins)
            .field("version", &self.version)
            .finish()
    }
}

#[derive(Debug, Error, PartialEq)]
#[error("{variable}: {rule}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub rule: String,
}

impl Config {
    /// Reads the configuration. Empty values count as unset. Returns warnings worth logging.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<(Config, Vec<String>), ConfigError> {
        let read = |name: &str| lookup(name).map(|value| value.trim().to_string()).filter(|value| !value.is_empty());
        let mut warnings = Vec::new();
        let role_tokens: Vec<(Role, String)> =
            Role::ALL.iter().filter_map(|role| read(role.token_env_var()).map(|token| (*role, token))).collect();
        let shared_token = read(SHARED_TOKEN_ENV_VAR);
        let node_token_secret = read(NODE_TOKEN_SECRET_ENV_VAR);
        let auth_required = match read(AUTH_REQUIRED_ENV_VAR).as_deref() {
            None => true,
            Some(value) => {
                parse_bool(value).ok_or(ConfigError { variable: AUTH_REQUIRED_ENV_VAR, rule: "must be true or false".into() })?
            }
        };
        if !auth_required {
            warnings.push(format!(
                "authentication is DISABLED ({AUTH_REQUIRED_ENV_VAR}=false): every caller acts with every role; use only for local development"
            ));
        } else if role_tokens.is_empty() && shared_token.is_none() && node_token_secret.is_none() {
            warnings.push(format!(
                "no token is configured: every route but /healthz answers 503 auth_not_configured (set CONTROL_API_*_TOKEN, {SHARED_TOKEN_ENV_VAR} or {NODE_TOKEN_SECRET_ENV_VAR})"
            ));
        }
        for (role, token) in &role_tokens {
            if token == "replace-me" {
                warnings.push(format!("{} is still the sample value replace-me", role.token_env_var()));
            }
        }
        if shared_token.as_deref() == Some("replace-me") {
            warnings.push(format!("{SHARED_TOKEN_ENV_VAR} is still the sample value replace-me"));
        }
        let allowed_origins = read(ALLOWED_ORIGINS_ENV_VAR)
            .map(|list| list.split(',').map(|origin| origin.trim().trim_end_matches('/').to_string()).filter(|o| !o.is_empty()).collect())
            .unwrap_or_default();
        let controller_liveness_sec = read_seconds(&read, CONTROLLER_LIVENESS_ENV_VAR, 30)?;
        let default_step_heartbeat_ttl_sec = read_seconds(&read, STEP_HEARTBEAT_TTL_ENV_VAR, 60)?;
        let host_lost_after_sec = read_seconds(&read, HOST_LOST_AFTER_ENV_VAR, 600)?;
        let sync_idle_ms = read_number(&read, SYNC_IDLE_ENV_VAR, 200, 600_000, 10_000, "milliseconds")?;
        let log_retention_days = read_number(&read, LOG_RETENTION_ENV_VAR, 1, 36_500, 90, "days")?;
        let event_retention_days = read_number(&read, EVENT_RETENTION_ENV_VAR, 1, 36_500, 30, "days")?;
        let compact_after_sec = read_number(&read, COMPACT_AFTER_ENV_VAR, 0, 86_400, 300, "seconds")?;
        Ok((
            Config {
                role_tokens,
                shared_token,
                node_token_secret,
                auth_required,
                allowed_origins,
                version: read(VERSION_ENV_VAR).unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
                controller_liveness_sec,
                default_step_heartbeat_ttl_sec,
                host_lost_after_sec,
                sync_idle_ms,
                log_retention_days,
                event_retention_days,
                compact_after_sec,
            },
            warnings,
        ))
    }

    /// The configuration from name/value pairs (tests, benchmarks, embedded use).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<(Config, Vec<String>), ConfigError> {
        Self::from_lookup(|name| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string()))
    }

    /// Whether any credential at all is configured.
    pub fn has_any_token(&self) -> bool {
        !self.role_tokens.is_empty() || self.shared_token.is_some() || self.node_token_secret.is_some()
    }
}

fn read_seconds(read: &impl Fn(&str) -> Option<String>, variable: &'static str, default: i64) -> Result<i64, ConfigError> {
    read_number(read, variable, 1, 86_400, default, "seconds")
}

/// A whole number from `min` to `max` (of `unit`), `default` when unset.
pub fn read_number(
    read: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    min: i64,
    max: i64,
    default: i64,
    unit: &str,
) -> Result<i64, ConfigError> {
    match read(variable).map(|value| value.trim().to_string()).filter(|value| !value.is_empty()) {
        None => Ok(default),
        Some(value) => value
            .parse::<i64>()
            .ok()
            .filter(|number| (min..=max).contains(number))
            .ok_or(ConfigError { variable, rule: format!("must be a whole number of {unit} from {min} to {max}") }),
    }
}

/// `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off`, any case, spaces around ignored: how every
/// boolean setting of the control plane and the node agent is spelled.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
