//! A manual clock for the black-box suite, which must move time on the Worker as it does on
//! the native server. Off unless the Worker has `CONTROL_API_TEST_ONLY_MANUAL_CLOCK=true`; never
//! set that on a deployment (a warning is logged on every cold start when it is set).
//!
//! `POST /__test/clock` with an admin token and `{"set": unix_seconds}` or `{"advance":
//! seconds}` moves it; the Worker then reads that time until the isolate is restarted.

use std::sync::atomic::{AtomicI64, Ordering};

use control_worker::core::auth::authenticate;
use control_worker::core::clock::Clock;
use control_worker::core::config::Config;
use control_worker::core::db::MAX_SAFE_INTEGER;
use control_worker::core::error::ApiError;
use control_worker::core::http::{ApiRequest, ApiResponse};
use control_worker::core::input::{parse_object, Fields};
use serde_json::json;
use shared::{ErrorCode, Role};

use crate::platform::WorkerClock;

pub const ENV_VAR: &str = "CONTROL_API_TEST_ONLY_MANUAL_CLOCK";
pub const PATH: &str = "/__test/clock";

/// In milliseconds; 0 until set: the real time is used.
static MANUAL_NOW_MS: AtomicI64 = AtomicI64::new(0);

pub struct EdgeClock {
    pub manual: bool,
}

impl Clock for EdgeClock {
    fn now(&self) -> i64 {
        match MANUAL_NOW_MS.load(Ordering::SeqCst) {
            manual if self.manual && manual != 0 => manual.div_euclid(1000),
            _ => WorkerClock.now(),
        }
    }

    async fn sleep_ms(&self, ms: u64) {
        if self.manual && MANUAL_NOW_MS.load(Ordering::SeqCst) != 0 {
            // A manual clock moves by the time slept, as the native suite's does.
            MANUAL_NOW_MS.fetch_add(ms as i64, Ordering::SeqCst);
        } else {
            WorkerClock.sleep_ms(ms).await
        }
    }
}

pub fn handle(config: &Config, request: &ApiRequest, request_id: &str) -> ApiResponse {
    let outcome = (|| {
        let principal = authenticate(config, request.header("authorization"))?;
        if !principal.may_call(&[Role::BrowserAdmin, Role::OpsAdmin]) {
            return Err(ApiError::new(ErrorCode::Forbidden, "the test clock takes an admin token"));
        }
        let body = parse_object(&request.body, false)?;
        let fields = Fields::new(&body);
        let now = match (fields.opt_i64("set", 1, MAX_SAFE_INTEGER)?, fields.opt_i64("advance", 0, 86_400 * 365)?) {
            (Some(set), _) => set,
            (None, Some(advance)) => EdgeClock { manual: true }.now() + advance,
            (None, None) => return Err(ApiError::invalid_field("set", "or advance is required")),
        };
        MANUAL_NOW_MS.store(now * 1000, Ordering::SeqCst);
        Ok(now)
    })();
    match outcome {
        Ok(now) => ApiResponse::success(200, request_id, &json!({"now": now})),
        Err(error) => ApiResponse::failure(request_id, error),
    }
}
