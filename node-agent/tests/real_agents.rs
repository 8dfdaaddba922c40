//! SPEC §16 against the real coding CLIs: `@openai/codex`, `@anthropic-ai/claude-code` and
//! `@google/gemini-cli`, installed from npm at pinned versions into the tool cache
//! (`scripts/setup-agent-clis`), driven offline by the project's scripted model server on
//! 127.0.0.1, each run a real agent process with `--agent codex|claude|gemini` on a real git
//! repository: a fix over two rounds (the second resumes the first's session), a usage limit
//! that parks the account, a model that never answers, a model given by `--agent-args`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::model_server::{ModelServer, Reply, CHAT_TOKENS, CLAUDE_TOKENS, CODEX_TOKENS, GEMINI_TOKENS};
use common::real_clis::*;
use common::*;
use serde_json::{json, Value};

/// Round 1 leaves a typo the acceptance command catches; round 2, resumed with the feedback,
/// fixes it. Returns the task's detail and its agent steps' stdout.
fn two_rounds(plane: &ControlPlane, repo: &Path) -> (Value, String) {
    let task_id = plane.create_task(json!({
        "repo": repo, "task_type": "codex", "title": "say hello", "goal": "Make a.txt say hello.",
        "acceptance": ["grep -qx hello a.txt"]
    }));
    let detail = plane.wait_task(&task_id, &END, Duration::from_secs(120));
    (detail, plane.log_text(&task_id, "stdout"))
}

fn assert_two_rounds(detail: &Value, stdout: &str, server: &ModelServer, tokens: (i64, i64), agent: &str, log: &str) {
    assert_eq!(detail["status"], "succeeded", "{detail:#}\n{stdout}\n{log}");
    assert_eq!(detail["result"]["commits"], 2, "a commit per round: {detail:#}");
    let runs = agent_runs(detail);
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let requests = server.requests();
    assert_eq!(requests.len(), 4, "two turns a round");
    for run in &runs {
        let usage = &run["usage"];
        assert_eq!(usage["agent"], agent, "{usage}");
        assert_eq!((usage["input_tokens"].as_i64(), usage["output_tokens"].as_i64()), (Some(2 * tokens.0), Some(2 * tokens.1)), "{usage}");
    }
    let session = runs[0]["usage"]["session_id"].as_str().expect("a session id");
    assert_eq!(runs[1]["usage"]["session_id"], session, "round 2 resumed round 1's session");
    // The second round's first request carries the first round's conversation.
    let round_two = requests[2].to_string();
    assert!(round_two.contains("helo") && round_two.contains("round one done"), "round 2 did not carry round 1: {round_two:.2000}");
    assert!(round_two.contains("did not pass"), "round 2 was told the feedback");
    assert!(stdout.contains(&format!("-- resuming {agent} session {session}")), "{stdout}");
    assert!(stdout.contains("agent: fixed the typo"), "{stdout}");
    assert!(!stdout.contains("{\"type\""), "the log is a transcript, not JSON lines:\n{stdout}");
    println!("--- the agent steps' log, as shipped ---\n{stdout}");
}

#[test]
fn codex_fixes_a_file_over_two_rounds_resuming_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_a_typo(dir.path());
    let server = ModelServer::start(vec![
        Reply::Patch { file: "a.txt".into(), from: "hi".into(), to: "helo".into() },
        Reply::Say("round one done".into()),
        Reply::Patch { file: "a.txt".into(), from: "helo".into(), to: "hello".into() },
        Reply::Say("fixed the typo".into()),
    ]);
    let plane = ControlPlane::start(dir.path());
    let mut agent = codex_agent(&plane, dir.path(), &server);
    agent.spawn();
    let (detail, stdout) = two_rounds(&plane, &repo);
    assert_two_rounds(&detail, &stdout, &server, CODEX_TOKENS, "codex", &agent.log_text());
    assert!(stdout.contains("edited ") && stdout.contains("a.txt (update)"), "{stdout}");
    assert!(agent.log_text().contains("coding agent: codex (codex-cli "), "{}", agent.log_text());
    let controllers = http(&plane.base(), "GET", "/v1/controllers", ADMIN, None);
    assert!(controllers.to_string().contains("codex: codex-cli "), "the heartbeat carries the CLI's version: {controllers}");
    agent.terminate();
}

#[test]
fn claude_fixes_a_file_over_two_rounds_resuming_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_a_typo(dir.path());
    let server = ModelServer::start(vec![
        Reply::Shell("printf 'helo\\n' > a.txt".into()),
        Reply::Say("round one done".into()),
        Reply::Shell("printf 'hello\\n' > a.txt".into()),
        Reply::Say("fixed the typo".into()),
    ]);
    let plane = ControlPlane::start(dir.path());
    let mut agent = claude_agent(&plane, dir.path(), &server, false);
    agent.spawn();
    let (detail, stdout) = two_rounds(&plane, &repo);
    assert_two_rounds(&detail, &stdout, &server, CLAUDE_TOKENS, "claude", &agent.log_text());
    assert!(stdout.contains("$ printf 'helo\\n' > a.txt") && stdout.contains("  → exit 0"), "{stdout}");
    // Claude Code counts a resumed session's cost from its start: each run keeps its own share.
    let costs: Vec<f64> = agent_runs(&detail).iter().map(|run| run["usage"]["cost_usd"].as_f64().unwrap_or(0.0)).collect();
    assert!(costs[0] > 0.0 && (costs[1] - costs[0]).abs() < 1e-9, "the same work costs the same: {costs:?}");
    agent.terminate();
}

/// A usage limit parks the account until its reset (± 1 min), spends no attempt, and the step
/// runs again after `accounts.resume`.
fn parks_and_resumes(plane: &ControlPlane, repo: &Path, resets_at: i64, log: impl Fn() -> String) {
    let task_id = plane.create_task(json!({
        "repo": repo, "task_type": "codex", "title": "say hello", "goal": "Make a.txt say hello.",
        "acceptance": ["grep -qx hello a.txt"], "constraints": {"max_attempts": 2}
    }));
    let waiting = wait_until(Duration::from_secs(90), || {
        let detail = plane.task(&task_id);
        let waits =
            detail["steps"].as_array().into_iter().flatten().any(|step| step["step_kind"] == "agent" && step["status"] == "waiting_quota");
        waits.then_some(detail.clone()).ok_or(format!("{detail:#}\n{}", log()))
    });
    assert_eq!(step_of(&waiting, "agent")["max_attempts"], 3, "the attempt that met the limit is given back: {waiting:#}");
    let state = http(&plane.base(), "GET", "/v1/system/state", ADMIN, None)["data"].clone();
    let parked = &state["parked_accounts"][0];
    assert_eq!(parked["account"], "mini", "{state:#}");
    let until = parked["parked_until"].as_i64().unwrap();
    assert!((until - resets_at).abs() <= 60, "parked until {until}, the server said {resets_at}: {parked}");
    http(&plane.base(), "POST", "/v1/accounts/mini/resume", ADMIN, Some(json!({})));
    let done = plane.wait_task(&task_id, &END, Duration::from_secs(90));
    assert_eq!(done["status"], "succeeded", "{done:#}\n{}", log());
    let step = step_of(&done, "agent");
    assert_eq!((step["attempt"].as_i64(), step["max_attempts"].as_i64()), (Some(2), Some(3)), "one attempt spent of two: {done:#}");
}

#[test]
fn codex_at_its_usage_limit_parks_the_account_until_the_reset() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_a_typo(dir.path());
    let resets_at = wall_ms() as i64 / 1000 + 3 * 3600;
    let server = ModelServer::start(vec![
        Reply::Limit { resets_at },
        Reply::Patch { file: "a.txt".into(), from: "hi".into(), to: "hello".into() },
        Reply::Say("fixed".into()),
    ]);
    let plane = ControlPlane::start(dir.path());
    let mut agent = codex_agent(&plane, dir.path(), &server);
    agent.spawn();
    parks_and_resumes(&plane, &repo, resets_at, || agent.log_text());
    agent.terminate();
}

#[test]
fn claude_with_a_subscription_at_its_limit_parks_the_account_until_the_reset() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_a_typo(dir.path());
    let resets_at = wall_ms() as i64 / 1000 + 5 * 3600 + 17;
    let server =
        ModelServer::start(vec![Reply::Limit { resets_at }, Reply::Shell("printf 'hello\\n' > a.txt".into()), Reply::Say("fixed".into())]);
    let plane = ControlPlane::start(dir.path());
    let mut agent = claude_agent(&plane, dir.path(), &server, true);
    agent.spawn();
    parks_and_resumes(&plane, &repo, resets_at, || agent.log_text());
    agent.terminate();
}

#[test]
fn codex_whose_model_never_answers_is_stopped_as_stalled() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_a_typo(dir.path());
    let server = ModelServer::start(vec![Reply::Hang]);
    let plane = ControlPlane::start(dir.path());
    let mut agent = codex_agent(&plane, dir.path(), &server);
    agent.spawn();
    let task_id = plane.create_task(json!({
        "repo": repo, "task_type": "codex", "title": "hang", "goal": "Make a.txt say hello.",
        "constraints": {"stall_after_sec": 4, "max_attempts": 1}
    }));
    let detail = plane.wait_task(&task_id, &END, Duration::from_secs(90));
    assert_eq!(detail["status"], "failed", "{detail:#}");
    let step = step_of(&detail, "agent");
    assert_eq!(step["status"], "timed_out", "{step:#}");
    assert!(detail.to_string().contains("stalled"), "{detail:#}");
    agent.terminate();
}

/// codex keeps "Reconnecting..." while its server is out of reach, whatever its retry settings;
/// repeating one line is no progress, and the step is stopped as stalled.
#[test]
fn codex_whose_model_is_out_of_reach_is_stopped_as_stalled() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_a_typo(dir.path());
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let home = dir.path().join("codex-home");
    std::fs::create_dir_all(&home).unwrap();
    let config = format!(
        "model = \"scripted-model\"\nmodel_provider = \"scripted\"\n\n[model_providers.scripted]\nname = \"scripted\"\n\
         base_url = \"http://{closed}/v1\"\nwire_api = \"responses\"\nenv_key = \"SCRIPTED_MODEL_KEY\"\nrequest_max_retries = 0\nstream_max_retries = 0\n"
    );
    std::fs::write(home.join("config.toml"), config).unwrap();
    let plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path())
        .arg("--agent", "codex")
        .env("PATH", &path_with_clis())
        .env("CODEX_HOME", &home.to_string_lossy())
        .env("SCRIPTED_MODEL_KEY", "scripted");
    agent.spawn();
    let task_id = plane.create_task(json!({
        "repo": repo, "task_type": "codex", "title": "out of reach", "goal": "Make a.txt say hello.",
        "constraints": {"stall_after_sec": 7, "max_attempts": 1}
    }));
    let detail = plane.wait_task(&task_id, &END, Duration::from_secs(120));
    assert_eq!(step_of(&detail, "agent")["status"], "timed_out", "{detail:#}");
    assert!(detail.to_string().contains("stalled"), "{detail:#}");
    let stdout = plane.log_text(&task_id, "stdout");
    assert_eq!(stdout.matches("error: Reconnecting...").count(), 1, "a repeated line is counted, not written again: {stdout}");
    agent.terminate();
}

#[test]
fn gemini_fixes_a_file_with_a_model_given_by_agent_args() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_a_typo(dir.path());
    let server = ModelServer::start(vec![Reply::Shell("printf 'hello\\n' > a.txt".into()), Reply::Say("fixed a.txt".into())]);
    // Gemini CLI logged in with an API key (its settings name the method), pointed at the server.
    let settings = dir.path().join(".gemini/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, r#"{"security": {"auth": {"selectedType": "gemini-api-key"}}}"#).unwrap();
    let plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path())
        .arg("--agent", "gemini")
        .arg("--agent-args", "-m gemini-2.5-pro")
        .env("PATH", &path_with_clis())
        .env("GEMINI_API_KEY", "scripted")
        .env("GOOGLE_GEMINI_BASE_URL", &server.base());
    agent.spawn();
    let task_id = plane.create_task(json!({
        "repo": repo, "task_type": "codex", "title": "say hello", "goal": "Make a.txt say hello.",
        "acceptance": ["grep -qx hello a.txt"]
    }));
    let detail = plane.wait_task(&task_id, &END, Duration::from_secs(120));
    let stdout = plane.log_text(&task_id, "stdout");
    assert_eq!(detail["status"], "succeeded", "{detail:#}\n{stdout}\n{}", agent.log_text());
    assert_eq!(detail["result"]["commits"], 1);
    let usage = &agent_runs(&detail)[0]["usage"];
    assert_eq!(
        (usage["input_tokens"].as_i64(), usage["output_tokens"].as_i64()),
        (Some(2 * GEMINI_TOKENS.0), Some(2 * GEMINI_TOKENS.1)),
        "{usage}"
    );
    assert_eq!(usage["model"], "gemini-2.5-pro", "the model given by --agent-args: {usage}");
    assert!(usage["session_id"].is_string(), "{usage}");
    assert!(stdout.contains("$ printf 'hello\\n' > a.txt") && stdout.contains("agent: fixed a.txt"), "{stdout}");
    println!("--- the agent step's log, as shipped ---\n{stdout}");
    agent.terminate();
}

#[test]
fn aider_fixes_a_file_and_leaves_the_repository_s_gitignore_alone() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_with_a_typo(dir.path());
    // aider's "whole" edit format (a model it does not know): the file's name, then all of it.
    let server = ModelServer::start(vec![Reply::Say("I will fix the typo.\n\na.txt\n```\nhello\n```\n".into())]);
    let plane = ControlPlane::start(dir.path());
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path())
        .arg("--agent", "aider")
        .arg("--agent-args", "--model openai/scripted")
        .env("PATH", &path_with_clis())
        .env("OPENAI_API_KEY", "scripted")
        .env("OPENAI_API_BASE", &format!("{}/v1", server.base()));
    agent.spawn();
    let task_id = plane.create_task(json!({
        "repo": repo, "task_type": "codex", "title": "say hello", "goal": "Make a.txt say hello.",
        "acceptance": ["grep -qx hello a.txt"]
    }));
    let detail = plane.wait_task(&task_id, &END, Duration::from_secs(120));
    let stdout = plane.log_text(&task_id, "stdout");
    assert_eq!(detail["status"], "succeeded", "{detail:#}\n{stdout}\n{}", agent.log_text());
    assert_eq!(detail["result"]["files_changed"], json!(["a.txt"]), "nothing but the fix is committed: {detail:#}");
    let usage = &agent_runs(&detail)[0]["usage"];
    assert_eq!((usage["input_tokens"].as_i64(), usage["output_tokens"].as_i64()), (Some(CHAT_TOKENS.0), Some(CHAT_TOKENS.1)), "{usage}");
    assert_eq!(usage["model"], "openai/scripted", "{usage}");
    assert!(stdout.contains("edited a.txt (edit)"), "{stdout}");
    agent.terminate();
}
