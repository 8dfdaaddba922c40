//! SPEC §16 around the real coding CLIs: a new user's first `start --embedded --agent codex`,
//! a host whose CLI is missing, and sessions that cannot be resumed (`node-agent agent-exec`
//! run by hand on a step's files, against the pinned codex and Claude Code and the project's
//! scripted model server).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::model_server::{ModelServer, Reply};
use common::real_clis::*;
use common::*;
use serde_json::json;

/// Tried as a new user would: codex logged in (its `~/.codex/config.toml`, here naming the
/// scripted server), then `node-agent start --embedded --agent codex` with nothing else set.
#[test]
fn a_new_user_runs_a_codex_task_to_a_commit_with_start_embedded_agent_codex() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_a_typo(dir.path());
    let server =
        ModelServer::start(vec![Reply::Patch { file: "a.txt".into(), from: "hi".into(), to: "hello".into() }, Reply::Say("done".into())]);
    let home = dir.path().join("home");
    let codex_config = codex_home(dir.path(), &server).join("config.toml");
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    std::fs::copy(codex_config, home.join(".codex/config.toml")).unwrap();
    let (out, err) = (dir.path().join("agent.out"), dir.path().join("agent.err"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args(["start", "--embedded", "--agent", "codex", "--control-listen", "127.0.0.1:0", "--local-api", "off"])
        .env_clear()
        .env("HOME", &home)
        .env("PATH", path_with_clis())
        .env("SCRIPTED_MODEL_KEY", "scripted")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let control = logged_address(|| std::fs::read_to_string(&err).unwrap_or_default(), "embedded control plane on http://");
    let admin = wait_until(Duration::from_secs(10), || {
        let printed = std::fs::read_to_string(&out).unwrap_or_default();
        printed.lines().find_map(|line| line.trim().strip_prefix("admin token").map(|token| token.trim().to_string())).ok_or(printed)
    });
    let base = format!("http://{control}");
    let body = json!({"repo": repo, "task_type": "codex", "title": "say hello", "goal": "Make a.txt say hello.", "acceptance": ["grep -qx hello a.txt"]});
    let created = http(&base, "POST", "/v1/tasks", &admin, Some(body));
    let task_id = created["data"]["task_id"].as_str().unwrap_or_else(|| panic!("{created}")).to_string();
    let detail = wait_until(Duration::from_secs(60), || {
        let detail = http(&base, "GET", &format!("/v1/tasks/{task_id}"), &admin, None)["data"].clone();
        END.contains(&detail["status"].as_str().unwrap_or("")).then_some(detail.clone()).ok_or(format!("{detail:#}"))
    });
    let logged = std::fs::read_to_string(&err).unwrap_or_default();
    assert_eq!(detail["status"], "succeeded", "{detail:#}\n{logged}");
    let head = detail["result"]["head_commit"].as_str().unwrap();
    assert_eq!(git_output(&repo, &["show", &format!("{head}:a.txt")]).unwrap(), "hello");
    assert!(logged.contains("coding agent: codex (codex-cli 0.171.0)"), "{logged}");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    wait_exit(&mut child, Duration::from_secs(20), "the embedded agent");
}

#[test]
fn a_host_whose_cli_is_missing_warns_and_is_granted_no_agent_steps() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_a_typo(dir.path());
    let plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--agent", "gemini").env("PATH", "/usr/bin:/bin");
    agent.spawn();
    let task_id = plane.create_task(json!({"repo": repo, "task_type": "codex", "title": "say hello", "goal": "Make a.txt say hello."}));
    let waiting = wait_until(Duration::from_secs(30), || {
        let detail = plane.task(&task_id);
        // The setup step (a shell step) runs; the agent step waits for a host that offers it.
        let waits = detail["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|step| step["step_kind"] == "agent" && step["status"] == "ready" && step["waiting_reason"]["code"] == "no_host");
        let controllers = http(&plane.base(), "GET", "/v1/controllers", ADMIN, None).to_string();
        (waits && controllers.contains("gemini: not available")).then_some(detail.clone()).ok_or(format!("{detail:#}\n{controllers}"))
    });
    assert!(agent_runs(&waiting).is_empty(), "no agent run started: {waiting:#}");
    assert!(agent.log_text().contains("warning: the gemini CLI (gemini) is not on PATH"), "{}", agent.log_text());
    agent.terminate();
}

/// One agent step's files, as the runner lays them out, for `agent-exec` run by hand.
struct StepDir {
    worktree: PathBuf,
    run_dir: PathBuf,
}

impl StepDir {
    /// A second round: the feedback of the first, and (with `session`) the first round's session.
    fn second_round(dir: &Path, agent: &str, session: Option<&str>) -> StepDir {
        let worktree = repo_with_a_typo(dir);
        let run_dir = dir.join("runs/task_1/task_1.s3.a1");
        std::fs::create_dir_all(&run_dir).unwrap();
        std::fs::write(run_dir.join("goal.md"), "Make a.txt say hello.\n").unwrap();
        std::fs::write(run_dir.join("feedback.md"), "# Feedback from round 1\n\nThe acceptance command failed: grep -qx hello a.txt\n")
            .unwrap();
        if let Some(session) = session {
            let record = json!({"agent": agent, "session_id": session, "run_id": "task_1.s1.a1"});
            std::fs::write(dir.join("runs/task_1/agent-session.json"), record.to_string()).unwrap();
        }
        StepDir { worktree, run_dir }
    }

    /// `node-agent agent-exec --preset NAME` in the worktree: its exit code and stdout.
    fn exec(&self, preset: &str, envs: &[(&str, String)]) -> (i32, String) {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_node-agent"))
            .args(["agent-exec", "--preset", preset])
            .current_dir(&self.worktree)
            .env("PATH", path_with_clis())
            .env("BAA_RUN_DIR", &self.run_dir)
            .env("BAA_GOAL_FILE", self.run_dir.join("goal.md"))
            .env("BAA_FEEDBACK_FILE", self.run_dir.join("feedback.md"))
            .env("BAA_REPORT_FILE", self.run_dir.join("agent-report.md"))
            .env("BAA_USAGE_FILE", self.run_dir.join("usage.json"))
            .envs(envs.iter().map(|(name, value)| (*name, value.as_str())))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        (output.status.code().unwrap_or(-1), format!("{}\n[stderr]\n{stderr}", String::from_utf8_lossy(&output.stdout)))
    }
}

#[test]
fn a_session_that_cannot_be_resumed_gives_way_to_a_new_one_with_the_whole_prompt() {
    let gone = "01a23c63-0000-7000-8000-0000000000aa";
    let unreadable = "01a23c63-0000-7000-8000-0000000000bb";
    for (session, saying) in [
        (None, "-- no earlier session of this task on this host: a new session gets the whole prompt"),
        (Some(gone), "-- session 01a23c63-0000-7000-8000-0000000000aa is gone from this host: a new session gets the whole prompt"),
        (
            Some(unreadable),
            "-- codex did not resume session 01a23c63-0000-7000-8000-0000000000bb: starting a new session with the whole prompt",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let step = StepDir::second_round(dir.path(), "codex", session);
        let server = ModelServer::start(vec![Reply::Say("fixed".into())]);
        let home = codex_home(dir.path(), &server);
        // A session file codex cannot read: it refuses to resume it.
        let day = home.join("sessions/2026/12/03");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::write(day.join(format!("rollout-2026-12-03T10-00-00-{unreadable}.jsonl")), "").unwrap();
        let envs = [("CODEX_HOME", home.to_string_lossy().into_owned()), ("SCRIPTED_MODEL_KEY", "scripted".into())];
        let (code, stdout) = step.exec("codex", &envs);
        assert_eq!(code, 0, "{stdout}");
        assert!(stdout.contains(saying), "{stdout}");
        let requests = server.requests();
        assert_eq!(requests.len(), 1, "one new session");
        let request = requests[0].to_string();
        assert!(
            request.contains("Make a.txt say hello.") && request.contains("Feedback from round 1"),
            "the whole prompt: {request:.3000}"
        );
        let usage = read_json(&step.run_dir.join("usage.json"));
        assert_ne!(usage["session_id"].as_str(), session, "{usage}");
    }

    // Claude Code names the session it does not have.
    let dir = tempfile::tempdir().unwrap();
    let missing = "11111111-2222-3333-4444-555555555555";
    let step = StepDir::second_round(dir.path(), "claude", Some(missing));
    let home = dir.path().join("claude-user");
    let project = home.join(".claude/projects").join(step.worktree.to_string_lossy().replace(['/', '.'], "-"));
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join(format!("{missing}.jsonl")), "").unwrap();
    let server = ModelServer::start(vec![Reply::Say("fixed".into())]);
    let envs = [
        ("HOME", home.to_string_lossy().into_owned()),
        ("ANTHROPIC_BASE_URL", server.base()),
        ("ANTHROPIC_API_KEY", "sk-ant-scripted".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
    ];
    let (code, stdout) = step.exec("claude", &envs);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains(&format!("-- claude did not resume session {missing}: starting a new session with the whole prompt")),
        "{stdout}"
    );
    assert!(server.requests()[0].to_string().contains("Make a.txt say hello."));
}
