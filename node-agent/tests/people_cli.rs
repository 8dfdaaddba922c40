//! SPEC §18: the people's CLI as a person runs it. On a host running `start --embedded` no
//! flag and no variable is needed (`tasks list|show|diff|wave`, `system …`); a fleet's control
//! plane is reached after `node-agent login` (token from stdin, kept 0600) until `logout`;
//! flags are accepted before and after the command.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// `node-agent <args>` as a person on this host: an empty environment but `HOME` and `PATH`.
fn person(home: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[track_caller]
fn said(output: &Output) -> String {
    let (out, err) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "failed: {out}{err}");
    out.into_owned()
}

#[track_caller]
fn refused(output: &Output) -> String {
    assert!(!output.status.success(), "should fail: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn wait_status(home: &Path, key: &str, status: &str) {
    wait_until(Duration::from_secs(60), || {
        let shown = said(&person(home, &["tasks", "show", key], None));
        if shown.lines().next().is_some_and(|line| line.contains(&format!("  {status}  "))) {
            return Ok(());
        }
        Err(shown)
    });
}

#[test]
fn on_an_embedded_host_the_cli_needs_no_flags_and_shows_what_was_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let repo = git_repo(dir.path());
    let repo_text = repo.display().to_string();
    let mut agent = embedded_agent(&home, &[]);
    let state = node_agent::config::default_runtime_root(Some(&home.to_string_lossy())).join("state");
    wait_until(Duration::from_secs(20), || std::fs::read_to_string(state.join("embedded-address")).map_err(|error| error.to_string()));
    let tokens = std::fs::read_to_string(state.join("embedded-tokens.env")).unwrap();
    assert_eq!(std::fs::metadata(state.join("embedded-tokens.env")).unwrap().permissions().mode() & 0o777, 0o600);

    // A wave of three cards: W-2 and W-3 need W-1.
    let create = |key: &str, goal: &str, needs: &[&str]| {
        let mut args = vec!["tasks", "create", "--repo", &repo_text, "--type", "shell", "--key", key, "--title", key, "--goal", goal];
        for need in needs {
            args.extend(["--depends-on", need]);
        }
        said(&person(&home, &args, None))
    };
    let first = create("W-1", "printf 'one\\ntwo\\n' > a.txt", &[]);
    assert!(first.starts_with("W-1 task_"), "{first}");
    create("W-2", "echo two > b.txt", &["W-1"]);
    create("W-3", "echo three > c.txt", &["W-1"]);
    for key in ["W-1", "W-2", "W-3"] {
        wait_status(&home, key, "succeeded");
    }

    let listed = said(&person(&home, &["tasks", "list"], None));
    assert!(listed.ends_with('\n'), "the prompt on its own line: {listed:?}");
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("KEY ") && lines.len() == 4, "{listed}");
    let status_column = lines[0].find("STATUS").unwrap();
    assert!(lines[1..].iter().all(|line| line[status_column..].starts_with("succeeded")), "aligned:\n{listed}");

    let shown = said(&person(&home, &["tasks", "show", "W-1"], None));
    for expected in [
        "  branch     baa/task_",
        "  commits    1 (1 files changed, +2 -0)",
        "             a.txt",
        "  delivery   on host mini only (deliver: none)",
        "  host       mini",
    ] {
        assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
    }

    let diff = said(&person(&home, &["tasks", "diff", "W-1"], None));
    assert!(diff.contains("+++ b/a.txt\n") && diff.contains("+one\n+two\n"), "{diff}");
    assert!(!diff.contains('\u{1b}'), "no colour when stdout is no terminal");

    let wave = said(&person(&home, &["tasks", "wave", "W-"], None));
    assert!(wave.starts_with("wave W-: 3 cards, 3 succeeded\nlayer 1\n  ● W-1"), "{wave}");
    assert!(wave.contains("layer 2\n  └▶ W-2") && wave.contains("needs W-1"), "{wave}");

    // Flags after the command and before it.
    let base = std::fs::read_to_string(state.join("embedded-address")).unwrap().trim().to_string();
    let admin = tokens.lines().find_map(|line| line.strip_prefix("CONTROL_API_BROWSER_ADMIN_TOKEN=")).unwrap();
    let json_after = said(&person(&home, &["tasks", "list", "--json", "--control-api-base", &base, "--token", admin], None));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json_after).unwrap()["tasks"].as_array().unwrap().len(), 3);
    said(&person(&home, &["--control-api-base", &base, "tasks", "show", "W-2"], None));

    // The fleet's mode, from the same host.
    let paused = said(&person(&home, &["system", "pause", "--reason", "lunch"], None));
    assert!(paused.to_lowercase().contains("pause"), "{paused}");
    let state_text = said(&person(&home, &["system", "state"], None));
    assert!(state_text.starts_with("mode      paused\n") && state_text.contains("leader    mini"), "{state_text}");
    assert!(state_text.contains("HOST") && state_text.contains("alive"), "{state_text}");
    said(&person(&home, &["system", "resume"], None));
    assert!(said(&person(&home, &["system", "state"], None)).starts_with("mode      running\n"));

    let _ = Command::new("kill").args(["-TERM", &agent.id().to_string()]).status();
    wait_exit(&mut agent, Duration::from_secs(20), "the embedded agent");
    let gone = refused(&person(&home, &["tasks", "list"], None));
    assert!(gone.contains("did not answer") && gone.contains("embedded-address"), "says where the address came from: {gone}");
}

#[test]
fn login_keeps_a_fleets_address_and_token_until_logout() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let plane = ControlPlane::start(dir.path());
    let base = plane.base();

    let nothing = refused(&person(&home, &["tasks", "list"], None));
    assert!(nothing.contains("no control plane") && nothing.contains("node-agent login"), "{nothing}");
    let wrong = refused(&person(&home, &["login", "--control-api-base", &base], Some("not-the-token\n")));
    assert!(wrong.contains("refused the token") && !wrong.contains("not-the-token"), "{wrong}");
    let login_file = home.join(".config/baa-conductor/login.json");
    assert!(!login_file.exists(), "a refused token is not kept");

    let kept = said(&person(&home, &["login", "--control-api-base", &base], Some(&format!("{ADMIN}\n"))));
    assert!(kept.contains("logged in") && !kept.contains(ADMIN), "{kept}");
    assert_eq!(std::fs::metadata(&login_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(login_file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    plane.create_task(serde_json::json!({"repo": "/srv/r", "task_type": "shell", "title": "from the fleet", "goal": "true"}));
    let listed = said(&person(&home, &["tasks", "list"], None));
    assert!(listed.contains("from the fleet"), "{listed}");

    said(&person(&home, &["logout"], None));
    assert!(!login_file.exists());
    assert!(refused(&person(&home, &["tasks", "list"], None)).contains("no control plane"));
}
