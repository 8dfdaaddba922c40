//! `cargo bench -p node-agent --bench runner`: the runner's figures, with a release agent
//! against the control plane on loopback and a scratch git repository.
//!
//! - output to disk: a step printing 500 MB (`BAA_BENCH_OUTPUT_MB`), MB/s from the run's own
//!   summary (process start to exit), against the same command writing to a file directly.
//!   Target ≥ 200 MB/s.
//! - uploads per second per run: a chatty step printing for 20 s (`BAA_BENCH_CHATTY_SECS`);
//!   upload requests (logs and checkpoints) counted by the agent, over the step's duration.
//!   Target ≤ 1.5.
//! - task created → first step running: 10 tasks (`BAA_BENCH_LATENCY_TASKS`) with the agent's
//!   default intervals; median and worst. Target ≤ 2 s.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn summary_of(plane: &ControlPlane, detail: &Value) -> Value {
    let run_id = detail["steps"][0]["current_run_id"].as_str().unwrap();
    let run = http(&plane.base(), "GET", &format!("/v1/runs/{run_id}"), ADMIN, None)["data"].clone();
    let summary =
        run["checkpoints"].as_array().unwrap().iter().find(|checkpoint| checkpoint["checkpoint_type"] == "summary").unwrap().clone();
    serde_json::from_str(summary["content"].as_str().unwrap()).unwrap()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());

    // Task created → first step running, default intervals (the control plane's idle pace
    // included: what a fleet sees).
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path());
    for (option, value) in [
        ("--heartbeat-interval-ms", "30000"),
        ("--lease-renew-interval-ms", "5000"),
        ("--lease-ttl-sec", "30"),
        ("--step-heartbeat-interval-ms", "5000"),
    ] {
        agent = agent.arg(option, value);
    }
    agent.spawn();
    std::thread::sleep(Duration::from_secs(2));
    let mut latencies = Vec::new();
    for index in 0..env_number("BAA_BENCH_LATENCY_TASKS", 10) {
        let created = Instant::now();
        let task_id =
            plane.create_task(json!({"repo": repo, "task_type": "shell", "title": format!("latency {index}"), "goal": "sleep 1"}));
        loop {
            let step = plane.task(&task_id)["steps"][0].clone();
            if matches!(step["status"].as_str(), Some("running" | "succeeded")) {
                latencies.push(created.elapsed().as_secs_f64());
                break;
            }
            assert!(created.elapsed() < Duration::from_secs(30), "{step:#}\n{}", agent.log_text());
            std::thread::sleep(Duration::from_millis(10));
        }
        plane.wait_task(&task_id, &["succeeded"], Duration::from_secs(30));
        // Spread the creations over the scheduler's period.
        std::thread::sleep(Duration::from_millis(100 + (index * 337) % 1000));
    }
    let worst = latencies.iter().cloned().fold(0.0, f64::max);
    let latency_median = median(&mut latencies);
    println!(
        "task created -> first step running: median {:.2} s, worst {:.2} s over {} tasks (target <= 2 s)",
        latency_median,
        worst,
        latencies.len()
    );
    agent.terminate();

    // Output to disk.
    let megabytes = env_number("BAA_BENCH_OUTPUT_MB", 500);
    let command = format!("yes 'baa-conductor runner output benchmark line, sixty-four bytes long......' | head -c {}", megabytes << 20);
    let direct_file = dir.path().join("direct.out");
    let write_directly = || {
        let started = Instant::now();
        let status =
            std::process::Command::new("sh").arg("-c").arg(&command).stdout(std::fs::File::create(&direct_file).unwrap()).status().unwrap();
        assert!(status.success());
        let seconds = started.elapsed().as_secs_f64();
        let _ = std::fs::remove_file(&direct_file);
        seconds
    };
    let direct_before = write_directly();
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--log-ship-limit-bytes", "1048576");
    agent.spawn();
    let task_id = plane.create_task(json!({"repo": repo, "task_type": "shell", "title": "output", "goal": command}));
    let detail = plane.wait_task(&task_id, &["succeeded", "failed"], Duration::from_secs(600));
    assert_eq!(detail["task"]["status"], "succeeded", "{detail:#}");
    let summary = summary_of(&plane, &detail);
    assert_eq!(summary["stdout_bytes"].as_u64(), Some(megabytes << 20));
    let runner_seconds = summary["duration_ms"].as_f64().unwrap() / 1000.0;
    // Writing the same file directly, before and after (the page cache favours neither).
    let direct_seconds = (direct_before + write_directly()) / 2.0;
    println!(
        "output to disk: {megabytes} MB in {runner_seconds:.2} s = {:.0} MB/s through the runner; {:.0} MB/s writing the file directly; runner/direct throughput ratio {:.2} (target >= 200 MB/s)",
        megabytes as f64 / runner_seconds,
        megabytes as f64 / direct_seconds,
        direct_seconds / runner_seconds
    );
    agent.terminate();

    // Uploads per second under a chatty step.
    let seconds = env_number("BAA_BENCH_CHATTY_SECS", 20);
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path());
    agent.spawn();
    let chatty = format!("end=$(($(date +%s)+{seconds})); i=0; while [ $(date +%s) -lt $end ]; do i=$((i+1)); echo \"chatty line $i\"; echo \"err $i\" >&2; done");
    let task_id = plane.create_task(json!({"repo": repo, "task_type": "shell", "title": "chatty", "goal": chatty}));
    let detail = plane.wait_task(&task_id, &["succeeded", "failed"], Duration::from_secs(seconds + 120));
    assert_eq!(detail["task"]["status"], "succeeded", "{detail:#}");
    let summary = summary_of(&plane, &detail);
    let step_seconds = summary["duration_ms"].as_f64().unwrap() / 1000.0;
    let run_id = detail["steps"][0]["current_run_id"].as_str().unwrap().to_string();
    let started = Instant::now();
    let uploads = loop {
        let log = agent.log_text();
        if let Some(line) = log.lines().find(|line| line.contains(&format!("run {run_id}:")) && line.contains("uploads=")) {
            let count: f64 = line.split("uploads=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
            break count;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines = plane.log_text(&task_id, "stdout").lines().count();
    println!(
        "uploads under a chatty step: {uploads} requests over a {step_seconds:.1} s step = {:.2} per second ({lines} stdout lines shipped; target <= 1.5)",
        uploads / step_seconds
    );
    agent.terminate();
}
