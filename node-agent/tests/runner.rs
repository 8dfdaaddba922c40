//! The worker runner end to end, with real processes: the control plane on loopback, real
//! `node-agent start` processes, a scratch git repository, `ps` to look for stray processes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn shell_task(repo: &Path, title: &str, goal: &str, extra: Value) -> Value {
    let mut body = json!({"repo": repo, "task_type": "shell", "title": title, "goal": goal});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    body
}

fn checkpoint<'a>(run: &'a Value, checkpoint_type: &str) -> &'a Value {
    run["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|checkpoint| checkpoint["checkpoint_type"] == checkpoint_type)
        .unwrap_or_else(|| panic!("no {checkpoint_type} in {run:#}"))
}

fn read_run(plane: &ControlPlane, run_id: &str) -> Value {
    http(&plane.base(), "GET", &format!("/v1/runs/{run_id}"), ADMIN, None)["data"].clone()
}

/// Polls a run directory's `state.json` until its status is `status`.
fn wait_local_status(run_dir: &Path, status: &str) {
    wait_until(Duration::from_secs(20), || match read_json(&run_dir.join("state.json"))["status"] == status {
        true => Ok(()),
        false => Err(format!("{} never {status}", run_dir.display())),
    });
}

fn wait_step_running(plane: &ControlPlane, task_id: &str, limit: Duration) -> Value {
    wait_until(limit, || {
        let detail = plane.task(task_id);
        match detail["steps"][1]["status"] == "running" {
            true => Ok(detail),
            false => Err(format!("step of {task_id} not running: {detail:#}")),
        }
    })
}

const STAND_IN_AGENT: &str = r#"#!/bin/sh
# A stand-in coding agent: appends the goal (handed over in a file) to NOTES.md.
goal=$(cat "$1")
printf '%s\n' "$goal" >> NOTES.md
echo "stand-in agent: wrote the goal to NOTES.md"
"#;

/// Acceptance 1 and 5: success with a complete run directory and readable logs; failure with
/// its exit code; a timeout that takes the whole process group; a cancel within the grace
/// period; a codex task with a stand-in agent and acceptance commands as test steps.
#[test]
fn shell_and_codex_tasks_from_claim_to_their_end() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());
    let agent_script = dir.path().join("stand-in-agent.sh");
    std::fs::write(&agent_script, STAND_IN_AGENT).unwrap();
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path())
        .arg("--capacity", "4")
        .env("BAA_AGENT_COMMAND", &format!("sh {} {{goal_file}}", agent_script.display()));
    agent.spawn();

    let succeeding = plane.create_task(shell_task(
        &repo,
        "create a file",
        "echo hello > created.txt; echo out-line; echo err-line >&2",
        json!({"acceptance": ["test -f created.txt && echo found-it"]}),
    ));
    let failing = plane.create_task(shell_task(&repo, "fail", "echo about to fail; exit 3", json!({})));
    let timing_out = plane.create_task(shell_task(
        &repo,
        "time out",
        "trap '' TERM; (sleep 4001; echo never) & sleep 4002",
        json!({"constraints": {"timeout_sec": 2}}),
    ));
    let canceled = plane.create_task(shell_task(&repo, "be canceled", "sleep 4003", json!({})));
    let codex = plane.create_task(json!({
        "repo": repo, "task_type": "codex", "title": "take a note", "goal": "remember the milk",
        "acceptance": ["grep -q 'remember the milk' NOTES.md", "test -s NOTES.md && echo notes-present"],
    }));

    // Cancel: measured from the cancel call until no process of the step is left.
    wait_step_running(&plane, &canceled, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!processes_matching("sleep 4003").is_empty(), "the step runs before the cancel");
    let cancel_at = Instant::now();
    http(&plane.base(), "POST", &format!("/v1/tasks/{canceled}/cancel"), ADMIN, Some(json!({"reason": "test"})));
    while !processes_matching("sleep 4003").is_empty() {
        assert!(cancel_at.elapsed() < Duration::from_secs(10), "still running: {:?}", processes_matching("sleep 4003"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let stop_took = cancel_at.elapsed();
    // Noticed at the next step heartbeat (500 ms), then SIGTERM: sleep dies at once.
    assert!(stop_took <= Duration::from_millis(500 + 2_000), "canceled step stopped after {stop_took:?}");
    let detail = plane.wait_task(&canceled, &["canceled"], Duration::from_secs(20));
    let run_id = detail["runs"][1]["run_id"].as_str().unwrap().to_string();
    let start = Instant::now();
    while read_run(&plane, &run_id)["run"]["status"] != "canceled" {
        assert!(start.elapsed() < Duration::from_secs(10), "{:#}", read_run(&plane, &run_id));
        std::thread::sleep(Duration::from_millis(100));
    }

    // Success: the run directory is complete; logs and checkpoints are in the control plane.
    let detail = plane.wait_task(&succeeding, &["succeeded", "failed"], Duration::from_secs(30));
    assert_eq!(detail["status"], "succeeded", "{detail:#}\n{}", agent.log_text());
    let run_id = detail["steps"][1]["current_run_id"].as_str().unwrap();
    let run_dir = agent.run_dir(&succeeding, run_id);
    // The control plane hears of the end first; the run directory closes a moment later.
    wait_local_status(&run_dir, "succeeded");
    for name in
        ["meta.json", "state.json", "ship.json", "worker.log", "stdout.log", "stderr.log", "exit_status", "checkpoints", "artifacts"]
    {
        assert!(run_dir.join(name).exists(), "{name} in {}", run_dir.display());
    }
    let state = read_json(&run_dir.join("state.json"));
    assert_eq!((state["status"].as_str(), state["outcome"]["exit_code"].as_i64()), (Some("succeeded"), Some(0)), "{state:#}");
    assert_eq!(read_json(&run_dir.join("meta.json"))["run_id"], run_id);
    let events: Vec<String> = std::fs::read_to_string(run_dir.join("worker.log"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["event"].as_str().unwrap().to_string())
        .collect();
    for event in ["run_prepared", "worker_started", "worker_exited", "checkpoints_written", "run_succeeded"] {
        assert!(events.contains(&event.to_string()), "{event} in {events:?}");
    }
    assert_eq!(std::fs::read_to_string(run_dir.join("stdout.log")).unwrap(), "out-line\n");
    let mut files: Vec<String> = std::fs::read_dir(run_dir.join("checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["0001-summary.json", "0002-git-diff.patch", "0003-branch-diff.patch", "0004-log-tail.txt"]);
    let run = read_run(&plane, run_id);
    let diff = checkpoint(&run, "git_diff")["content"].as_str().unwrap();
    assert!(diff.contains("created.txt") && diff.contains("+hello"), "{diff}");
    // The step committed: the branch against its base, what tasks.diff answers.
    let branch_diff = checkpoint(&run, "branch_diff")["content"].as_str().unwrap();
    assert!(branch_diff.contains("+++ b/created.txt") && branch_diff.contains("+hello"), "{branch_diff}");
    let summary: Value = serde_json::from_str(checkpoint(&run, "summary")["content"].as_str().unwrap()).unwrap();
    assert_eq!(summary["files_changed"], json!(["created.txt"]));
    assert_eq!(plane.log_text(&succeeding, "stdout"), "out-line\nfound-it\n");
    assert_eq!(plane.log_text(&succeeding, "stderr"), "err-line\n");
    let test_run = read_run(&plane, detail["steps"][2]["current_run_id"].as_str().unwrap());
    assert_eq!(detail["steps"][2]["step_kind"], "test");
    assert!(checkpoint(&test_run, "test_output")["content"].as_str().unwrap().contains("found-it"));

    // Failure: the exit code is on the step and in the task's reason.
    let detail = plane.wait_task(&failing, &["failed", "succeeded"], Duration::from_secs(30));
    assert_eq!(detail["status"], "failed");
    assert_eq!(detail["steps"][1]["exit_code"], 3, "{detail:#}");
    assert!(detail["status_reason"].as_str().unwrap().contains("exit code 3"), "{detail:#}");
    assert_eq!(plane.log_text(&failing, "stdout"), "about to fail\n");

    // Timeout: the step ignores SIGTERM, so SIGKILL ends it after the grace period; nothing of
    // its process group is left.
    let detail = plane.wait_task(&timing_out, &["failed", "succeeded"], Duration::from_secs(30));
    assert_eq!(detail["steps"][1]["status"], "timed_out", "{detail:#}");
    for marker in ["sleep 4001", "sleep 4002"] {
        assert!(processes_matching(marker).is_empty(), "left behind: {:?}", processes_matching(marker));
    }

    // Codex: the stand-in agent's edit is in the diff; the acceptance commands ran as tests.
    let detail = plane.wait_task(&codex, &["succeeded", "failed", "blocked"], Duration::from_secs(30));
    assert_eq!(detail["status"], "succeeded", "{detail:#}\n{}", agent.log_text());
    let steps = detail["steps"].as_array().unwrap();
    assert_eq!(steps.iter().map(|step| step["step_kind"].as_str().unwrap()).collect::<Vec<_>>(), ["setup", "agent", "test", "test"]);
    let agent_run = read_run(&plane, steps[1]["current_run_id"].as_str().unwrap());
    let diff = checkpoint(&agent_run, "git_diff")["content"].as_str().unwrap();
    assert!(diff.contains("NOTES.md") && diff.contains("+remember the milk"), "{diff}");
    let test_run = read_run(&plane, steps[3]["current_run_id"].as_str().unwrap());
    assert!(checkpoint(&test_run, "test_output")["content"].as_str().unwrap().contains("notes-present"));

    let status = agent.terminate();
    assert!(status.success(), "{status:?}\n{}", agent.log_text());
    assert!(!agent.log_text().contains(SERVICE), "no token in the agent's log");
    if std::env::var_os("BAA_SHOW_AGENT_LOG").is_some() {
        eprintln!("{}", agent.log_text());
    }
}

/// A step printing numbered lines, one every `interval_ms`, `count` in all.
fn numbered_lines(count: u32, interval: &str) -> String {
    format!("i=1; while [ $i -le {count} ]; do echo \"line $i\"; i=$((i+1)); sleep {interval}; done")
}

fn assert_numbered_lines(text: &str, count: u32) {
    let lines: Vec<&str> = text.lines().collect();
    let expected: Vec<String> = (1..=count).map(|i| format!("line {i}")).collect();
    assert_eq!(lines.len(), count as usize, "line count");
    assert!(lines.iter().zip(&expected).all(|(line, expected)| line == expected), "lines out of order or changed");
}

/// Acceptance 2: the control plane is away for 20 s while a step prints numbered lines; after
/// it returns every line is there exactly once, in order.
#[test]
fn logs_written_during_an_outage_arrive_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let mut plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path());
    agent.spawn();
    const LINES: u32 = 300;
    let task_id = plane.create_task(shell_task(&repo, "count", &numbered_lines(LINES, "0.1"), json!({})));
    wait_step_running(&plane, &task_id, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    let before = plane.log_text(&task_id, "stdout").lines().count();
    assert!(before > 0, "some lines shipped before the outage\n{}", agent.log_text());

    plane.stop();
    assert!(try_http(&plane.base(), "GET", "/healthz", ADMIN, None).is_err(), "the control plane is away");
    std::thread::sleep(Duration::from_secs(20));
    plane.restart();

    let detail = plane.wait_task(&task_id, &["succeeded", "failed"], Duration::from_secs(60));
    assert_eq!(detail["status"], "succeeded", "{detail:#}\n{}", agent.log_text());
    let chunks = plane.logs(&task_id, Some("stdout"));
    let seqs: Vec<i64> = chunks.iter().map(|chunk| chunk["seq"].as_i64().unwrap()).collect();
    let mut unique = seqs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seqs.len(), "no chunk twice");
    assert_numbered_lines(&plane.log_text(&task_id, "stdout"), LINES);
    assert!(agent.log_text().contains("sync failed"), "the outage was felt: {}", agent.log_text());
    eprintln!("outage: {before} lines shipped before, {LINES} after, in {} chunks", chunks.len());
}

/// Acceptance 3: kill -9 the agent mid-step and start it again: the step is adopted, completes
/// once, and its logs are complete.
#[test]
fn a_step_survives_its_agent_and_is_adopted_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path());
    agent.spawn();
    const LINES: u32 = 60;
    let task_id =
        plane.create_task(shell_task(&repo, "count", &format!("{}; echo done > finished.txt", numbered_lines(LINES, "0.1")), json!({})));
    let detail = wait_step_running(&plane, &task_id, Duration::from_secs(20));
    let run_id = detail["steps"][1]["current_run_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(2));
    agent.kill9();
    let pid = read_json(&agent.run_dir(&task_id, &run_id).join("state.json"))["pid"].as_i64().unwrap();
    assert!(
        !processes_matching(&format!("{pid} ")).is_empty() || std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the step outlived its agent"
    );
    std::thread::sleep(Duration::from_secs(1));
    agent.spawn();

    let detail = plane.wait_task(&task_id, &["succeeded", "failed"], Duration::from_secs(60));
    assert_eq!(detail["status"], "succeeded", "{detail:#}\n{}", agent.log_text());
    assert_eq!(detail["runs"].as_array().unwrap().len(), 2, "the setup's and one of the step: {detail:#}");
    assert_eq!(detail["steps"][1]["attempt"], 1);
    wait_local_status(&agent.run_dir(&task_id, &run_id), "succeeded");
    let worker_log = std::fs::read_to_string(agent.run_dir(&task_id, &run_id).join("worker.log")).unwrap();
    assert!(worker_log.contains("\"run_adopted\"") && worker_log.contains("\"alive\":true"), "{worker_log}");
    assert_eq!(worker_log.matches("\"run_succeeded\"").count(), 1, "{worker_log}");
    assert!(agent.log_text().contains("1 live run(s) adopted"), "{}", agent.log_text());
    assert_numbered_lines(&plane.log_text(&task_id, "stdout"), LINES);
    let run = read_run(&plane, &run_id);
    assert!(checkpoint(&run, "git_diff")["content"].as_str().unwrap().contains("finished.txt"));
}

/// Acceptance 4: an agent killed at random moments never leaves a `state.json` (nor a
/// `ship.json` or `meta.json`) that fails to parse, and the next agent settles every task.
#[test]
fn killing_the_agent_at_random_moments_never_tears_a_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--capacity", "3");
    let mut tasks = Vec::new();
    for index in 0..12 {
        let goal = if index % 3 == 0 { numbered_lines(20, "0.05") } else { format!("echo task {index}; echo {index} > file-{index}.txt") };
        tasks.push(plane.create_task(shell_task(&repo, &format!("task {index}"), &goal, json!({}))));
    }
    // A small deterministic generator: the moments differ between kills, not between runs.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut files_checked = 0;
    for _ in 0..15 {
        agent.spawn();
        std::thread::sleep(Duration::from_millis(150 + next() % 900));
        agent.kill9();
        for path in walk(&agent.runs_dir()) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if ["state.json", "ship.json", "meta.json"].contains(&name.as_str()) {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    serde_json::from_slice::<Value>(&bytes).is_ok(),
                    "{} does not parse: {:?}",
                    path.display(),
                    String::from_utf8_lossy(&bytes)
                );
                files_checked += 1;
            }
        }
    }
    assert!(files_checked > 20, "the loop got far enough to write files ({files_checked})");
    agent.spawn();
    for task_id in &tasks {
        let detail = plane.wait_task(task_id, &["succeeded", "failed", "canceled", "blocked"], Duration::from_secs(90));
        assert!(matches!(detail["status"].as_str(), Some("succeeded" | "failed")), "{detail:#}");
    }
    let status = agent.terminate();
    assert!(status.success());
    eprintln!("crash loop: {files_checked} state files parsed after 15 kills");
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// A control plane that accepts connections and never answers holds nothing up: a step past
/// its timeout that ignores SIGTERM is killed within the kill grace and a second, whatever the
/// network does (the run driver never waits on it; its reports wait in the outbox).
#[test]
fn a_control_plane_that_never_answers_does_not_delay_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let mut plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--kill-grace-ms", "1000");
    agent.spawn();
    let goal = "trap '' TERM; echo started; while true; do sleep 0.2; done";
    let task_id = plane.create_task(shell_task(&repo, "stubborn", goal, json!({"constraints": {"timeout_sec": 3}})));
    let detail = wait_step_running(&plane, &task_id, Duration::from_secs(20));
    let run_id = detail["steps"][1]["current_run_id"].as_str().unwrap().to_string();
    let state_file = agent.run_dir(&task_id, &run_id).join("state.json");
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    let (pid, started_ms) = (state["pid"].as_i64().unwrap(), state["started_at_ms"].as_i64().unwrap() as u64);

    // The control plane goes; in its place, a listener that takes every connection and says
    // nothing, ever.
    let address = plane.addr;
    plane.stop();
    let black_hole = std::net::TcpListener::bind(address).unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for connection in black_hole.incoming().flatten() {
            keep.lock().unwrap().push(connection);
        }
    });

    // Timeout 3 s, then SIGTERM: the step ignores it, its wrapper shell does not and ends, and
    // the runner kills what is left of the group at once (a group whose every process ignored
    // SIGTERM would get SIGKILL after the 1 s grace). Either way within timeout + grace + 1 s.
    let limit = Duration::from_millis(3_000 + 1_000 + 1_000);
    // Zombies do not count: where PID 1 reaps orphans late (some containers) they linger.
    let group_alive = || node_agent::platform::group_has_live_process(pid as i32);
    while group_alive() {
        let elapsed = Duration::from_millis(wall_ms().saturating_sub(started_ms));
        assert!(elapsed <= limit + Duration::from_secs(5), "the step's group still lives {elapsed:?} after it started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let gone_after = Duration::from_millis(wall_ms().saturating_sub(started_ms));
    assert!(gone_after <= limit, "the step's group went {gone_after:?} after it started (timeout 3 s, grace 1 s)");
    assert!(!held.lock().unwrap().is_empty(), "the agent did try the silent control plane");
    let events = std::fs::read_to_string(agent.run_dir(&task_id, &run_id).join("worker.log")).unwrap();
    assert!(events.contains(r#""signal":"SIGTERM""#), "{events}");
    eprintln!("stubborn step gone {gone_after:?} after it started, with the control plane silent");
}
