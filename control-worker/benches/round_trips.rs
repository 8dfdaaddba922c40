//! `cargo bench -p control-worker --bench round_trips`: database round trips per route, then
//! requests per second of the native server over loopback for the hottest routes. Every loop
//! is bounded in count and time.

#[path = "../tests/api/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "../tests/api/round_trips.rs"]
mod round_trips;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use control_worker::core::config::Config;
use control_worker::native::{os_random, start_in_thread, ServerOptions, SystemClock};
use serde_json::{json, Value};

const TOKEN: &str = "bench-service";
const ADMIN: &str = "bench-admin";
const CLIENTS: usize = 2;
const PHASE_LIMIT: Duration = Duration::from_secs(3);
const TASKS: usize = 3_000;

fn main() {
    println!("database round trips per route (hot routes must be 1)");
    let counts = round_trips::measure();
    for (route, count) in &counts {
        let hot = round_trips::HOT_ROUTES.contains(route);
        println!("  {route:<24} {count}{}", if hot { "  (hot)" } else { "" });
    }
    let hot_ok = round_trips::HOT_ROUTES.iter().all(|route| counts[route] == 1);
    println!("  hot routes at one round trip: {}", if hot_ok { "yes" } else { "NO" });

    let dir = tempfile::tempdir().unwrap();
    let (config, _) = Config::from_pairs(&[("CONTROL_API_BROWSER_ADMIN_TOKEN", ADMIN), ("BAA_SHARED_TOKEN", TOKEN)]).unwrap();
    let server = start_in_thread(ServerOptions::loopback(dir.path().join("bench.db"), config), SystemClock, os_random()).unwrap();
    let base = server.base_url();
    println!("\nloopback throughput of the native server ({CLIENTS} keep-alive clients, file database, WAL)");

    let heartbeat = phase(&base, "controllers.heartbeat", usize::MAX, |client, _| {
        (
            "/v1/controllers/heartbeat".into(),
            json!({"controller_id": format!("node-{client}"), "host": "mini", "role": "primary", "priority": 100, "status": "ok"}),
        )
    });
    let lease = post(&base, "/v1/leader/acquire", TOKEN, json!({"controller_id": "node-0", "host": "mini", "ttl_sec": 600}));
    let term = lease["term"].as_i64().unwrap();
    for index in 0..TASKS {
        post(&base, "/v1/tasks", ADMIN, json!({"repo": "/r", "task_type": "shell", "title": format!("t{index}"), "goal": "true"}));
    }
    let claim = phase(&base, "tasks.claim", TASKS, move |_, _| {
        ("/v1/tasks/claim".into(), json!({"controller_id": "node-0", "host": "mini", "term": term}))
    });
    let mut planned = 0;
    let mut page = get(&base, "/v1/tasks?status=planning&limit=200");
    loop {
        for task in page["tasks"].as_array().unwrap() {
            let task_id = task["task_id"].as_str().unwrap();
            post(
                &base,
                &format!("/v1/tasks/{task_id}/plan"),
                TOKEN,
                json!({"controller_id": "node-0", "term": term,
                "planner_provider": "bench", "planning_strategy": "bench",
                "steps": [{"step_kind": "shell", "worker_kind": "shell", "title": "s", "command": "true"}]}),
            );
            planned += 1;
        }
        let Some(cursor) = page["next_cursor"].as_str().map(str::to_string) else { break };
        page = get(&base, &format!("/v1/tasks?status=planning&limit=200&cursor={cursor}"));
    }
    let step_claim = phase(&base, "steps.claim", planned, |client, _| {
        ("/v1/steps/claim".into(), json!({"worker_id": format!("node-{client}"), "host": "mini", "capacity": 1}))
    });
    println!("\nsummary: heartbeat {:.0} req/s, tasks.claim {:.0} req/s, steps.claim {:.0} req/s", heartbeat, claim, step_claim);
    server.stop();
}

fn post(base: &str, path: &str, token: &str, body: Value) -> Value {
    let auth = format!("Bearer {token}");
    let response =
        client::request(base, "POST", path, &[("authorization", &auth), ("content-type", "application/json")], body.to_string().as_bytes());
    assert!(response.status < 300, "{path}: {}", response.text());
    response.json()["data"].clone()
}

fn get(base: &str, path: &str) -> Value {
    let auth = format!("Bearer {ADMIN}");
    let response = client::request(base, "GET", path, &[("authorization", &auth)], b"");
    response.json()["data"].clone()
}

/// Runs `CLIENTS` threads sending requests made by `make(client, n)` until `limit` requests
/// in all or [`PHASE_LIMIT`]; prints and returns requests per second.
fn phase(base: &str, name: &str, limit: usize, make: impl Fn(usize, usize) -> (String, Value) + Send + Sync + 'static) -> f64 {
    let make = Arc::new(make);
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (base, make, sent) = (base.to_string(), make.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut connection = client::Connection::open(&base).unwrap();
                let auth = format!("Bearer {TOKEN}");
                let mut latencies = Vec::new();
                loop {
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    if n >= limit || started.elapsed() > PHASE_LIMIT {
                        sent.fetch_sub(1, Ordering::Relaxed);
                        break;
                    }
                    let (path, body) = make(client, n);
                    let begun = Instant::now();
                    let response = connection
                        .send(
                            "POST",
                            &path,
                            &[("authorization", &auth), ("content-type", "application/json")],
                            body.to_string().as_bytes(),
                            true,
                        )
                        .unwrap();
                    latencies.push(begun.elapsed());
                    assert_eq!(response.status, 200, "{}", response.text());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect();
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let rate = latencies.len() as f64 / elapsed;
    let median = latencies.get(latencies.len() / 2).copied().unwrap_or_default();
    let p99 = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default();
    println!(
        "  {name:<22} {:>6} requests in {elapsed:.2} s: {rate:>7.0} req/s, median {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        median.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
    rate
}
