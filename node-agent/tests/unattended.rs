//! SPEC §13 with real agents, real git and real processes: what ends an unattended wave, and
//! the answers — an agent that did nothing, an agent that hangs, an acceptance test that one
//! more round with its output fixes.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// A stand-in coding agent: changes a file, or writes only a report, or does nothing, as its
/// goal says.
const STAND_IN_AGENT: &str = r#"#!/bin/sh
case "$(cat "$1")" in
  *"change"*) echo "changed" > changed.txt ;;
  *"report"*) printf '## result\nread the code: nothing needs changing\n' > "$2" ;;
  *) echo "stand-in agent: looked around" ;;
esac
"#;

#[test]
fn an_agent_that_exits_0_having_done_nothing_fails_with_no_change_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());
    let script = dir.path().join("stand-in-agent.sh");
    std::fs::write(&script, STAND_IN_AGENT).unwrap();
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path())
        .arg("--capacity", "2")
        .env("BAA_AGENT_COMMAND", &format!("sh {} {{goal_file}} {{report_file}}", script.display()));
    agent.spawn();
    let task = |goal: &str, constraints: serde_json::Value| {
        plane.create_task(json!({"repo": repo, "task_type": "codex", "title": goal, "goal": goal, "constraints": constraints}))
    };
    let idle = task("look around", json!({}));
    let allowed = task("look around, allowed", json!({"allow_no_change": true}));
    let reported = task("write a report", json!({}));
    let changed = task("change a file", json!({}));
    let end = ["succeeded", "failed", "blocked", "canceled"];

    let idle = plane.wait_task(&idle, &end, Duration::from_secs(60));
    assert_eq!(idle["status"], "failed", "{idle:#}\n{}", agent.log_text());
    let reason = idle["status_reason"].as_str().unwrap();
    assert!(reason.starts_with("step 1 failed: no_change:"), "{reason}");
    assert_eq!(idle["result"]["commits"], 0);
    for (task_id, what) in [(&allowed, "allowed"), (&reported, "a report"), (&changed, "a change")] {
        let done = plane.wait_task(task_id, &end, Duration::from_secs(60));
        assert_eq!(done["status"], "succeeded", "{what}: {done:#}");
    }
    assert_eq!(plane.task(&changed)["result"]["commits"], 1);
    agent.terminate();
}

/// Stand-in agents for stalls: one goes quiet and idle, one computes without a word, one keeps
/// writing a file without a word, one reads its stdin.
const STALL_AGENTS: &str = r#"#!/bin/sh
case "$(cat "$1")" in
  *"idle"*) echo "going quiet"; sleep 60 ;;
  *"burn"*) end=$(( $(date +%s) + 20 )); i=0; while [ "$(date +%s)" -lt "$end" ]; do i=$((i+1)); done; echo "$i" > burned.txt ;;
  *"write"*) for i in $(seq 1 20); do echo "$i" >> progress.txt; sleep 1; done ;;
  *"stdin"*) cat > stdin.txt; echo "stdin closed" ;;
esac
"#;

#[test]
fn a_silent_idle_agent_is_stopped_as_stalled_and_a_quiet_busy_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());
    let script = dir.path().join("stall-agents.sh");
    std::fs::write(&script, STALL_AGENTS).unwrap();
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path())
        .arg("--capacity", "4")
        .env("BAA_AGENT_COMMAND", &format!("sh {} {{goal_file}}", script.display()));
    agent.spawn();
    let task = |goal: &str| {
        plane.create_task(json!({"repo": repo, "task_type": "codex", "title": goal, "goal": goal,
            "constraints": {"stall_after_sec": 5, "timeout_sec": 120}}))
    };
    let (idle, burn, write, stdin) = (task("idle"), task("burn"), task("write"), task("stdin"));
    let end = ["succeeded", "failed", "blocked", "canceled"];

    let stalled = plane.wait_task(&idle, &end, Duration::from_secs(60));
    assert_eq!(stalled["status"], "failed", "{stalled:#}\n{}", agent.log_text());
    let step = step_of(&stalled, "agent");
    assert_eq!(step["status"], "timed_out", "{stalled:#}");
    let error = step["error"].as_str().unwrap();
    assert!(error.starts_with("stalled: ") && error.ends_with("last output: going quiet"), "{error}");
    let run = &stalled["runs"][1];
    let lasted = run["finished_at"].as_i64().unwrap() - run["started_at"].as_i64().unwrap();
    // 5 s without progress, the 2 s kill grace (the idle agent dies at SIGTERM), one tick,
    // and whole seconds on both ends.
    assert!((5..=9).contains(&lasted), "stopped after {lasted} s");
    for (task_id, what) in [(&burn, "computing"), (&write, "writing a file")] {
        let done = plane.wait_task(task_id, &end, Duration::from_secs(60));
        assert_eq!(done["status"], "succeeded", "{what} for 20 s is not a stall: {done:#}");
        let run = &done["runs"][1];
        assert!(run["finished_at"].as_i64().unwrap() - run["started_at"].as_i64().unwrap() >= 19, "{done:#}");
    }
    let read = plane.wait_task(&stdin, &end, Duration::from_secs(30));
    assert_eq!(read["status"], "succeeded", "stdin is /dev/null: end of file at once: {read:#}");
    let branch = format!("baa/{stdin}");
    assert_eq!(git_output(&repo, &["show", &format!("{branch}:stdin.txt")]).unwrap(), "");
    agent.terminate();
}

/// A stand-in agent that finds the fix only with the failing test's output in its feedback;
/// without it, it makes a first guess (a change, but not the fix).
const FLAKY_AGENT: &str = r##"#!/bin/sh
printf '{"input_tokens": 1000, "output_tokens": 250, "cost_usd": 0.125, "model": "stand-in-1"}' > "$3"
if grep -q "2 + 3 is not -1" "$2"; then
  printf 'echo $(( $1 + $2 ))\n' > adder.sh; echo "fixed, thanks to the feedback"
else
  echo "# a first guess" >> adder.sh; echo "a first guess"
fi
"##;

#[test]
fn a_failed_acceptance_test_gets_another_round_whose_agent_reads_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    std::fs::write(repo.join("adder.sh"), "echo $(( $1 - $2 ))\n").unwrap();
    std::fs::write(repo.join("test.sh"), "test \"$(sh adder.sh 2 3)\" = 5 || { echo \"2 + 3 is not $(sh adder.sh 2 3)\"; exit 1; }\n")
        .unwrap();
    git_output(&repo, &["add", "."]).unwrap();
    git_output(&repo, &["-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "an adder with a bug"]).unwrap();
    let base = git_output(&repo, &["rev-parse", "HEAD"]).unwrap();
    let plane = ControlPlane::start(dir.path());
    let script = dir.path().join("flaky-agent.sh");
    std::fs::write(&script, FLAKY_AGENT).unwrap();
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path())
        .env("BAA_AGENT_COMMAND", &format!("sh {} {{goal_file}} {{feedback_file}} {{usage_file}}", script.display()));
    agent.spawn();
    let task = |max_rounds: i64| {
        plane.create_task(json!({"repo": repo, "task_type": "codex", "title": "fix the adder", "goal": "fix the adder",
            "acceptance": ["sh test.sh"], "constraints": {"max_rounds": max_rounds}}))
    };
    let (rounds, once) = (task(3), task(1));
    let end = ["succeeded", "failed", "blocked", "canceled"];

    let done = plane.wait_task(&rounds, &end, Duration::from_secs(90));
    assert_eq!(done["status"], "succeeded", "{done:#}\n{}", agent.log_text());
    let steps: Vec<(i64, &str, &str)> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["round"].as_i64().unwrap(), step["step_kind"].as_str().unwrap(), step["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [(1, "setup", "succeeded"), (1, "agent", "succeeded"), (1, "test", "failed"), (2, "agent", "succeeded"), (2, "test", "succeeded")]
    );
    let branch = format!("baa/{rounds}");
    assert_eq!(git_output(&repo, &["rev-list", "--count", &format!("{base}..{branch}")]).unwrap(), "2", "a commit per round");
    assert_eq!(done["result"]["commits"], 2);
    // Each round's agent wrote its usage file: the task sums them.
    assert_eq!(
        done["usage"],
        json!({"runs": 2, "input_tokens": 2000, "output_tokens": 500, "cost_usd": 0.25, "models": ["stand-in-1"]}),
        "{done:#}"
    );
    let feedback_run = done["steps"][3]["current_run_id"].as_str().unwrap();
    let feedback = std::fs::read_to_string(agent.run_dir(&rounds, feedback_run).join("feedback.md")).unwrap();
    assert!(feedback.contains("sh test.sh") && feedback.contains("2 + 3 is not -1"), "{feedback}");

    let failed = plane.wait_task(&once, &end, Duration::from_secs(60));
    assert_eq!(failed["status"], "failed", "max_rounds 1: no second round: {failed:#}");
    assert_eq!(failed["steps"].as_array().unwrap().len(), 3);
    agent.terminate();
}

/// A stand-in agent that hits its account's usage limit once per marker file (the message
/// says when it resets), and otherwise does its work.
const LIMITED_AGENT: &str = r#"#!/bin/sh
goal=$(cat "$1")
case "$goal" in
  *"limit in 20 s"*)
    if [ ! -e "$2/first" ]; then touch "$2/first"; echo "Claude AI usage limit reached|$(( $(date +%s) + 20 ))"; exit 1; fi ;;
  *"limit for an hour"*)
    if [ ! -e "$2/second" ]; then touch "$2/second"; echo "You've hit your usage limit. Try again in 1 hour." >&2; exit 1; fi ;;
esac
echo "$goal" > "work-$(date +%s%N).txt"
echo "worked"
"#;

#[test]
fn a_usage_limit_parks_the_account_for_every_host_until_its_reset_without_spending_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());
    let script = dir.path().join("limited-agent.sh");
    std::fs::write(&script, LIMITED_AGENT).unwrap();
    // The stand-in remembers what it did in a folder of its own: the sandbox keeps steps out of
    // $HOME (here the test's folder).
    let markers = tempfile::tempdir().unwrap();
    let command = format!("sh {} {{goal_file}} {}", script.display(), markers.path().display());
    let mut mini = Agent::new(&plane.base(), "mini-main", dir.path()).env("BAA_AGENT_COMMAND", &command).env("BAA_AGENT_ACCOUNT", "team");
    let mut mac = Agent::new(&plane.base(), "mac-standby", dir.path())
        .arg("--host", "mac")
        .arg("--role", "standby")
        .env("BAA_AGENT_COMMAND", &command)
        .env("BAA_AGENT_ACCOUNT", "team");
    mini.spawn();
    mac.spawn();
    let task = |task_type: &str, goal: &str, host: &str| {
        plane.create_task(json!({"repo": repo, "task_type": task_type, "title": goal, "goal": goal,
            "constraints": {"target_host": host, "allow_no_change": true}}))
    };
    let end = ["succeeded", "failed", "blocked", "canceled"];

    let limited = task("codex", "hit the limit in 20 s", "mini");
    let parked_at = std::time::Instant::now();
    let waiting = wait_until(Duration::from_secs(30), || {
        let detail = plane.task(&limited);
        (detail["steps"][1]["status"] == "waiting_quota").then_some(detail.clone()).ok_or(format!("{detail:#}"))
    });
    assert_eq!(waiting["status"], "running", "the task goes on waiting: {waiting:#}");
    assert_eq!(waiting["waiting_reason"]["code"], "quota", "{waiting:#}");
    assert_eq!(waiting["steps"][1]["max_attempts"], 2, "the attempt spent is given back");
    let state = http(&plane.base(), "GET", "/v1/system/state", ADMIN, None)["data"].clone();
    assert_eq!(state["parked_accounts"][0]["account"], "team", "{state:#}");
    assert!(state["parked_accounts"][0]["message"].as_str().unwrap().contains("usage limit reached"));

    // Another host of the same account gets no agent step while it is parked; a shell step runs.
    let other = task("codex", "other work", "mac");
    let shell = task("shell", "echo shell-work", "mac");
    assert_eq!(plane.wait_task(&shell, &end, Duration::from_secs(30))["status"], "succeeded");
    // Its setup ran (a shell step); its agent step stays ready, granted to no host.
    let held = wait_until(Duration::from_secs(30), || {
        let detail = plane.task(&other);
        (detail["steps"][1]["status"] == "ready").then_some(detail.clone()).ok_or(format!("{detail:#}"))
    });
    assert_eq!(held["status"], "running", "{held:#}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(plane.task(&other)["steps"][1]["status"], "ready", "still not granted");
    assert_eq!(held["waiting_reason"]["code"], "quota", "{held:#}");
    assert!(held["waiting_reason"]["message"].as_str().unwrap().contains("account team is parked"), "{held:#}");

    // At the reset both run, the limited one on its own host, and succeed.
    for task_id in [&limited, &other] {
        let done = plane.wait_task(task_id, &end, Duration::from_secs(60));
        assert_eq!(done["status"], "succeeded", "{done:#}\n{}", mini.log_text());
    }
    assert!(parked_at.elapsed() >= Duration::from_secs(15), "not before the reset: {:?}", parked_at.elapsed());
    let done = plane.task(&limited);
    let runs = done["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "setup, the limited run, the run after the reset");
    assert!(runs.iter().all(|run| run["host"] == "mini"), "the same host: {runs:?}");
    assert!(runs[1]["error"].as_str().unwrap().contains("usage limit"), "{runs:?}");

    // A second wait, an hour long by the message, ended early by a person.
    let second = task("codex", "hit the limit for an hour", "mac");
    wait_until(Duration::from_secs(30), || {
        let detail = plane.task(&second);
        (detail["steps"][1]["status"] == "waiting_quota").then_some(()).ok_or(format!("{detail:#}"))
    });
    let state = http(&plane.base(), "GET", "/v1/system/state", ADMIN, None)["data"].clone();
    let until = state["parked_accounts"][0]["parked_until"].as_i64().unwrap();
    assert!(until > state["now"].as_i64().unwrap() + 3_000, "an hour ahead: {state:#}");
    let resumed = http(&plane.base(), "POST", "/v1/accounts/team/resume", ADMIN, Some(json!({})))["data"].clone();
    assert_eq!(resumed["resumed_steps"], json!([format!("{second}.s1")]), "{resumed}");
    assert_eq!(plane.wait_task(&second, &end, Duration::from_secs(30))["status"], "succeeded");
    mini.terminate();
    mac.terminate();
}

#[test]
fn every_new_worktree_is_set_up_before_its_first_step_and_a_failed_setup_fails_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let setup = repo.join(".baa/setup");
    std::fs::create_dir_all(setup.parent().unwrap()).unwrap();
    std::fs::write(&setup, "#!/bin/sh\necho \"setting up $(pwd)\"\nmkdir -p .venv && date > .venv/marker\n").unwrap();
    std::fs::set_permissions(&setup, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(repo.join(".gitignore"), ".venv/\n").unwrap();
    git_output(&repo, &["add", "."]).unwrap();
    git_output(&repo, &["-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "a setup"]).unwrap();
    let plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--capacity", "2");
    agent.spawn();
    let task = |goal: &str, constraints: serde_json::Value| {
        plane.create_task(json!({"repo": repo, "task_type": "shell", "title": goal, "goal": goal,
            "acceptance": ["test -f .venv/marker"], "constraints": constraints}))
    };
    let first = task("test -f .venv/marker && echo venv-ready", json!({}));
    let second = task("test -f .venv/marker && echo venv-ready-too", json!({}));
    let broken = task("echo never", json!({"setup": "echo installing; echo the mirror is down >&2; exit 4"}));
    let end = ["succeeded", "failed", "blocked", "canceled"];
    for task_id in [&first, &second] {
        let done = plane.wait_task(task_id, &end, Duration::from_secs(60));
        assert_eq!(done["status"], "succeeded", "{done:#}\n{}", agent.log_text());
        assert_eq!(done["steps"][0]["step_kind"], "setup");
        assert!(plane.log_text(task_id, "stdout").starts_with(&format!("setting up {}", dir.path().display())), "its own worktree");
        assert_eq!(done["result"]["commits"], 0, "what setup makes is not committed");
    }
    let failed = plane.wait_task(&broken, &end, Duration::from_secs(60));
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert!(failed["status_reason"].as_str().unwrap().starts_with("step 0 failed: exit code 4"), "{failed:#}");
    assert_eq!(failed["steps"][1]["status"], "canceled", "nothing ran after it");
    assert_eq!(plane.log_text(&broken, "stderr"), "the mirror is down\n");
    agent.terminate();
}

/// A webhook receiver on 127.0.0.1: the JSON bodies it took, in order; while `down` it drops
/// every connection unanswered.
struct Receiver {
    url: String,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (kept, is_down) = (bodies.clone(), down.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if is_down.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    kept.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or_default());
                    let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                }
            }
        });
        Receiver { url, bodies, down }
    }

    fn ids(&self) -> Vec<i64> {
        self.bodies.lock().unwrap().iter().map(|body| body["event"]["event_id"].as_i64().unwrap()).collect()
    }
}

#[test]
fn the_leader_delivers_every_event_in_order_to_a_webhook_across_its_outage_and_goes_on_scheduling() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());
    let receiver = Receiver::start();
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--capacity", "2").env("BAA_NOTIFY_WEBHOOK", &receiver.url);
    agent.spawn();
    let end = ["succeeded", "failed", "blocked", "canceled"];
    let task = |goal: &str| plane.create_task(json!({"repo": repo, "task_type": "shell", "title": goal, "goal": goal}));
    let first = task("echo before the outage");
    assert_eq!(plane.wait_task(&first, &end, Duration::from_secs(30))["status"], "succeeded");
    wait_until(Duration::from_secs(30), || (receiver.ids().len() >= 2).then_some(()).ok_or(format!("{:?}", receiver.ids())));

    receiver.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let outage = std::time::Instant::now();
    let during: Vec<String> = (0..3).map(|index| task(&format!("echo during the outage {index}"))).collect();
    for task_id in &during {
        assert_eq!(plane.wait_task(task_id, &end, Duration::from_secs(30))["status"], "succeeded", "scheduling goes on");
    }
    assert!(outage.elapsed() < Duration::from_secs(10), "all ran within the outage: {:?}", outage.elapsed());
    std::thread::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed()));
    receiver.down.store(false, std::sync::atomic::Ordering::SeqCst);

    let feed: Vec<i64> = http(&plane.base(), "GET", "/v1/events?after=0&limit=500", ADMIN, None)["data"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["event_id"].as_i64().unwrap())
        .collect();
    assert!(feed.len() >= 2 + 3 * 3, "created, started, succeeded for each: {feed:?}");
    let received = wait_until(Duration::from_secs(60), || {
        let ids = receiver.ids();
        let mut seen: Vec<i64> = Vec::new();
        for id in &ids {
            if !seen.contains(id) {
                seen.push(*id);
            }
        }
        (seen == feed).then_some(ids.clone()).ok_or(format!("received {ids:?}, the feed is {feed:?}\n{}", agent.log_text()))
    });
    // Each receipt is a repeat of one already received (at least once) or the feed's next event.
    let mut next = 0;
    for id in &received {
        if !feed[..next].contains(id) {
            assert_eq!(Some(id), feed.get(next), "out of order: {received:?}");
            next += 1;
        }
    }
    let bodies = receiver.bodies.lock().unwrap().clone();
    assert!(bodies.iter().all(|body| body["text"].as_str().is_some_and(|text| text.contains(" · "))), "a one-line text for chat");
    assert!(agent.log_text().contains("notify: event"), "the failed deliveries were logged");
    assert!(!agent.log_text().contains(&receiver.url), "the webhook's URL stays out of the log");

    // A person follows the same feed from a terminal.
    let watched = std::process::Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args(["tasks", "watch", "--last", "3", "--for-sec", "1"])
        .env_clear()
        .env("BAA_CONTROL_API_BASE", plane.base())
        .env("BAA_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&watched.stdout);
    assert!(watched.status.success(), "{text}{}", String::from_utf8_lossy(&watched.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "the last three events: {text}");
    assert!(lines.iter().all(|line| line.contains("task_") && line.contains("echo during the outage")), "{text}");
    agent.terminate();
}
