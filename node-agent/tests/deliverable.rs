//! SPEC §11 with real agents, real git and real processes: one host per task on a two-host
//! fleet where each host has its own copy of the repository (a mirror of one bare `file://`
//! origin), a commit per step, delivery by push and by pull request, a lost host, and the
//! housekeeping rules.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A stand-in coding agent: a goal that asks for the fix gets it (adder.sh rewritten); any
/// other goal changes nothing.
const STAND_IN_AGENT: &str = r#"#!/bin/sh
goal=$(cat "$1")
case "$goal" in
  *"fix the adder"*)
    printf 'echo $(( $1 + $2 ))\n' > adder.sh
    echo "stand-in agent: fixed adder.sh" ;;
  *) echo "stand-in agent: looked, changed nothing" ;;
esac
"#;

/// A project with a real bug: `adder.sh` subtracts; `test.sh` fails until it adds.
fn buggy_project(dir: &Path) -> PathBuf {
    let repo = git_repo(dir);
    std::fs::write(repo.join("adder.sh"), "echo $(( $1 - $2 ))\n").unwrap();
    std::fs::write(repo.join("test.sh"), "test \"$(sh adder.sh 2 3)\" = 5 || { echo \"2 + 3 is not $(sh adder.sh 2 3)\"; exit 1; }\n")
        .unwrap();
    git_output(&repo, &["add", "."]).unwrap();
    git_output(&repo, &["-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "an adder with a bug"])
        .unwrap();
    repo
}

/// The host's one mirror under its state directory.
fn mirror_of(agent: &Agent) -> PathBuf {
    let mirrors: Vec<PathBuf> = std::fs::read_dir(agent.root.join("state").join("mirrors"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "git"))
        .collect();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    mirrors[0].clone()
}

fn wait_all(plane: &ControlPlane, tasks: &[String], limit: Duration) -> Vec<Value> {
    tasks.iter().map(|task_id| plane.wait_task(task_id, &["succeeded", "failed", "blocked", "canceled"], limit)).collect()
}

/// Acceptance 1 and 3: eight codex tasks at once on two hosts with capacity 1 each, the repo
/// given as a `file://` URL so each host works in its own mirror.
#[test]
fn two_hosts_each_task_on_one_host_with_one_commit_per_fix() {
    let dir = tempfile::tempdir().unwrap();
    let project = buggy_project(dir.path());
    let (origin, url) = bare_clone(&project, dir.path(), "origin");
    let base = git_output(&origin, &["rev-parse", "main"]).unwrap();
    let plane = ControlPlane::start(dir.path());
    let script = dir.path().join("stand-in-agent.sh");
    std::fs::write(&script, STAND_IN_AGENT).unwrap();
    let agent_command = format!("sh {} {{goal_file}}", script.display());
    let mut mini = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--host", "mini").env("BAA_AGENT_COMMAND", &agent_command);
    let mut mac = Agent::new(&plane.base(), "mac-standby", dir.path())
        .arg("--host", "mac")
        .arg("--role", "standby")
        .env("BAA_AGENT_COMMAND", &agent_command)
        .env("BAA_GIT_AUTHOR_NAME", "Mac Agent")
        .env("BAA_GIT_AUTHOR_EMAIL", "agent@mac.example.invalid");
    mini.spawn();
    mac.spawn();

    let mut fixes = Vec::new();
    let mut controls = Vec::new();
    for index in 0..8 {
        let fix = index % 4 != 3;
        let goal = if fix { format!("fix the adder (task {index})") } else { format!("read the adder and change nothing (task {index})") };
        let task_id = plane.create_task(
            json!({"repo": url, "task_type": "codex", "title": format!("adder {index}"), "goal": goal, "acceptance": ["sh test.sh"]}),
        );
        if fix {
            fixes.push(task_id)
        } else {
            controls.push(task_id)
        }
    }
    let all: Vec<String> = fixes.iter().chain(&controls).cloned().collect();
    wait_all(&plane, &all, Duration::from_secs(120));

    let mut hosts_used = BTreeSet::new();
    for task_id in &all {
        let detail = plane.task(task_id);
        let hosts: BTreeSet<&str> = detail["runs"].as_array().unwrap().iter().map(|run| run["host"].as_str().unwrap()).collect();
        assert_eq!(hosts.len(), 1, "every step of {task_id} on one host: {detail:#}");
        let host = *hosts.iter().next().unwrap();
        assert_eq!(detail["assigned_host"], host);
        assert_eq!(detail["base_commit"], base.as_str(), "base_ref HEAD resolved to origin's main");
        hosts_used.insert(host.to_string());
        let agent = if host == "mini" { &mini } else { &mac };
        let mirror = mirror_of(agent);
        let branch = format!("baa/{task_id}");
        if fixes.contains(task_id) {
            assert_eq!(detail["status"], "succeeded", "{detail:#}\n{}", agent.log_text());
            let result = &detail["result"];
            let head = git_output(&mirror, &["rev-parse", &branch]).unwrap();
            assert_eq!(result["head_commit"], head.as_str());
            assert_eq!(result["branch"], branch.as_str());
            assert_eq!(result["host"], host);
            assert_eq!(result["repo"], url.as_str());
            assert_eq!(result["commits"], 1);
            assert_eq!(result["files_changed"], json!(["adder.sh"]));
            assert_eq!((result["insertions"].clone(), result["deletions"].clone()), (json!(1), json!(1)));
            assert_eq!(git_output(&mirror, &["rev-list", "--count", &format!("{base}..{branch}")]).unwrap(), "1", "exactly one new commit");
            assert_eq!(git_output(&mirror, &["show", "--format=", "--name-only", &branch]).unwrap(), "adder.sh");
            let message = git_output(&mirror, &["log", "-1", "--format=%B", &branch]).unwrap();
            assert!(message.starts_with("adder ") && message.contains(": coding agent"), "{message}");
            assert!(
                message.contains(&format!("Baa-Task: {task_id}")) && message.contains(&format!("Baa-Run: {task_id}.s1.a1")),
                "{message}"
            );
            let author = git_output(&mirror, &["log", "-1", "--format=%an <%ae>", &branch]).unwrap();
            let expected = if host == "mac" { "Mac Agent <agent@mac.example.invalid>" } else { "baa-conductor <baa@mini>" };
            assert_eq!(author, expected);
            // The fix is in the host's copy only: the origin never saw the branch.
            assert!(git_output(&origin, &["rev-parse", "--verify", "--quiet", &branch]).is_err());
        } else {
            assert_eq!(detail["status"], "failed", "{detail:#}");
            let reason = detail["status_reason"].as_str().unwrap();
            assert!(reason.starts_with("step 1 failed") && reason.contains("no_change"), "an agent that did nothing: {detail:#}");
            assert_eq!(detail["result"]["commits"], 0, "a step that changed nothing commits nothing");
            assert_eq!(git_output(&mirror, &["rev-parse", &branch]).unwrap(), base);
        }
    }
    assert_eq!(hosts_used.len(), 2, "both hosts worked: {hosts_used:?}");
    for agent in [&mini, &mac] {
        assert!(!agent.log_text().contains(SERVICE), "no token in the log");
    }
}

/// Acceptance 2: push to a bare `file://` remote, a pull request through a stand-in PR
/// command, and a failing push that fails the task and keeps the branch.
#[test]
fn delivery_by_push_and_by_pull_request() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let (remote, remote_url) = bare_clone(&repo, dir.path(), "delivered");
    let plane = ControlPlane::start(dir.path());
    let pr_body = dir.path().join("pr-body.md");
    let pr_command = format!("cp {{report_file}} {} && echo opening a pull request from {{branch}} into {{base_branch}} && echo https://git.example.test/me/app/pull/42", pr_body.display());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--capacity", "3").env("BAA_PR_COMMAND", &pr_command);
    agent.spawn();
    let task = |title: &str, constraints: Value| {
        plane.create_task(json!({"repo": repo, "task_type": "shell", "title": title, "goal": format!("echo '{title}' > delivered.txt"),
            "acceptance": ["test -s delivered.txt"], "constraints": constraints}))
    };
    let pushed = task("push it", json!({"deliver": "push", "remote": remote_url}));
    let pull = task("open a pull request", json!({"deliver": "pr", "remote": remote_url}));
    let refused = task("push nowhere", json!({"deliver": "push", "remote": format!("file://{}/nowhere.git", dir.path().display())}));
    let details = wait_all(&plane, &[pushed.clone(), pull.clone(), refused.clone()], Duration::from_secs(60));

    let pushed_detail = &details[0];
    assert_eq!(pushed_detail["status"], "succeeded", "{pushed_detail:#}\n{}", agent.log_text());
    let kinds: Vec<&str> = pushed_detail["steps"].as_array().unwrap().iter().map(|step| step["step_kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["setup", "shell", "test", "deliver"], "delivery last, after the acceptance step");
    let head = pushed_detail["result"]["head_commit"].as_str().unwrap();
    let listed = git_output(&remote, &["ls-remote", &remote_url, &format!("refs/heads/baa/{pushed}")]).unwrap();
    assert!(listed.starts_with(head), "the remote has the branch at the head commit: {listed:?}");
    assert_eq!(pushed_detail["result"]["pushed_to"], remote_url.as_str());
    assert_eq!(pushed_detail["result"]["pr_url"], Value::Null);

    let pull_detail = &details[1];
    assert_eq!(pull_detail["status"], "succeeded", "{pull_detail:#}");
    assert_eq!(pull_detail["result"]["pr_url"], "https://git.example.test/me/app/pull/42");
    let body = std::fs::read_to_string(&pr_body).unwrap();
    assert!(body.contains("# open a pull request") && body.contains("delivered.txt"), "{body}");
    assert!(plane.log_text(&pull, "stdout").contains(&format!("from baa/{pull} into main")));

    let refused_detail = &details[2];
    assert_eq!(refused_detail["status"], "failed", "{refused_detail:#}");
    assert!(refused_detail["status_reason"].as_str().unwrap().starts_with("step 3"), "the deliver step: {refused_detail:#}");
    let branch = format!("baa/{refused}");
    assert_eq!(git_output(&repo, &["rev-list", "--count", &format!("main..{branch}")]).unwrap(), "1", "the branch stays, with its commit");
    assert!(!plane.log_text(&refused, "stderr").is_empty(), "the push's output is kept");
    assert_eq!(refused_detail["result"]["pushed_to"], Value::Null);
}

/// Acceptance 4: the assigned host dies mid-task; after `host_lost_after_sec` the task starts
/// over on the other host and succeeds, the reason in its history.
#[test]
fn a_lost_host_task_starts_over_on_the_other_host() {
    let dir = tempfile::tempdir().unwrap();
    // Each host its own copy: a mirror of one origin.
    let (_, repo) = bare_clone(&git_repo(dir.path()), dir.path(), "origin");
    let plane =
        ControlPlane::start_with(dir.path(), &[("CONTROL_API_HOST_LOST_AFTER_SEC", "3"), ("CONTROL_API_CONTROLLER_LIVENESS_SEC", "2")]);
    let mut mini = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--host", "mini").arg("--lease-ttl-sec", "3");
    mini.spawn();
    let task_id = plane.create_task(json!({"repo": repo, "task_type": "shell", "title": "slow", "goal": "sleep 3; echo done > done.txt", "acceptance": ["test -f done.txt"]}));
    let run_dir = wait_until(Duration::from_secs(20), || {
        let detail = plane.task(&task_id);
        if detail["steps"][1]["status"] == "running" {
            return Ok(mini.run_dir(&task_id, detail["steps"][1]["current_run_id"].as_str().unwrap()));
        }
        Err(format!("{detail:#}"))
    });
    let mut mac =
        Agent::new(&plane.base(), "mac-standby", dir.path()).arg("--host", "mac").arg("--role", "standby").arg("--lease-ttl-sec", "3");
    mac.spawn();
    // The host goes away whole: the agent and the step it runs.
    let pid = read_json(&run_dir.join("state.json"))["pid"].as_i64().unwrap();
    assert!(pid > 1, "the step's process group: {pid}");
    eprintln!("killing the agent {} and the step's process group {pid}", mini.pid());
    mini.kill9();
    std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status().unwrap();

    let detail = plane.wait_task(&task_id, &["succeeded", "failed", "blocked", "canceled"], Duration::from_secs(60));
    assert_eq!(detail["status"], "succeeded", "{detail:#}\n{}", mac.log_text());
    assert_eq!(detail["assigned_host"], "mac");
    let runs: Vec<(&str, &str)> =
        detail["runs"].as_array().unwrap().iter().map(|run| (run["host"].as_str().unwrap(), run["status"].as_str().unwrap())).collect();
    // mini set the worktree up, then lost the step it was running; mac started over, setup
    // included, in a worktree of its own.
    assert_eq!(runs[..2], [("mini", "succeeded"), ("mini", "lost")], "{runs:?}");
    assert!(runs[2..].iter().all(|(host, status)| *host == "mac" && *status == "succeeded"), "{runs:?}");
    assert_eq!(runs.len(), 5, "setup, the lost run, then setup, the step and its test on mac: {runs:?}");
    let lost = detail["history"].as_array().unwrap().iter().find(|event| event["kind"] == "host_lost").cloned();
    assert!(lost.is_some_and(|event| event["message"].as_str().unwrap().contains("host mini lost")), "{detail:#}");
    assert_eq!(detail["result"]["host"], "mac");
    assert_eq!(detail["result"]["commits"], 1, "started over from the base: one commit, mac's");
}

/// Acceptance 7: an old task's worktree is removed and its branch kept; the free-disk guard
/// stops claiming and says so in the status.
#[test]
fn housekeeping_removes_old_worktrees_and_a_full_disk_stops_claims() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--worktree-retention", "2s").arg("--runs-retention", "3s");
    agent.spawn();
    let task_id = plane.create_task(json!({"repo": repo, "task_type": "shell", "title": "short-lived", "goal": "echo kept > kept.txt"}));
    let detail = plane.wait_task(&task_id, &["succeeded"], Duration::from_secs(30));
    let worktree = agent.root.join("worktrees").join(&task_id);
    let run_dir = agent.run_dir(&task_id, step_of(&detail, "shell")["current_run_id"].as_str().unwrap());
    assert!(worktree.exists() || !run_dir.exists(), "the worktree was made");
    let started = Instant::now();
    while worktree.exists() || run_dir.exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "not removed:\n{}", agent.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let branch = format!("baa/{task_id}");
    assert_eq!(git_output(&repo, &["rev-parse", &branch]).unwrap(), detail["result"]["head_commit"].as_str().unwrap(), "the branch stays");
    assert_eq!(git_output(&repo, &["show", &format!("{branch}:kept.txt")]).unwrap(), "kept");
    assert!(!git_output(&repo, &["worktree", "list"]).unwrap().contains(&task_id), "git forgot the worktree too");
    assert!(agent.log_text().contains("removed worktree"));
    agent.terminate();

    let mut full = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--min-free-disk", "1000000TB").arg("--local-api", "127.0.0.1:0");
    full.spawn();
    let status_address = logged_address(|| full.log_text(), "status server on http://");
    let waiting = plane.create_task(json!({"repo": repo, "task_type": "shell", "title": "waits", "goal": "true"}));
    std::thread::sleep(Duration::from_secs(3));
    let detail = plane.task(&waiting);
    assert_eq!(detail["steps"][0]["status"], "ready", "not claimed: {detail:#}");
    let status = http(&format!("http://{status_address}"), "GET", "/v1/status", ADMIN, None);
    let warnings = status["data"]["warnings"].to_string();
    assert!(warnings.contains("min_free_disk"), "{status:#}");
    assert_eq!(status["data"]["runner"]["disk_low"], true);
    assert!(full.log_text().contains("below min_free_disk"));
}
