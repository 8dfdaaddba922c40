//! The agent's two clocks, and the only places its runner and conductor read them.
//!
//! - [`now`]: instants for timers, from tokio's clock: real time in the agent, virtual time
//!   under a paused test clock, so the loops can be tested in virtual time.
//! - [`wall_ms`]: wall-clock milliseconds since the epoch, for times kept in run files and
//!   compared across agent restarts (monotonic instants cannot be).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

pub fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as i64).unwrap_or(0)
}
