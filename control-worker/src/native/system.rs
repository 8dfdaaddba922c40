//! The real clock and randomness for native builds.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::clock::{Clock, SeededRandom};

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs() as i64).unwrap_or(0)
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
