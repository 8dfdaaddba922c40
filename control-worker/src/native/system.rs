//! The real clock, randomness and shutdown signal for native builds.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::clock::{Clock, SeededRandom};

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs() as i64).unwrap_or(0)
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await
    }
}

/// A splitmix sequence seeded from the operating system: ids need uniqueness, not secrecy.
pub fn os_random() -> SeededRandom {
    let mut seed = [0u8; 8];
    if getrandom::fill(&mut seed).is_err() {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_nanos()).unwrap_or(0);
        seed = (nanos as u64 ^ std::process::id() as u64).to_le_bytes();
    }
    SeededRandom::new(u64::from_le_bytes(seed))
}

/// Resolves on SIGINT or SIGTERM: what stops `control-local` and the node agent.
pub async fn shutdown_signal() {
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
}
