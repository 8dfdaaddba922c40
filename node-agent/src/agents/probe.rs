//! At startup the agent asks the preset's CLI for its version (SPEC §16): logged, shown on the
//! status page and sent with every sync. A CLI that is missing or does not answer is a warning,
//! and the host then offers no agent steps.

use std::time::Duration;

use serde::Serialize;

use super::Preset;

/// How long `--version` may take (a CLI's first start can unpack itself).
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// What the host knows of its coding CLI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentCli {
    pub agent: String,
    /// The first line `--version` printed; `None` when the CLI could not be run.
    pub version: Option<String>,
    /// Why the host offers no agent steps.
    pub warning: Option<String>,
}

impl AgentCli {
    pub fn ready(&self) -> bool {
        self.version.is_some()
    }
}

/// Runs `<cli> --version`.
pub async fn probe(preset: Preset) -> AgentCli {
    let mut command = tokio::process::Command::new(preset.program());
    command.arg("--version").stdin(std::process::Stdio::null()).kill_on_drop(true);
    let answer = tokio::time::timeout(VERSION_TIMEOUT, command.output()).await;
    let failure = |why: String| AgentCli {
        agent: preset.name().into(),
        version: None,
        warning: Some(format!(
            "the {preset} CLI ({}) {why}: this host runs no agent steps until it is fixed and the agent restarted",
            preset.program()
        )),
    };
    match answer {
        Err(_) => failure(format!("did not answer --version within {} s", VERSION_TIMEOUT.as_secs())),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => failure("is not on PATH".into()),
        Ok(Err(error)) => failure(format!("could not be started: {error}")),
        Ok(Ok(output)) if !output.status.success() => failure(format!(
            "failed --version ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).lines().next().unwrap_or_default()
        )),
        Ok(Ok(output)) => {
            let text = String::from_utf8_lossy(&output.stdout);
            let version = text.lines().find(|line| !line.trim().is_empty()).unwrap_or("unknown").trim().to_string();
            AgentCli { agent: preset.name().into(), version: Some(version), warning: None }
        }
    }
}
