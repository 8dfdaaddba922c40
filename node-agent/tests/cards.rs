//! SPEC §12 with a real agent, real git and real processes: a task's write scope holds its
//! coding agent to the paths it may change.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// A stand-in coding agent: writes a note inside `notes/`, and, when the goal says so, a file
/// outside it too.
const STAND_IN_AGENT: &str = r#"#!/bin/sh
goal=$(cat "$1")
printf '## result\nwrote the note\n\n## risks\nnone\n' > "$2"
mkdir -p notes
printf '%s\n' "$goal" > notes/goal.md
case "$goal" in
  *"and the readme"*) echo "changed" >> README.md ;;
esac
echo "stand-in agent: done"
"#;

#[test]
fn an_agent_that_writes_outside_its_write_scope_blocks_its_task_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let base = git_output(&repo, &["rev-parse", "HEAD"]).unwrap();
    let plane = ControlPlane::start(dir.path());
    let script = dir.path().join("stand-in-agent.sh");
    std::fs::write(&script, STAND_IN_AGENT).unwrap();
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path())
        .env("BAA_AGENT_COMMAND", &format!("sh {} {{goal_file}} {{report_file}}", script.display()));
    agent.spawn();
    let card = |key: &str, goal: &str| json!({"repo": repo, "task_type": "codex", "title": key, "goal": goal, "key": key, "write_scope": ["notes/**"]});
    let inside = plane.create_task(card("T-IN", "write the note"));
    let outside = plane.create_task(card("T-OUT", "write the note and the readme"));
    let done = plane.wait_task(&inside, &["succeeded", "failed", "blocked"], Duration::from_secs(60));
    assert_eq!(done["status"], "succeeded", "{done:#}\n{}", agent.log_text());
    assert_eq!(git_output(&repo, &["show", "--name-only", "--format=", &format!("baa/{inside}")]).unwrap(), "notes/goal.md");
    // Its report: the files from the branch, the commands from the steps, the rest from the
    // agent's report file.
    let report = http(&plane.base(), "GET", &format!("/v1/tasks/{inside}/report"), ADMIN, None)["data"].clone();
    assert_eq!(report["report"]["files_changed"], json!(["notes/goal.md"]), "{report:#}");
    assert_eq!(report["report"]["commands_run"], json!(["coding agent (codex): coding agent"]));
    assert_eq!((report["report"]["result"].as_str(), report["report"]["risks"].as_str()), (Some("wrote the note"), Some("none")));
    let markdown = report["markdown"].as_str().unwrap();
    for heading in ["# T-IN", "## files_changed", "## commands_run", "## result", "## risks", "## next_handoff"] {
        assert!(markdown.contains(heading), "{markdown}");
    }

    let blocked = plane.wait_task(&outside, &["succeeded", "failed", "blocked"], Duration::from_secs(60));
    assert_eq!(blocked["status"], "blocked", "{blocked:#}");
    let reason = blocked["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("README.md") && reason.contains("write_scope") && !reason.contains("notes/goal.md"), "{reason}");
    assert_eq!(git_output(&repo, &["rev-parse", &format!("baa/{outside}")]).unwrap(), base, "nothing was committed");
    let events =
        std::fs::read_to_string(agent.run_dir(&outside, step_of(&blocked, "agent")["current_run_id"].as_str().unwrap()).join("worker.log"))
            .unwrap();
    assert!(events.contains("outside_write_scope"), "{events}");
    agent.terminate();
}

fn tasks_cli(plane: &ControlPlane, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .arg("tasks")
        .args(args)
        .env_clear()
        .env("BAA_CONTROL_API_BASE", plane.base())
        .env("BAA_ADMIN_TOKEN", ADMIN)
        .output()
        .unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn cards_are_imported_in_order_once_and_the_cli_follows_logs_and_prints_reports() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let repo_text = repo.display().to_string();
    let plane = ControlPlane::start(dir.path());
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cards");
    let files: Vec<String> = ["T-015.md", "T-013.md", "T-014.md"].iter().map(|name| fixtures.join(name).display().to_string()).collect();
    let mut args = vec!["import", "--repo", repo_text.as_str()];
    args.extend(files.iter().map(String::as_str));
    let first = stdout(&tasks_cli(&plane, &args));
    let order: Vec<&str> = first.lines().map(|line| line.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(order, ["T-013", "T-014", "T-015"], "dependencies first:\n{first}");
    assert!(first.lines().all(|line| line.starts_with("created")), "{first}");
    let again = stdout(&tasks_cli(&plane, &args));
    assert!(again.lines().all(|line| line.starts_with("exists")), "importing again creates nothing:\n{again}");
    let tasks = http(&plane.base(), "GET", "/v1/tasks?limit=200", ADMIN, None)["data"]["tasks"].as_array().unwrap().clone();
    assert_eq!(tasks.len(), 3);
    let by_key = |key: &str| tasks.iter().find(|task| task["key"] == key).unwrap().clone();
    let (t13, t14, t15) = (by_key("T-013"), by_key("T-014"), by_key("T-015"));
    assert_eq!(t13["title"], "运行器：写入范围");
    assert_eq!(t13["write_scope"], json!(["notes/runner/**"]));
    assert_eq!(t13["branch_name"], "feat/t-013-write-scope");
    assert_eq!(t14["depends_on"], json!([t13["task_id"]]));
    assert_eq!(t14["write_scope"], json!(["notes/control/**", "notes/api.md"]));
    assert_eq!(t15["depends_on"], json!([t13["task_id"], t14["task_id"]]));
    assert_eq!(t15["review"], true);
    assert_eq!(t14["acceptance"], json!(["test -d notes"]));
    let listed = stdout(&tasks_cli(&plane, &["list"]));
    assert!(listed.contains("T-015") && listed.contains(&format!("{}-", chrono_year())), "local date-times:\n{listed}");

    // A running task's lines, followed until it ends; its report in the card's sections.
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path());
    agent.spawn();
    let goal = "for i in 1 2 3 4 5; do echo line $i; sleep 0.4; done";
    let created = stdout(&tasks_cli(
        &plane,
        &["create", "--repo", &repo_text, "--type", "shell", "--title", "count", "--goal", goal, "--key", "C-1"],
    ));
    assert!(created.starts_with("C-1 task_"), "{created}");
    let followed = stdout(&tasks_cli(&plane, &["logs", "C-1", "--follow"]));
    assert_eq!(followed.lines().collect::<Vec<_>>(), ["line 1", "line 2", "line 3", "line 4", "line 5"], "{followed}");
    let report = stdout(&tasks_cli(&plane, &["report", "C-1"]));
    for section in ["# C-1: count", "## files_changed", "## commands_run", goal, "## result", "## risks", "## next_handoff"] {
        assert!(report.contains(section), "{section}:\n{report}");
    }
    agent.terminate();
    let version = std::process::Command::new(env!("CARGO_BIN_EXE_node-agent")).arg("--version").output().unwrap();
    assert_eq!(stdout(&version).trim(), format!("node-agent {}", env!("CARGO_PKG_VERSION")));
}

/// This year, as the local date-times the CLI prints start with it.
fn chrono_year() -> String {
    let output = std::process::Command::new("date").arg("+%Y").output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}
