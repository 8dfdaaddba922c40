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
        std::fs::read_to_string(agent.run_dir(&outside, blocked["steps"][0]["current_run_id"].as_str().unwrap()).join("worker.log"))
            .unwrap();
    assert!(events.contains("outside_write_scope"), "{events}");
    agent.terminate();
}
