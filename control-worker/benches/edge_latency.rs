//! `cargo bench -p control-worker --bench edge_latency` (after `scripts/build-worker`):
//! median and p99 latency of `controllers.heartbeat` and `tasks.claim` on the Rust Worker and on
//! a minimal JavaScript Worker running the same single D1 statement (`bench/js-worker`), both
//! under `wrangler dev` with a local D1, printed side by side as a ratio. Bounded: a fixed
//! number of requests, in alternating blocks so drift affects both equally.

#[path = "../tests/api/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "support/wrangler_dev.rs"]
mod wrangler_dev;

use std::process::Command;
use std::time::{Duration, Instant};

use wrangler_dev::{free_port, root, start, worker_dev, Server};

use serde_json::{json, Value};

const ADMIN: &str = "bench-admin-token";
const SERVICE: &str = "bench-service-token";
const REQUESTS: usize = 600;
const BLOCK: usize = 50;

/// POSTs `body` (or GETs when it is null) and returns the latency and the parsed answer.
fn post(connection: &mut client::Connection, path: &str, token: &str, body: &Value) -> (Duration, Value) {
    let auth = format!("Bearer {token}");
    let started = Instant::now();
    let response = if body.is_null() {
        connection.send("GET", path, &[], b"", true).unwrap()
    } else {
        connection
            .send("POST", path, &[("authorization", &auth), ("content-type", "application/json")], body.to_string().as_bytes(), true)
            .unwrap()
    };
    let elapsed = started.elapsed();
    assert!(response.status < 300, "{path}: {}", response.text());
    (elapsed, if body.is_null() { Value::Null } else { response.json() })
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize].as_secs_f64() * 1000.0
}

/// Runs `REQUESTS` calls of `make(n)` on both servers in alternating blocks.
fn compare(name: &str, rust: &Server, js: &Server, make: impl Fn(usize) -> (&'static str, Value)) -> (f64, f64) {
    let (mut rust_connection, mut js_connection) =
        (client::Connection::open(&rust.base).unwrap(), client::Connection::open(&js.base).unwrap());
    let (mut rust_times, mut js_times) = (Vec::new(), Vec::new());
    for block in 0..REQUESTS / BLOCK {
        for offset in 0..BLOCK {
            let (path, body) = make(block * BLOCK + offset);
            rust_times.push(post(&mut rust_connection, path, SERVICE, &body).0);
        }
        for offset in 0..BLOCK {
            let (path, body) = make(block * BLOCK + offset);
            js_times.push(post(&mut js_connection, path, SERVICE, &body).0);
        }
    }
    rust_times.sort();
    js_times.sort();
    let (rust_median, js_median) = (percentile(&rust_times, 0.5), percentile(&js_times, 0.5));
    let (rust_p99, js_p99) = (percentile(&rust_times, 0.99), percentile(&js_times, 0.99));
    println!(
        "  {name:<22} rust median {rust_median:6.2} ms p99 {rust_p99:6.2} ms | js median {js_median:6.2} ms p99 {js_p99:6.2} ms | ratio median {:.2}x p99 {:.2}x",
        rust_median / js_median,
        rust_p99 / js_p99
    );
    (rust_median / js_median, rust_p99 / js_p99)
}

fn main() {
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let rust_port = free_port();
    let mut rust_command = worker_dev(rust_port, &dir.path().join("rust"));
    rust_command.env("CONTROL_API_BROWSER_ADMIN_TOKEN", ADMIN).env("BAA_SHARED_TOKEN", SERVICE);
    let rust = start(rust_command, rust_port, &dir.path().join("rust.log"));
    let js_port = free_port();
    let js_state = dir.path().join("js");
    let mut js_command = Command::new("bash");
    js_command.current_dir(&root).arg("-c").arg(format!(
        "source scripts/edge-env && wrangler d1 migrations apply CONTROL_DB --local -c bench/js-worker/wrangler.toml --persist-to {state} \
         && exec wrangler dev -c bench/js-worker/wrangler.toml --ip 127.0.0.1 --port {js_port} --local --persist-to {state} \
            --show-interactive-dev-session=false --log-level warn",
        state = js_state.display()
    ));
    let js = start(js_command, js_port, &dir.path().join("js.log"));

    // The same state on both: a live lease for node-0 and REQUESTS queued tasks.
    let mut connection = client::Connection::open(&rust.base).unwrap();
    let lease =
        post(&mut connection, "/v1/leader/acquire", SERVICE, &json!({"controller_id": "node-0", "host": "mini", "ttl_sec": 3600})).1;
    let term = lease["data"]["term"].as_i64().unwrap();
    for index in 0..REQUESTS {
        post(
            &mut connection,
            "/v1/tasks",
            ADMIN,
            &json!({"repo": "/r", "task_type": "shell", "title": format!("t{index}"), "goal": "true"}),
        );
    }
    let mut js_connection = client::Connection::open(&js.base).unwrap();
    post(&mut js_connection, "/seed", SERVICE, &json!({"controller_id": "node-0", "tasks": REQUESTS}));

    println!("edge latency under wrangler dev (workerd, local D1), {REQUESTS} sequential requests per route per worker");
    let heartbeat = |index: usize| {
        (
            "/v1/controllers/heartbeat",
            json!({"controller_id": format!("node-{}", index % 4), "host": "mini", "role": "primary", "priority": 100, "status": "ok"}),
        )
    };
    compare("warm-up (heartbeat)", &rust, &js, heartbeat);
    compare("healthz (no D1)", &rust, &js, |_| ("/healthz", Value::Null));
    let (heartbeat_median, heartbeat_p99) = compare("controllers.heartbeat", &rust, &js, heartbeat);
    let (claim_median, claim_p99) = compare("tasks.claim", &rust, &js, |_| {
        ("/v1/tasks/claim", json!({"controller_id": "node-0", "host": "mini", "term": term, "limit": 1}))
    });
    println!(
        "summary: rust/js latency ratio heartbeat median {heartbeat_median:.2}x p99 {heartbeat_p99:.2}x; tasks.claim median {claim_median:.2}x p99 {claim_p99:.2}x (target <= 1.3x)"
    );
}
