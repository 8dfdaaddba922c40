//! `cargo bench -p node-agent --bench footprint`: one agent (release build) running its loops
//! at the default intervals against a local control plane, idle for 60 s
//! (`BAA_FOOTPRINT_SECS` to change); prints RSS, threads and CPU use read from /proc.
//! Targets: RSS ≤ 15 MB, CPU < 0.1 % of a core, ≤ 4 threads.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use control_worker::core::config::Config;
use control_worker::native::{os_random, start_in_thread, ServerOptions, SystemClock};

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

fn main() {
    let seconds: u64 = std::env::var("BAA_FOOTPRINT_SECS").ok().and_then(|value| value.parse().ok()).unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = Config::from_pairs(&[("BAA_SHARED_TOKEN", "footprint-token")]).unwrap();
    let server = start_in_thread(ServerOptions::loopback(dir.path().join("control.db"), config), SystemClock, os_random()).unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args(["start", "--control-api-base", &server.base_url(), "--local-api", "off", "--runtime-root"])
        .arg(dir.path().join("agent"))
        .env_clear()
        .env("BAA_SHARED_TOKEN", "footprint-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = agent.id();
    // Let it register, acquire and settle before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let start_ticks = cpu_ticks(pid);
    let started = Instant::now();
    let mut peak_rss_kb = 0;
    let mut peak_threads = 0;
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        peak_rss_kb = peak_rss_kb.max(status_field(pid, "VmRSS:"));
        peak_threads = peak_threads.max(status_field(pid, "Threads:"));
    }
    let cpu_seconds = (cpu_ticks(pid) - start_ticks) as f64 / ticks_per_second;
    let cpu_percent = 100.0 * cpu_seconds / started.elapsed().as_secs_f64();
    let _ = agent.kill();
    let _ = agent.wait();
    println!("node-agent idle for {seconds} s at the default intervals (heartbeat and lease 5 s, scheduler 1 s, runner claims 2 s; leader):");
    println!("  peak RSS   {:.1} MB (target <= 15 MB)", peak_rss_kb as f64 / 1024.0);
    println!("  threads    {peak_threads} (target <= 4)");
    let elapsed = started.elapsed().as_secs_f64();
    // /proc counts CPU time in 10 ms ticks: below one tick, say so rather than print 0.
    let resolution = 100.0 * (1.0 / ticks_per_second) / elapsed;
    if cpu_seconds == 0.0 {
        println!("  CPU        < {resolution:.3} % of a core (not one 10 ms tick in {elapsed:.0} s; target < 0.1 %)");
    } else {
        println!("  CPU        {cpu_percent:.3} % of a core ({cpu_seconds:.2} s in {elapsed:.0} s; target < 0.1 %)");
    }
    server.stop();
}
