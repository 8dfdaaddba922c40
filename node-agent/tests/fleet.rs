//! Two real `node-agent start` processes (primary `mini-main`, standby `mac-standby`; TTL 3 s,
//! renew 1 s) against a real control plane on loopback: failover after kill -9, hand-back to
//! the primary, fast failover after SIGTERM. Every lease state is recorded; the agents' own logs
//! give each one's leadership intervals, which must never overlap.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{http, wait_until, wall_ms};
use control_worker::core::config::Config;
use control_worker::native::{os_random, start_in_thread, ServerOptions, SystemClock};
use serde_json::json;

const ADMIN: &str = "fleet-admin-token";
const SERVICE: &str = "fleet-service-token";
const TTL_SEC: u64 = 3;
const RENEW_MS: u64 = 1_000;

struct Agent {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    fn start(base: &str, name: &'static str, host: &str, role: &str, dir: &Path) -> Agent {
        let log = dir.join(format!("{name}.log"));
        let mut agent = Agent { name, child: None, log };
        agent.spawn(base, host, role, dir);
        agent
    }

    fn spawn(&mut self, base: &str, host: &str, role: &str, dir: &Path) {
        let log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_node-agent"))
            .args(["start", "--control-api-base", base, "--node-id", self.name, "--host", host, "--role", role])
            .args(["--lease-ttl-sec", &TTL_SEC.to_string(), "--lease-renew-interval-ms", &RENEW_MS.to_string()])
            .args(["--heartbeat-interval-ms", "1000", "--local-api", "off", "--capacity", "0"])
            .arg("--runtime-root")
            .arg(dir.join(self.name))
            .env_clear()
            .env("HOME", dir)
            .env("BAA_SHARED_TOKEN", SERVICE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn signal(&mut self, signal: &str) -> u64 {
        let pid = self.child.as_ref().unwrap().id();
        let at = wall_ms();
        Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
        at
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        common::wait_exit(&mut child, Duration::from_secs(10), self.name)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Leadership intervals from the agent's log: `(term, start_ms, end_ms)`; a run cut short
    /// by kill -9 ends at the kill.
    fn intervals(&self, kills: &[u64], end_of_test: u64) -> Vec<(i64, u64, u64)> {
        let mut intervals = Vec::new();
        let mut open: Option<(i64, u64)> = None;
        let mut kills = kills.to_vec();
        kills.sort();
        for line in self.log_text().lines() {
            let Some((stamp, message)) = line.split_once(' ') else { continue };
            let Ok(stamp) = chrono::DateTime::parse_from_rfc3339(stamp) else { continue };
            let at = stamp.timestamp_millis() as u64;
            if let Some((term, start)) = open {
                if let Some(kill) = kills.iter().find(|kill| **kill >= start && **kill <= at) {
                    intervals.push((term, start, *kill));
                    open = None;
                }
            }
            if let Some(term) = message.strip_prefix("lease: leading term=") {
                open = Some((term.trim().parse().unwrap(), at));
            } else if message.starts_with("lease: stopped leading") || message.starts_with("lease: released") {
                if let Some((term, start)) = open.take() {
                    intervals.push((term, start, at));
                }
            }
        }
        if let Some((term, start)) = open {
            let end = kills.iter().find(|kill| **kill >= start).copied().unwrap_or(end_of_test);
            intervals.push((term, start, end));
        }
        intervals
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One observation of the lease by the control plane: (server now, holder, term, live).
type Observation = (i64, Option<String>, i64, bool);

fn wait_for_holder(observations: &Arc<Mutex<Vec<Observation>>>, holder: &str, since: usize, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let seen = observations.lock().unwrap();
        if seen[since.min(seen.len())..].iter().any(|(_, who, _, live)| *live && who.as_deref() == Some(holder)) {
            return Some(started.elapsed());
        }
        drop(seen);
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn create_task(base: &str, title: &str) -> String {
    let answer = http(
        base,
        "POST",
        "/v1/tasks",
        ADMIN,
        Some(json!({"repo": "/srv/repo", "task_type": "shell", "title": title, "goal": "true", "acceptance": ["true"]})),
    );
    answer["data"]["task_id"].as_str().unwrap().to_string()
}

fn wait_planned(base: &str, task_ids: &[String], limit: Duration) {
    wait_until(limit, || {
        let statuses: Vec<String> = task_ids
            .iter()
            .map(|task_id| http(base, "GET", &format!("/v1/tasks/{task_id}"), ADMIN, None)["data"]["status"].as_str().unwrap().to_string())
            .collect();
        match statuses.iter().all(|status| status == "running") {
            true => Ok(()),
            false => Err(format!("tasks not planned: {statuses:?}")),
        }
    });
}

#[test]
fn failover_hand_back_and_release_with_never_two_leaders() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = Config::from_pairs(&[("CONTROL_API_BROWSER_ADMIN_TOKEN", ADMIN), ("BAA_SHARED_TOKEN", SERVICE)]).unwrap();
    let server = start_in_thread(ServerOptions::loopback(dir.path().join("control.db"), config), SystemClock, os_random()).unwrap();
    let base = server.base_url();

    let observations: Arc<Mutex<Vec<Observation>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (base, observations, stop) = (base.clone(), observations.clone(), stop.clone());
        std::thread::spawn(move || {
            // Bounded: stops when told, and after at most two minutes.
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let state = http(&base, "GET", "/v1/system/state", ADMIN, None)["data"].clone();
                observations.lock().unwrap().push((
                    state["now"].as_i64().unwrap(),
                    state["holder_id"].as_str().map(str::to_string),
                    state["term"].as_i64().unwrap(),
                    state["leader_live"].as_bool().unwrap(),
                ));
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let mut primary = Agent::start(&base, "mini-main", "mini", "primary", dir.path());
    assert!(wait_for_holder(&observations, "mini-main", 0, Duration::from_secs(10)).is_some(), "{}", primary.log_text());
    let mut standby = Agent::start(&base, "mac-standby", "mac", "standby", dir.path());
    std::thread::sleep(Duration::from_secs(2));
    // Each agent says what it runs and since when; the leader's row says leader.
    let controllers = http(&base, "GET", "/v1/controllers", ADMIN, None)["data"]["controllers"].clone();
    for controller in controllers.as_array().unwrap() {
        assert_eq!(controller["version"], env!("CARGO_PKG_VERSION"), "{controller}");
        assert!(controller["started_at"].as_i64().is_some_and(|at| at > 1_700_000_000), "{controller}");
        let expected = if controller["controller_id"] == "mini-main" { "leader" } else { "standby" };
        assert_eq!(controller["status"], expected, "{controller}");
    }
    let mut tasks = vec![create_task(&base, "one"), create_task(&base, "two")];
    wait_planned(&base, &tasks, Duration::from_secs(10));

    // kill -9 the leader: the standby leads within TTL + renew interval + 1 s.
    let mark = observations.lock().unwrap().len();
    let killed_at = primary.signal("KILL");
    primary.wait_exit();
    let failover = wait_for_holder(&observations, "mac-standby", mark, Duration::from_secs(15)).expect("the standby took over");
    let bound = Duration::from_secs(TTL_SEC) + Duration::from_millis(RENEW_MS) + Duration::from_secs(1);
    assert!(failover <= bound, "failover after kill -9 took {failover:?} (bound {bound:?})");
    tasks.push(create_task(&base, "three"));
    wait_planned(&base, &tasks, Duration::from_secs(10));

    // The primary comes back: the lease returns to it by hand-over.
    let mark = observations.lock().unwrap().len();
    primary.spawn(&base, "mini", "primary", dir.path());
    let hand_back = wait_for_holder(&observations, "mini-main", mark, Duration::from_secs(15)).expect("the lease went back to the primary");
    assert!(standby.log_text().contains("stopped leading"), "{}", standby.log_text());
    tasks.push(create_task(&base, "four"));
    wait_planned(&base, &tasks, Duration::from_secs(10));

    // SIGTERM the leader: it releases, and the standby leads within 2 s.
    let mark = observations.lock().unwrap().len();
    primary.signal("TERM");
    let status = primary.wait_exit();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}\n{}", primary.log_text());
    assert!(primary.log_text().contains("lease: released term="), "{}", primary.log_text());
    let release_failover = wait_for_holder(&observations, "mac-standby", mark, Duration::from_secs(10)).expect("the standby took over");
    assert!(release_failover <= Duration::from_secs(2), "failover after SIGTERM took {release_failover:?}");

    standby.signal("TERM");
    assert!(standby.wait_exit().success());
    let end = wall_ms();
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();

    for agent in [&primary, &standby] {
        let log = agent.log_text();
        assert!(!log.contains(SERVICE), "no token in {}'s log", agent.name);
        // Lines for people carry no Rust debug formatting.
        for line in log.lines() {
            assert!(!line.contains("Some(") && !line.contains("None"), "debug formatting in {}'s log: {line}", agent.name);
        }
    }

    // One holder per term, as the control plane saw it.
    let observations = observations.lock().unwrap();
    let mut holders: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut term_seen: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (now, holder, term, live) in observations.iter() {
        if let (true, Some(holder)) = (*live, holder) {
            let list = holders.entry(*term).or_default();
            if !list.contains(holder) {
                list.push(holder.clone());
            }
            let seen = term_seen.entry(*term).or_insert((*now, *now));
            seen.0 = seen.0.min(*now);
            seen.1 = seen.1.max(*now);
        }
    }
    assert!(holders.len() >= 4, "terms: {holders:?}");
    for (term, list) in &holders {
        assert_eq!(list.len(), 1, "term {term} had holders {list:?}");
    }

    // Never two leaders at once, as the agents themselves acted.
    let primary_intervals = primary.intervals(&[killed_at], end);
    let standby_intervals = standby.intervals(&[], end);
    assert!(primary_intervals.len() >= 2 && !standby_intervals.is_empty(), "{primary_intervals:?} {standby_intervals:?}");
    for (term_a, start_a, end_a) in &primary_intervals {
        for (term_b, start_b, end_b) in &standby_intervals {
            assert!(
                end_a <= start_b || end_b <= start_a,
                "overlap: primary term {term_a} [{start_a}, {end_a}] and standby term {term_b} [{start_b}, {end_b}]"
            );
        }
    }

    // Every accepted leader write carried the term current at that moment.
    for task_id in &tasks {
        let task = http(&base, "GET", &format!("/v1/tasks/{task_id}"), ADMIN, None)["data"].clone();
        let term = task["claim_term"].as_i64().unwrap();
        let claimed_at = task["started_at"].as_i64().unwrap();
        let (first, last) = term_seen[&term];
        assert!(
            claimed_at >= first - 1 && claimed_at <= last + 1,
            "task {task_id} planned in term {term} at {claimed_at}, term seen {first}..{last}"
        );
    }
    eprintln!(
        "failover after kill -9: {failover:?}; hand-back: {hand_back:?}; failover after SIGTERM: {release_failover:?}; terms: {}",
        holders.len()
    );
}
