//! What the native server allows a client (SPEC §2 and the hostile-clients issue): how long it
//! may take to send its headers and its body, how long a keep-alive connection may sit idle,
//! and how many connections may be open at once. Defaults, and the environment names that
//! override them (read by `control-local`, embedded mode and the tests alike).

use std::time::{Duration, Instant};

use crate::core::config::{read_number, ConfigError};

pub const HEADER_TIMEOUT_ENV_VAR: &str = "CONTROL_API_HEADER_TIMEOUT_SEC";
pub const BODY_TIMEOUT_ENV_VAR: &str = "CONTROL_API_BODY_TIMEOUT_SEC";
pub const BODY_MIN_RATE_ENV_VAR: &str = "CONTROL_API_BODY_MIN_BYTES_PER_SEC";
pub const IDLE_TIMEOUT_ENV_VAR: &str = "CONTROL_API_IDLE_TIMEOUT_SEC";
pub const MAX_CONNECTIONS_ENV_VAR: &str = "CONTROL_API_MAX_CONNECTIONS";
pub const MAINTENANCE_INTERVAL_ENV_VAR: &str = "CONTROL_API_MAINTENANCE_INTERVAL_SEC";

/// More headers than this answer 431 (as an envelope up to [`PARSED_HEADERS`]).
pub const MAX_HEADERS: usize = 100;
/// Headers hyper parses before it answers 431 itself, with no body.
pub const PARSED_HEADERS: usize = 500;
/// Bytes of request line and headers before hyper answers 431 itself.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct ServerLimits {
    /// From a request's first byte to the end of its headers.
    pub header_timeout: Duration,
    /// A body may take this long, plus a second per `body_min_bytes_per_sec` it carries.
    pub body_timeout: Duration,
    pub body_min_bytes_per_sec: u64,
    /// A connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// Connections beyond this are answered 503 and closed at once, not queued.
    pub max_connections: usize,
    /// How often the server runs storage upkeep (compaction and retention, SPEC §17); `None`
    /// (the variable set to 0) turns the timer off.
    pub maintenance_interval: Option<Duration>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            body_min_bytes_per_sec: 16 * 1024,
            idle_timeout: Duration::from_secs(30),
            max_connections: 128,
            maintenance_interval: Some(Duration::from_secs(300)),
        }
    }
}

impl ServerLimits {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ServerLimits, ConfigError> {
        let defaults = ServerLimits::default();
        let seconds = |variable, default: Duration| {
            read_number(&lookup, variable, 1, 3_600, default.as_secs() as i64, "seconds").map(|secs| Duration::from_secs(secs as u64))
        };
        Ok(ServerLimits {
            header_timeout: seconds(HEADER_TIMEOUT_ENV_VAR, defaults.header_timeout)?,
            body_timeout: seconds(BODY_TIMEOUT_ENV_VAR, defaults.body_timeout)?,
            body_min_bytes_per_sec: read_number(
                &lookup,
                BODY_MIN_RATE_ENV_VAR,
                1,
                1 << 30,
                defaults.body_min_bytes_per_sec as i64,
                "bytes a second",
            )? as u64,
            idle_timeout: seconds(IDLE_TIMEOUT_ENV_VAR, defaults.idle_timeout)?,
            max_connections: read_number(&lookup, MAX_CONNECTIONS_ENV_VAR, 1, 100_000, defaults.max_connections as i64, "connections")?
                as usize,
            maintenance_interval: match read_number(&lookup, MAINTENANCE_INTERVAL_ENV_VAR, 0, 86_400, 300, "seconds")? {
                0 => None,
                seconds => Some(Duration::from_secs(seconds as u64)),
            },
        })
    }

    /// By when the rest of a body must have arrived, `received` bytes into it: the body
    /// timeout, plus a second for every `body_min_bytes_per_sec` already received. A body
    /// trickling slower than that rate falls behind and is cut.
    pub fn body_deadline(&self, started: Instant, received: u64) -> Instant {
        started + self.body_timeout + Duration::from_secs_f64(received as f64 / self.body_min_bytes_per_sec as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickle_falls_behind_and_a_steady_body_does_not() {
        let limits = ServerLimits::default();
        let started = Instant::now();
        // 1 byte a second: after 20 s it has 20 bytes, owed by 10 s + 20/16384 s.
        assert!(limits.body_deadline(started, 20) < started + Duration::from_secs(20));
        // A megabyte at 1 MB/s is always ahead of its deadline.
        assert!(limits.body_deadline(started, 1 << 20) > started + Duration::from_secs(1));
    }

    #[test]
    fn overrides_from_the_environment_and_their_rules() {
        let limits = ServerLimits::from_lookup(|name| (name == HEADER_TIMEOUT_ENV_VAR).then(|| "2".to_string())).unwrap();
        assert_eq!(limits.header_timeout, Duration::from_secs(2));
        assert_eq!(limits.max_connections, 128);
        let error = ServerLimits::from_lookup(|name| (name == MAX_CONNECTIONS_ENV_VAR).then(|| "0".to_string())).unwrap_err();
        assert_eq!(error.variable, MAX_CONNECTIONS_ENV_VAR);
        assert!(ServerLimits::default().header_timeout <= Duration::from_secs(10));
    }
}
