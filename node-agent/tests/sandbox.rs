//! SPEC §19 on Linux: a hostile step, sandboxed by default (Landlock), tries to read the
//! agent's tokens and database, another task's worktree and `~/.ssh`, to write `$HOME` and
//! another worktree, and to signal the agent: every attempt fails, no secret reaches a stored
//! log, and the step's own work is committed as usual; an acceptance command meets the same
//! walls. With `--sandbox off` the same step reads them (so the test tests the sandbox), and
//! `--sandbox required` without a proof runs nothing.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::json;

const TOKEN_SECRET: &str = "TOKEN-SECRET-3f9a";
const DATABASE_SECRET: &str = "DATABASE-SECRET-77c1";
const KEY_SECRET: &str = "SSH-KEY-SECRET-1d0e";
const OTHER_SECRET: &str = "OTHER-TASK-SECRET-5b2c";

/// Each attempt prints `<what>: refused` or `<what>: LEAKED <what it got>`.
fn hostile_script(state: &Path, other_worktree: &Path, home: &Path, agent_pid: u32) -> String {
    let attempt = |name: &str, command: String| {
        format!("if out=$({command} 2>/dev/null); then echo \"{name}: LEAKED $out\"; else echo \"{name}: refused\"; fi\n")
    };
    let mut script = String::from("echo mine > mine.txt\n");
    script += &attempt("read tokens", format!("cat '{}/embedded-tokens.env'", state.display()));
    script += &attempt("read database", format!("cat '{}/control.db'", state.display()));
    script += &attempt("read other worktree", format!("cat '{}/secret.txt'", other_worktree.display()));
    script += &attempt("read ssh key", format!("cat '{}/.ssh/id_ed25519'", home.display()));
    script += &attempt("list state", format!("ls '{}'", state.display()));
    script += &attempt("write home", format!("sh -c 'echo x > {}/x && echo wrote'", home.display()));
    script += &attempt("write other worktree", format!("sh -c 'echo x > {}/evil.txt && echo wrote'", other_worktree.display()));
    script += &attempt("signal agent", format!("sh -c 'kill -0 {agent_pid} && echo signalled'"));
    script
}

fn plant_secrets(dir: &Path, agent: &Agent) {
    let state = agent.root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("embedded-tokens.env"), format!("CONTROL_API_BROWSER_ADMIN_TOKEN={TOKEN_SECRET}\n")).unwrap();
    std::fs::write(state.join("control.db"), DATABASE_SECRET).unwrap();
    std::fs::create_dir_all(dir.join(".ssh")).unwrap();
    std::fs::write(dir.join(".ssh/id_ed25519"), KEY_SECRET).unwrap();
}

/// Runs the other task (its worktree holds a secret), then the hostile one; the hostile
/// task's detail and its whole stdout.
fn run_hostile(dir: &Path, plane: &ControlPlane, agent: &mut Agent, repo: &Path) -> (serde_json::Value, String) {
    agent.spawn();
    let other = plane
        .create_task(json!({"repo": repo, "task_type": "shell", "title": "other", "goal": format!("echo {OTHER_SECRET} > secret.txt")}));
    plane.wait_task(&other, &["succeeded"], Duration::from_secs(30));
    let other_worktree = agent.root.join("worktrees").join(&other);
    assert!(other_worktree.join("secret.txt").exists());
    let script = hostile_script(&agent.root.join("state"), &other_worktree, dir, agent.pid());
    // The acceptance command tries the same reads, and passes only when each is refused.
    let acceptance = format!(
        "! cat '{state}/embedded-tokens.env' && ! cat '{state}/control.db' && ! cat '{other}/secret.txt' && ! cat '{home}/.ssh/id_ed25519' && ! touch '{home}/y'",
        state = agent.root.join("state").display(),
        other = other_worktree.display(),
        home = dir.display()
    );
    let hostile =
        plane.create_task(json!({"repo": repo, "task_type": "shell", "title": "hostile", "goal": script, "acceptance": [acceptance]}));
    let detail = plane.wait_task(&hostile, &["succeeded", "failed"], Duration::from_secs(30));
    let stdout = plane.log_text(&hostile, "stdout");
    (detail, stdout)
}

#[test]
fn a_hostile_step_is_kept_from_the_fleets_secrets_and_commits_its_own_work() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--sandbox", "auto");
    plant_secrets(dir.path(), &agent);
    let (detail, stdout) = run_hostile(dir.path(), &plane, &mut agent, &repo);
    let log = agent.log_text();
    assert!(log.contains("sandbox: landlock: proven"), "the startup proof is logged: {log}");
    for attempt in [
        "read tokens",
        "read database",
        "read other worktree",
        "read ssh key",
        "list state",
        "write home",
        "write other worktree",
        "signal agent",
    ] {
        assert!(stdout.contains(&format!("{attempt}: refused")), "{attempt} refused:\n{stdout}");
    }
    assert!(!stdout.contains("LEAKED"), "{stdout}");
    assert_eq!(detail["status"], "succeeded", "its own work and its acceptance went through: {detail:#}");
    assert_eq!(detail["result"]["files_changed"], json!(["mine.txt"]), "committed as usual: {detail:#}");
    assert!(!dir.path().join("x").exists());
    // No secret reaches anything the control plane stored.
    let task_id = detail["task_id"].as_str().unwrap();
    let stored = ["stdout", "stderr", "worker"].map(|stream| plane.log_text(task_id, stream)).concat();
    for secret in [TOKEN_SECRET, DATABASE_SECRET, KEY_SECRET, OTHER_SECRET] {
        assert!(!stored.contains(secret), "{secret} stored");
    }
    // A step that fails on the wall says which path it was refused.
    let key = dir.path().join(".ssh/id_ed25519");
    let walled =
        plane.create_task(json!({"repo": repo, "task_type": "shell", "title": "walled", "goal": format!("cat '{}'", key.display())}));
    let failed = plane.wait_task(&walled, &["failed", "succeeded"], Duration::from_secs(30));
    let reason = failed["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("the sandbox refused {}", key.display())), "{failed:#}");
    // The status page's snapshot and the control plane know how steps run.
    let controllers = http(&plane.base(), "GET", "/v1/controllers", ADMIN, None);
    assert!(controllers.to_string().contains("landlock: proven"), "{controllers}");
    agent.terminate();
}

#[test]
fn with_the_sandbox_off_the_same_step_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--sandbox", "off");
    plant_secrets(dir.path(), &agent);
    let (_, stdout) = run_hostile(dir.path(), &plane, &mut agent, &repo);
    for leaked in [TOKEN_SECRET, DATABASE_SECRET, KEY_SECRET, OTHER_SECRET] {
        assert!(stdout.contains(leaked), "{leaked} readable without the sandbox:\n{stdout}");
    }
    assert!(agent.log_text().contains("sandbox off"));
    agent.terminate();
}

#[test]
fn required_without_a_proof_runs_no_step() {
    let dir = tempfile::tempdir().unwrap();
    let plane = ControlPlane::start(dir.path());
    // A state directory the probe cannot make: the proof fails.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "a file where a folder should be").unwrap();
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path())
        .arg("--sandbox", "required")
        .arg("--state-dir", &blocker.join("state").display().to_string());
    agent.spawn();
    let log = wait_until(Duration::from_secs(20), || {
        let log = agent.log_text();
        if log.contains("--sandbox required: this host runs no step") {
            return Ok(log);
        }
        Err(log)
    });
    assert!(log.contains("NOT proven"), "{log}");
    let controllers = http(&plane.base(), "GET", "/v1/controllers", ADMIN, None);
    wait_until(Duration::from_secs(10), || {
        let controllers = http(&plane.base(), "GET", "/v1/controllers", ADMIN, None);
        let text = controllers.to_string();
        if text.contains("NOT proven") && text.contains("\"capacity\":0") {
            return Ok(());
        }
        Err(text)
    });
    drop(controllers);
    agent.terminate();
}
