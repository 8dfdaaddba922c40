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
    assert!(reason.starts_with("step 0 failed: no_change:"), "{reason}");
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
    let step = &stalled["steps"][0];
    assert_eq!(step["status"], "timed_out", "{stalled:#}");
    let error = step["error"].as_str().unwrap();
    assert!(error.starts_with("stalled: ") && error.ends_with("last output: going quiet"), "{error}");
    let run = &stalled["runs"][0];
    let lasted = run["finished_at"].as_i64().unwrap() - run["started_at"].as_i64().unwrap();
    // 5 s without progress, the 2 s kill grace (the idle agent dies at SIGTERM), one tick,
    // and whole seconds on both ends.
    assert!((5..=9).contains(&lasted), "stopped after {lasted} s");
    for (task_id, what) in [(&burn, "computing"), (&write, "writing a file")] {
        let done = plane.wait_task(task_id, &end, Duration::from_secs(60));
        assert_eq!(done["status"], "succeeded", "{what} for 20 s is not a stall: {done:#}");
        let run = &done["runs"][0];
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
        .env("BAA_AGENT_COMMAND", &format!("sh {} {{goal_file}} {{feedback_file}}", script.display()));
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
    assert_eq!(steps, [(1, "agent", "succeeded"), (1, "test", "failed"), (2, "agent", "succeeded"), (2, "test", "succeeded")]);
    let branch = format!("baa/{rounds}");
    assert_eq!(git_output(&repo, &["rev-list", "--count", &format!("{base}..{branch}")]).unwrap(), "2", "a commit per round");
    assert_eq!(done["result"]["commits"], 2);
    let feedback_run = done["steps"][2]["current_run_id"].as_str().unwrap();
    let feedback = std::fs::read_to_string(agent.run_dir(&rounds, feedback_run).join("feedback.md")).unwrap();
    assert!(feedback.contains("sh test.sh") && feedback.contains("2 + 3 is not -1"), "{feedback}");

    let failed = plane.wait_task(&once, &end, Duration::from_secs(60));
    assert_eq!(failed["status"], "failed", "max_rounds 1: no second round: {failed:#}");
    assert_eq!(failed["steps"].as_array().unwrap().len(), 2);
    agent.terminate();
}
