//! The agent's two clocks, and the only places its runner and conductor read them.
//!
//! - [`now`]: instants for timers, from tokio's clock: real time in the agent, virtual time
//!   under a paused test clock, so the loops can be tested in virtual time.
//! - [`wall_ms`]: wall-clock milliseconds since the epoch, for times kept in run files and
//!   compared across agent restarts (monotonic instants cannot be).
//! - [`Now`]: both, read once by a driver and handed to a state machine with each input: the
//!   machines never read a clock themselves.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

pub fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_millis() as i64).unwrap_or(0)
}

/// One reading of both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    pub wall_ms: i64,
}

impl Now {
    pub fn read() -> Now {
        Now { at: now(), wall_ms: wall_ms() }
    }

    /// The instant at which the wall clock will read `wall_ms` (now, if that is past).
    pub fn instant_at(self, wall_ms: i64) -> Instant {
        self.at + Duration::from_millis((wall_ms - self.wall_ms).max(0) as u64)
    }
}
