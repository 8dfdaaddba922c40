//! Time and randomness enter the core only through these traits, so tests can fake them
//! (and the Worker can use `worker::Date`: `SystemTime::now()` panics on wasm).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

#[allow(async_fn_in_trait)]
pub trait Clock {
    /// Current unix time in seconds.
    fn now(&self) -> i64;

    /// Waits `ms` milliseconds: a standby's sync is held while the lease stays with another
    /// holder (SPEC §14). A manual clock moves by that much instead of waiting.
    async fn sleep_ms(&self, ms: u64);
}

pub trait Random {
    fn next_u64(&self) -> u64;
}

/// A clock that moves only when told (or slept on); cheap to clone, all clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: i64) -> Self {
        ManualClock { millis: Arc::new(AtomicI64::new(start * 1000)) }
    }

    pub fn advance(&self, seconds: i64) {
        self.millis.fetch_add(seconds * 1000, Ordering::SeqCst);
    }

    pub fn set(&self, seconds: i64) {
        self.millis.store(seconds * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.millis.load(Ordering::SeqCst).div_euclid(1000)
    }

    async fn sleep_ms(&self, ms: u64) {
        self.millis.fetch_add(ms as i64, Ordering::SeqCst);
    }
}

/// A splitmix64 sequence: deterministic for tests, and used to stretch a random seed.
#[derive(Debug, Clone)]
pub struct SeededRandom {
    state: Arc<AtomicU64>,
}

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom { state: Arc::new(AtomicU64::new(seed)) }
    }
}

impl Random for SeededRandom {
    fn next_u64(&self) -> u64 {
        let mut z = self.state.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl<T: Clock + ?Sized> Clock for &T {
    fn now(&self) -> i64 {
        (**self).now()
    }

    async fn sleep_ms(&self, ms: u64) {
        (**self).sleep_ms(ms).await
    }
}

impl<T: Random + ?Sized> Random for &T {
    fn next_u64(&self) -> u64 {
        (**self).next_u64()
    }
}

/// A new identifier: `<prefix>_<unix seconds, hex><64 random bits, hex>`. The time part makes
/// ids of one kind sort roughly by creation; the random part makes them unique.
pub fn new_id(prefix: &str, now: i64, random: &impl Random) -> String {
    format!("{prefix}_{:08x}{:016x}", now.max(0), random.next_u64())
}
