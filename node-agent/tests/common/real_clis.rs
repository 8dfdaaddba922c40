//! The real coding CLIs for the tests (SPEC §16): where the pinned CLIs are, each one logged
//! in to the scripted model server, agents that drive them, a repository with a typo to fix.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::model_server::ModelServer;
use super::{git_output, git_repo, Agent, ControlPlane};

pub const END: [&str; 4] = ["succeeded", "failed", "blocked", "canceled"];

/// The folder of the pinned CLIs' executables.
pub fn clis_bin() -> PathBuf {
    let bin = std::env::var_os("BAA_AGENT_CLIS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/baa-conductor/agents-cli/node_modules/.bin")
    });
    assert!(
        ["codex", "claude", "gemini", "aider"].iter().all(|cli| bin.join(cli).exists()),
        "the real CLIs are not installed in {}: run scripts/setup-agent-clis (scripts/test does)",
        bin.display()
    );
    bin
}

pub fn path_with_clis() -> String {
    format!("{}:{}", clis_bin().display(), std::env::var("PATH").unwrap_or_default())
}

/// A repository whose `a.txt` says `hi`.
pub fn repo_with_a_typo(dir: &Path) -> PathBuf {
    let repo = git_repo(dir);
    std::fs::write(repo.join("a.txt"), "hi\n").unwrap();
    for args in [&["add", "a.txt"][..], &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a.txt"]] {
        git_output(&repo, args).unwrap();
    }
    repo
}

/// `$CODEX_HOME` logged in to the scripted server: a custom provider, no retries.
pub fn codex_home(dir: &Path, server: &ModelServer) -> PathBuf {
    let home = dir.join("codex-home");
    std::fs::create_dir_all(&home).unwrap();
    let config = format!(
        "model = \"scripted-model\"\nmodel_provider = \"scripted\"\n\n[model_providers.scripted]\nname = \"scripted\"\n\
         base_url = \"{}/v1\"\nwire_api = \"responses\"\nenv_key = \"SCRIPTED_MODEL_KEY\"\nrequest_max_retries = 0\nstream_max_retries = 0\n",
        server.base()
    );
    std::fs::write(home.join("config.toml"), config).unwrap();
    home
}

pub fn codex_agent(plane: &ControlPlane, dir: &Path, server: &ModelServer) -> Agent {
    Agent::new(&plane.base(), "mini-main", dir)
        .arg("--agent", "codex")
        .env("PATH", &path_with_clis())
        .env("CODEX_HOME", &codex_home(dir, server).to_string_lossy())
        .env("SCRIPTED_MODEL_KEY", "scripted")
}

/// Claude Code pointed at the scripted server: with an API key, or (`subscription`) as a
/// subscriber's OAuth login, whose limits arrive as unified rate-limit headers.
pub fn claude_agent(plane: &ControlPlane, dir: &Path, server: &ModelServer, subscription: bool) -> Agent {
    let agent = Agent::new(&plane.base(), "mini-main", dir)
        .arg("--agent", "claude")
        .env("PATH", &path_with_clis())
        .env("ANTHROPIC_BASE_URL", &server.base())
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1");
    if subscription {
        agent.env("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-scripted")
    } else {
        agent.env("ANTHROPIC_API_KEY", "sk-ant-scripted")
    }
}

pub fn agent_runs(detail: &Value) -> Vec<Value> {
    let agent_steps: Vec<&str> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["step_kind"] == "agent")
        .map(|step| step["step_id"].as_str().unwrap())
        .collect();
    let mut runs: Vec<Value> = detail["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|run| agent_steps.contains(&run["step_id"].as_str().unwrap_or("")))
        .cloned()
        .collect();
    runs.sort_by_key(|run| run["started_at"].as_i64().unwrap_or(0));
    runs
}
