//! `cargo bench -p node-agent --bench fleet_budget`: what a two-host fleet costs its control
//! plane at the default settings (SPEC §14), with release agents as real processes against the
//! native control plane on loopback, which counts every request by route and every table row
//! its database writes.
//!
//! 1. Idle: `mini` (primary) and `mac` (standby), capacity 1 each, for `BAA_BUDGET_IDLE_SECS`
//!    (default 600) after they settled: requests and rows written, scaled to a day. Targets:
//!    ≤ 20,000 requests and ≤ 30,000 rows written a day (Cloudflare's free plan: 100,000 each).
//! 2. Task → first step on the fleet: `BAA_BUDGET_TASKS` (default 6) tasks, one at a time,
//!    created at random moments of the idle pace; median and worst. Target ≤ 12 s.
//! 3. A step that prints a line every 100 ms for 20 s: the requests made while it runs, per
//!    second. Target ≤ 0.5.
//! 4. Crash failover: the leader killed with SIGKILL until the standby holds the lease (target
//!    ≤ TTL + 1 s = 31 s); the primary back (hand-back); graceful hand-over on SIGTERM (≤ 1 s).
//! 5. Task → first step embedded (`start --embedded`): median and worst. Target ≤ 1 s.
//!
//! Rows read per idle sync are measured on D1 itself: see the `edge_latency` benchmark of
//! control-worker (`--d1-usage`), which reads D1's own `rows_read` with 10,000 finished tasks.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const TTL_SEC: u64 = 30;
const DAY_SECS: f64 = 86_400.0;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

/// An agent at the default intervals (the test harness's are short).
fn fleet_agent(plane: &ControlPlane, name: &str, host: &str, role: &str, dir: &std::path::Path) -> Agent {
    let mut agent = Agent::new(&plane.base(), name, dir);
    for (option, value) in [
        ("--host", host),
        ("--lease-ttl-sec", "30"),
        ("--lease-renew-interval-ms", "5000"),
        ("--heartbeat-interval-ms", "30000"),
        ("--step-heartbeat-interval-ms", "5000"),
        ("--kill-grace-ms", "10000"),
        ("--capacity", "1"),
    ] {
        agent = agent.arg(option, value);
    }
    agent.arg("--role", role)
}

/// The lease as the control plane sees it: (holder, live).
fn holder(base: &str) -> (Option<String>, bool) {
    let state = http(base, "GET", "/v1/system/state", ADMIN, None)["data"].clone();
    (state["holder_id"].as_str().map(str::to_string), state["leader_live"].as_bool().unwrap_or(false))
}

fn wait_for_holder(base: &str, who: &str, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if holder(base) == (Some(who.to_string()), true) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Seconds from creation until the task's first step is running (or done).
fn first_step_latency(base: &str, token: &str, body: Value) -> f64 {
    let created = Instant::now();
    let answer = http(base, "POST", "/v1/tasks", token, Some(body));
    let task_id = answer["data"]["task_id"].as_str().unwrap_or_else(|| panic!("{answer}")).to_string();
    loop {
        let detail = http(base, "GET", &format!("/v1/tasks/{task_id}"), token, None)["data"].clone();
        if matches!(detail["steps"][0]["status"].as_str(), Some("running" | "succeeded" | "failed")) {
            return created.elapsed().as_secs_f64();
        }
        assert!(created.elapsed() < Duration::from_secs(120), "task {task_id} never started: {detail:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A pseudo-random pause in [0, limit): tasks arrive at any moment of the idle pace.
fn jitter(limit: Duration, salt: u64) -> Duration {
    let nanos = (wall_ms() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) % limit.as_millis().max(1) as u64;
    Duration::from_millis(nanos)
}

fn print_latencies(what: &str, latencies: &mut [f64], target: f64) {
    let worst = latencies.iter().cloned().fold(0.0, f64::max);
    println!("  {what}: median {:.2} s, worst {worst:.2} s over {} tasks (target <= {target} s)", median(latencies), latencies.len());
}

fn idle_fleet(plane: &ControlPlane, idle_secs: u64) {
    let meter = plane.meter.as_ref().unwrap();
    meter.reset();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(idle_secs));
    let elapsed = started.elapsed().as_secs_f64();
    let scale = DAY_SECS / elapsed;
    let requests = meter.requests();
    let total = meter.total_requests() as f64;
    println!("idle two-host fleet, {elapsed:.0} s measured:");
    println!("  requests   {:.0} a day (target <= 20,000; was 259,000 before agents.sync)", total * scale);
    for (route, count) in &requests {
        println!("    {route:<22} {:.0} a day", *count as f64 * scale);
    }
    println!("  rows written {:.0} a day (table rows; target <= 30,000)", meter.rows_written() as f64 * scale);
}

fn printing_step(plane: &ControlPlane, repo: &std::path::Path) {
    let meter = plane.meter.as_ref().unwrap();
    let goal = "for i in $(seq 200); do echo \"line $i of a steady step\"; sleep 0.1; done";
    let task_id = plane.create_task(json!({"repo": repo, "task_type": "shell", "title": "steady output", "goal": goal}));
    let started = loop {
        let detail = plane.task(&task_id);
        if detail["steps"][0]["status"] == "running" {
            meter.reset();
            break Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    plane.wait_task(&task_id, &["succeeded", "failed"], Duration::from_secs(120));
    let elapsed = started.elapsed().as_secs_f64();
    // The agents' requests only, not this benchmark's own polling.
    let requests: Vec<(String, u64)> =
        meter.requests().into_iter().filter(|(route, _)| !AUDIENCE_ROUTES.contains(&route.as_str())).collect();
    let total = requests.iter().map(|(_, count)| *count).sum::<u64>() as f64;
    println!("a step printing a line every 100 ms ({elapsed:.1} s, both hosts' syncs included):");
    println!("  {:.2} requests a second (target <= 0.5)", total / elapsed);
    for (route, count) in &requests {
        println!("    {route:<22} {count}");
    }
}

/// Routes only people and this benchmark call.
const AUDIENCE_ROUTES: &[&str] = &["tasks.create", "tasks.read", "tasks.list", "tasks.logs.read", "runs.read", "system.state"];

fn embedded_latency(dir: &std::path::Path, repo: &std::path::Path, tasks: u64) {
    let root = dir.join("embedded");
    let log = dir.join("embedded.log");
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args(["start", "--embedded", "--control-listen", "127.0.0.1:0", "--local-api", "off", "--host", "solo"])
        .arg("--runtime-root")
        .arg(&root)
        .env_clear()
        .env("HOME", dir)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONTROL_API_BROWSER_ADMIN_TOKEN", ADMIN)
        .env("BAA_SHARED_TOKEN", SERVICE)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let control = logged_address(|| std::fs::read_to_string(&log).unwrap_or_default(), "embedded control plane on http://");
    let base = format!("http://{control}");
    let ready = Instant::now();
    while try_http(&base, "GET", "/v1/system/state", ADMIN, None).is_err() {
        assert!(ready.elapsed() < Duration::from_secs(30), "the embedded control plane did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    let mut latencies = Vec::new();
    for index in 0..tasks {
        std::thread::sleep(jitter(Duration::from_secs(1), index));
        let body = json!({"repo": repo, "task_type": "shell", "title": format!("embedded {index}"), "goal": "true"});
        latencies.push(first_step_latency(&base, ADMIN, body));
    }
    println!("embedded (one process):");
    print_latencies("task -> first step", &mut latencies, 1.0);
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    let idle_secs = env_number("BAA_BUDGET_IDLE_SECS", 600);
    let tasks = env_number("BAA_BUDGET_TASKS", 6);
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start_metered(dir.path(), &[]);
    let base = plane.base();
    let mut mini = fleet_agent(&plane, "mini-main", "mini", "primary", dir.path());
    let mut mac = fleet_agent(&plane, "mac-standby", "mac", "standby", dir.path());
    mini.spawn();
    mac.spawn();
    wait_for_holder(&base, "mini-main", Duration::from_secs(30)).expect("mini leads");
    std::thread::sleep(Duration::from_secs(15));

    idle_fleet(&plane, idle_secs);

    let mut latencies = Vec::new();
    for index in 0..tasks {
        std::thread::sleep(jitter(Duration::from_secs(10), index));
        let body = json!({"repo": repo, "task_type": "shell", "title": format!("latency {index}"), "goal": "true"});
        latencies.push(first_step_latency(&base, ADMIN, body));
    }
    println!("the fleet:");
    print_latencies("task -> first step", &mut latencies, 12.0);

    printing_step(&plane, &repo);

    // Crash failover: the control plane's view, polled every 50 ms.
    let killed = Instant::now();
    mini.kill9();
    let failover = wait_for_holder(&base, "mac-standby", Duration::from_secs(TTL_SEC + 30)).map(|_| killed.elapsed());
    mini.spawn();
    let hand_back = wait_for_holder(&base, "mini-main", Duration::from_secs(TTL_SEC + 30));
    let stopping = Instant::now();
    mini.terminate();
    let graceful = wait_for_holder(&base, "mac-standby", Duration::from_secs(TTL_SEC + 30)).map(|_| stopping.elapsed());
    println!("leadership (TTL {TTL_SEC} s):");
    println!("  crash failover (kill -9 -> standby leads) {failover:.1?} (target <= {} s)", TTL_SEC + 1);
    println!("  hand-back to the restarted primary        {hand_back:.1?}");
    println!("  graceful hand-over (SIGTERM -> standby)   {graceful:.1?} (target <= 1 s)");
    drop(mac);

    embedded_latency(dir.path(), &repo, tasks);
}
