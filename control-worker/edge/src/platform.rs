//! Time and randomness inside the Worker (`SystemTime::now()` panics on wasm32).

use control_worker::core::clock::{Clock, Random};

pub struct WorkerClock;

impl Clock for WorkerClock {
    fn now(&self) -> i64 {
        (worker::Date::now().as_millis() / 1000) as i64
    }

    async fn sleep_ms(&self, ms: u64) {
        worker::Delay::from(std::time::Duration::from_millis(ms)).await
    }
}

/// Ids need uniqueness, not secrecy: two `Math.random()` draws give 64 random bits.
pub struct JsRandom;

impl Random for JsRandom {
    fn next_u64(&self) -> u64 {
        let high = (worker::js_sys::Math::random() * 4_294_967_296.0) as u64;
        let low = (worker::js_sys::Math::random() * 4_294_967_296.0) as u64;
        (high << 32) | low
    }
}
