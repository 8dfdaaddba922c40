//! `#[event(fetch)]`: converts the Worker request, runs `Core::handle`, converts the answer.

use std::sync::atomic::{AtomicBool, Ordering};

use control_worker::core::clock::new_id;
use control_worker::core::config::Config;
use control_worker::core::error::ApiError;
use control_worker::core::http::{sanitize_request_id, ApiRequest, ApiResponse};
use control_worker::core::maintenance::run_slice;
use control_worker::core::Core;
use worker::{console_error, console_log, console_warn, event, Context, Env, Headers, Request, Response, ScheduleContext, ScheduledEvent};

use crate::d1::D1Db;
use crate::platform::JsRandom;
use crate::r2::R2Blobs;
use crate::test_clock::{self, EdgeClock};

/// The D1 and R2 binding names, as in `wrangler.toml`.
const DATABASE_BINDING: &str = "CONTROL_DB";
const BLOBS_BINDING: &str = "CONTROL_BLOBS";
/// With this var `true` (tests and benchmarks only), every answer carries D1's own count of
/// the rows the request read and wrote: `x-test-d1-rows-read`, `x-test-d1-rows-written`.
pub const D1_USAGE_ENV_VAR: &str = "CONTROL_API_TEST_ONLY_DB_USAGE";

static WARNED: AtomicBool = AtomicBool::new(false);

/// Secrets first, then plain vars: the same names as `control-local` reads from its environment.
fn lookup(env: &Env, name: &str) -> Option<String> {
    env.secret(name).ok().map(|secret| secret.to_string()).or_else(|| env.var(name).ok().map(|var| var.to_string()))
}

async fn read_request(mut request: Request) -> worker::Result<ApiRequest> {
    let url = request.url()?;
    let headers = request.headers().entries().collect();
    Ok(ApiRequest {
        method: request.method().to_string(),
        path: url.path().to_string(),
        query: url.query().unwrap_or("").to_string(),
        headers,
        body: request.bytes().await?,
    })
}

fn to_worker(response: ApiResponse) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in &response.headers {
        headers.append(name, value)?;
    }
    // A 204 must have a null body, not an empty one.
    let reply = if response.status == 204 { Response::empty()? } else { Response::from_bytes(response.body)? };
    Ok(reply.with_status(response.status).with_headers(headers))
}

#[event(fetch)]
pub async fn fetch(request: Request, env: Env, _context: Context) -> worker::Result<Response> {
    let api_request = read_request(request).await?;
    let (method, path) = (api_request.method.clone(), api_request.path.clone());
    let d1_usage = lookup(&env, D1_USAGE_ENV_VAR).as_deref() == Some("true");
    crate::d1::take_usage();
    let mut response = match Config::from_lookup(|name| lookup(&env, name)) {
        Ok((config, warnings)) => {
            let manual_clock = lookup(&env, test_clock::ENV_VAR).as_deref() == Some("true");
            if !WARNED.swap(true, Ordering::Relaxed) {
                for warning in warnings {
                    console_warn!("WARNING: {warning}");
                }
                if manual_clock {
                    console_warn!("WARNING: {} is set: the clock is manual; for tests only, never in a deployment", test_clock::ENV_VAR);
                }
            }
            match (env.d1(DATABASE_BINDING), env.bucket(BLOBS_BINDING)) {
                (Ok(_), _) if manual_clock && api_request.path == test_clock::PATH => {
                    let request_id = request_id_of(&api_request);
                    test_clock::handle(&config, &api_request, &request_id)
                }
                (Ok(database), Ok(bucket)) => {
                    let clock = EdgeClock { manual: manual_clock };
                    Core::new(D1Db::new(database), R2Blobs::new(bucket), clock, JsRandom, config).handle(api_request).await
                }
                (Err(_), _) => unconfigured(&api_request, format!("the D1 binding {DATABASE_BINDING} is missing")),
                (_, Err(_)) => unconfigured(&api_request, format!("the R2 binding {BLOBS_BINDING} is missing")),
            }
        }
        Err(error) => unconfigured(&api_request, format!("configuration: {error}")),
    };
    if d1_usage {
        let (read, written) = crate::d1::take_usage();
        response.headers.push(("x-test-d1-rows-read".into(), read.to_string()));
        response.headers.push(("x-test-d1-rows-written".into(), written.to_string()));
    }
    // Only faults are logged: Cloudflare records every request itself (`wrangler tail`, request
    // logs), and a console line per request costs milliseconds under `wrangler dev`.
    if let Some(note) = &response.log_note {
        console_error!("{method} {path} {} request_id={} fault={note:?}", response.status, response.request_id);
    }
    to_worker(response)
}

/// The Cron Trigger (`[triggers] crons` in `wrangler.toml`): one bounded slice of storage upkeep
/// — compaction of finished runs' output into R2, retention — the same core function the native
/// timer and `system.maintain` run.
#[event(scheduled)]
pub async fn scheduled(_event: ScheduledEvent, env: Env, _context: ScheduleContext) {
    let (config, _) = match Config::from_lookup(|name| lookup(&env, name)) {
        Ok(config) => config,
        Err(error) => return console_error!("storage upkeep: configuration: {error}"),
    };
    let manual_clock = lookup(&env, test_clock::ENV_VAR).as_deref() == Some("true");
    let (database, bucket) = match (env.d1(DATABASE_BINDING), env.bucket(BLOBS_BINDING)) {
        (Ok(database), Ok(bucket)) => (database, bucket),
        _ => return console_error!("storage upkeep: the bindings {DATABASE_BINDING} and {BLOBS_BINDING} are needed"),
    };
    let core = Core::new(D1Db::new(database), R2Blobs::new(bucket), EdgeClock { manual: manual_clock }, JsRandom, config);
    match run_slice(&core).await {
        Ok(report) => {
            if report.did_something() {
                console_log!("{}", report.summary());
            }
        }
        Err(error) => console_error!("storage upkeep failed: {} ({})", error.message, error.internal.unwrap_or_default()),
    }
}

fn request_id_of(request: &ApiRequest) -> String {
    request.header("x-request-id").and_then(sanitize_request_id).unwrap_or_else(|| new_id("req", 0, &JsRandom))
}

/// A 500 envelope for a Worker that cannot build its core (bad vars, missing binding).
fn unconfigured(request: &ApiRequest, detail: String) -> ApiResponse {
    ApiResponse::failure(&request_id_of(request), ApiError::internal(detail))
}
