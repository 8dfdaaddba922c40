//! `cargo bench -p node-agent --bench footprint`: one agent (release build) at the default
//! intervals against a local control plane; prints RSS, threads and CPU use read from /proc.
//!
//! - idle for 60 s (`BAA_FOOTPRINT_SECS` to change);
//! - supervising quiet steps: capacity 1 with one step, then capacity 4 with four steps, each
//!   step a `sleep 30` (`BAA_FOOTPRINT_QUIET_SECS`, default 20 s measured while they sleep).
//!
//! Targets: RSS ≤ 15 MB, CPU < 0.1 % of a core in every phase, ≤ 4 threads.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap()
}

/// utime + stime in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

const TICKS_PER_SECOND: f64 = 100.0; // USER_HZ on Linux

struct Footprint {
    peak_rss_kb: u64,
    peak_threads: u64,
    cpu_seconds: f64,
    elapsed: f64,
}

fn measure(pid: u32, seconds: u64) -> Footprint {
    let start_ticks = cpu_ticks(pid);
    let started = Instant::now();
    let (mut peak_rss_kb, mut peak_threads) = (0, 0);
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        peak_rss_kb = peak_rss_kb.max(status_field(pid, "VmRSS:"));
        peak_threads = peak_threads.max(status_field(pid, "Threads:"));
    }
    let cpu_seconds = (cpu_ticks(pid) - start_ticks) as f64 / TICKS_PER_SECOND;
    Footprint { peak_rss_kb, peak_threads, cpu_seconds, elapsed: started.elapsed().as_secs_f64() }
}

fn print(what: &str, footprint: &Footprint) {
    println!("{what}:");
    println!("  peak RSS   {:.1} MB (target <= 15 MB)", footprint.peak_rss_kb as f64 / 1024.0);
    println!("  threads    {} (target <= 4)", footprint.peak_threads);
    let elapsed = footprint.elapsed;
    // /proc counts CPU time in 10 ms ticks: below one tick, say so rather than print 0.
    let resolution = 100.0 * (1.0 / TICKS_PER_SECOND) / elapsed;
    if footprint.cpu_seconds == 0.0 {
        println!("  CPU        < {resolution:.3} % of a core (not one 10 ms tick in {elapsed:.0} s; target < 0.1 %)");
    } else {
        let percent = 100.0 * footprint.cpu_seconds / elapsed;
        println!("  CPU        {percent:.3} % of a core ({:.2} s in {elapsed:.0} s; target < 0.1 %)", footprint.cpu_seconds);
    }
}

/// An agent at the default intervals (the test harness's are short).
fn default_agent(plane: &ControlPlane, name: &str, dir: &std::path::Path, capacity: usize) -> Agent {
    let mut agent = Agent::new(&plane.base(), name, dir);
    for (option, value) in [
        ("--lease-ttl-sec", "30"),
        ("--lease-renew-interval-ms", "5000"),
        ("--heartbeat-interval-ms", "30000"),
        ("--step-heartbeat-interval-ms", "5000"),
        ("--kill-grace-ms", "10000"),
        ("--capacity", &capacity.to_string()),
    ] {
        agent = agent.arg(option, value);
    }
    agent
}

fn main() {
    if !std::path::Path::new("/proc/self/stat").exists() {
        println!("footprint: skipped: it reads RSS, threads and CPU from /proc, which this platform (macOS) lacks");
        return;
    }
    let idle_seconds: u64 = std::env::var("BAA_FOOTPRINT_SECS").ok().and_then(|value| value.parse().ok()).unwrap_or(60);
    let quiet_seconds: u64 = std::env::var("BAA_FOOTPRINT_QUIET_SECS").ok().and_then(|value| value.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());

    let mut idle = default_agent(&plane, "idle-main", dir.path(), 1);
    idle.spawn();
    // Let it register, acquire and settle before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let footprint = measure(idle.pid(), idle_seconds);
    idle.terminate();
    print(&format!("node-agent idle for {idle_seconds} s at the default pace (one agents.sync every 10 s, the control plane's idle interval; leader)"), &footprint);

    for capacity in [1usize, 4] {
        let name = format!("quiet{capacity}-main");
        let mut agent = default_agent(&plane, &name, dir.path(), capacity);
        agent.spawn();
        let tasks: Vec<String> = (0..capacity)
            .map(|index| {
                plane.create_task(json!({"repo": repo, "task_type": "shell", "title": format!("quiet {index}"), "goal": "sleep 30"}))
            })
            .collect();
        let started = Instant::now();
        while !tasks.iter().all(|task_id| plane.task(task_id)["steps"][0]["status"] == "running") {
            assert!(started.elapsed() < Duration::from_secs(30), "steps not running: {}", agent.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
        // The first heartbeat and the first shipping turns are over after a second or two.
        std::thread::sleep(Duration::from_secs(2));
        let footprint = measure(agent.pid(), quiet_seconds.min(25));
        print(
            &format!(
                "node-agent supervising {capacity} quiet step(s) (sleep 30) for {quiet_seconds} s, capacity {capacity}, default intervals"
            ),
            &footprint,
        );
        for task_id in &tasks {
            http(&plane.base(), "POST", &format!("/v1/tasks/{task_id}/cancel"), ADMIN, Some(json!({"reason": "benchmark over"})));
        }
        agent.terminate();
    }
}
