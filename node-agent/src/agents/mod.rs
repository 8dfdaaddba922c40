//! The coding CLIs people use, driven properly (SPEC §16): `--agent codex|claude|gemini|aider`.
//! For each preset the runner knows the invocation an unattended run needs (no approval
//! prompts, the CLI's own workspace sandbox where it has one, stdin at EOF, JSON events), how
//! to resume the previous round's session, and how to read the CLI's events into a readable
//! transcript, usage, the session id and usage limits.
//!
//! - this file: the presets and their command lines. Pure.
//! - [`prompt`]: what the agent is told: the goal, the last round's feedback, the report. Pure.
//! - [`tally`]: what the events add up to (session, usage, limit, final message), and the
//!   transcript's line shapes. Pure.
//! - [`codex`], [`claude`], [`gemini`], [`aider`]: each CLI's output, line by line. Pure.
//! - [`exec`]: `node-agent agent-exec`, the step's process: starts the CLI, writes the
//!   transcript, the raw events, the usage and the limit into the run directory, resumes or
//!   starts over.
//! - [`probe`]: the CLI's `--version` at startup.

pub mod aider;
pub mod claude;
pub mod codex;
pub mod exec;
pub mod gemini;
pub mod probe;
pub mod prompt;
pub mod tally;

use std::fmt;
use std::str::FromStr;

use tally::{Tally, Transcript};

/// A coding CLI the runner knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Codex,
    Claude,
    Gemini,
    Aider,
}

impl Preset {
    pub const ALL: [Preset; 4] = [Preset::Codex, Preset::Claude, Preset::Gemini, Preset::Aider];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Codex => "codex",
            Preset::Claude => "claude",
            Preset::Gemini => "gemini",
            Preset::Aider => "aider",
        }
    }

    /// The executable, looked up on `PATH`.
    pub fn program(self) -> &'static str {
        self.name()
    }

    /// Whether the CLI can continue an earlier session from the command line.
    pub fn resumes(self) -> bool {
        matches!(self, Preset::Codex | Preset::Claude)
    }

    /// The arguments of one unattended run: `prompt` as the instructions, `resume` the session
    /// to continue, `writable` a folder beyond the worktree the agent must write (the run
    /// directory, where its report goes), `extra` the host's own flags (`--agent-args`).
    /// `sandboxed`: the step runs in the agent's sandbox (SPEC §19), which a CLI's own cannot
    /// nest in — codex's is turned off, ours in force.
    pub fn arguments(self, prompt: &str, resume: Option<&str>, writable: &str, extra: &[String], sandboxed: bool) -> Vec<String> {
        let owned = |items: &[&str]| items.iter().map(|item| item.to_string()).collect::<Vec<String>>();
        match self {
            Preset::Codex => {
                // `exec resume` takes no --sandbox or --add-dir: the same settings as config
                // overrides serve both forms.
                let mut arguments = owned(&["exec"]);
                if resume.is_some() {
                    arguments.push("resume".into());
                }
                arguments.extend(owned(&["--json", "--skip-git-repo-check", "-c", "approval_policy=\"never\"", "-c"]));
                if sandboxed {
                    arguments.push("sandbox_mode=\"danger-full-access\"".into());
                } else {
                    arguments.extend(owned(&["sandbox_mode=\"workspace-write\"", "-c"]));
                    // A JSON string is a TOML basic string (the same escapes).
                    let root = serde_json::to_string(writable).unwrap_or_default();
                    arguments.push(format!("sandbox_workspace_write.writable_roots=[{root}]"));
                }
                arguments.extend(extra.iter().cloned());
                arguments.extend(resume.map(str::to_string));
                arguments.push(prompt.to_string());
                arguments
            }
            Preset::Claude => {
                // The prompt comes first: --allowedTools and --add-dir take every argument after them.
                let mut arguments = owned(&["-p", prompt, "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"]);
                if let Some(session) = resume {
                    arguments.extend(owned(&["--resume", session]));
                }
                arguments.extend(extra.iter().cloned());
                arguments.extend(owned(&["--add-dir", writable]));
                arguments
            }
            Preset::Gemini => {
                // In a folder it has not been told to trust, Gemini CLI turns yolo back into
                // "default" (ask for every tool), which nobody answers.
                let mut arguments = owned(&["--output-format", "stream-json", "--approval-mode", "yolo", "--skip-trust"]);
                arguments.extend(extra.iter().cloned());
                arguments.extend(owned(&["--prompt", prompt]));
                arguments
            }
            Preset::Aider => {
                let mut arguments = owned(&[
                    "--yes-always",
                    "--no-auto-commits",
                    "--no-dirty-commits",
                    "--no-pretty",
                    "--no-stream",
                    "--no-check-update",
                    "--no-show-model-warnings",
                    "--no-analytics",
                    // aider adds `.aider*` to the repository's .gitignore unless told not to:
                    // a change the task did not ask for.
                    "--no-gitignore",
                    "--no-show-release-notes",
                    "--no-fancy-input",
                ]);
                // Its histories go to the run directory, not into the repository.
                arguments.extend([
                    "--chat-history-file".to_string(),
                    format!("{writable}/aider.chat.history.md"),
                    "--input-history-file".to_string(),
                    format!("{writable}/aider.input.history"),
                ]);
                arguments.extend(extra.iter().cloned());
                arguments.extend(owned(&["--message", prompt]));
                arguments
            }
        }
    }

    /// A reader of this CLI's standard output.
    pub fn reader(self) -> Box<dyn EventReader> {
        match self {
            Preset::Codex => Box::<codex::CodexReader>::default(),
            Preset::Claude => Box::<claude::ClaudeReader>::default(),
            Preset::Gemini => Box::<gemini::GeminiReader>::default(),
            Preset::Aider => Box::<aider::AiderReader>::default(),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(text: &str) -> Result<Preset, String> {
        Preset::ALL
            .into_iter()
            .find(|preset| preset.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| format!("must be one of codex, claude, gemini, aider, got {text:?}"))
    }
}

/// One CLI's standard output, read a line at a time: what each line adds to the tally, and the
/// transcript lines it becomes.
pub trait EventReader {
    fn line(&mut self, line: &str, tally: &mut Tally, transcript: &mut Transcript);
}

/// Splits `--agent-args` as a shell would split plain words and quotes (no expansion).
pub fn split_arguments(text: &str) -> Result<Vec<String>, String> {
    shlex::split(text).ok_or_else(|| "has an unclosed quote or a trailing backslash".to_string())
}

/// Every line of `output` read by `preset`'s reader: the tally and the transcript (tests).
#[cfg(test)]
pub fn read_all(preset: Preset, output: &str) -> (Tally, Vec<String>) {
    let (mut reader, mut tally, mut transcript) = (preset.reader(), Tally::default(), Transcript::default());
    for line in output.lines() {
        reader.line(line, &mut tally, &mut transcript);
    }
    (tally, transcript.take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_by_name() {
        assert_eq!("Codex".parse::<Preset>(), Ok(Preset::Codex));
        assert_eq!(" aider ".parse::<Preset>(), Ok(Preset::Aider));
        assert!("cursor".parse::<Preset>().unwrap_err().contains("codex, claude, gemini, aider"));
    }

    #[test]
    fn codex_runs_unattended_in_its_workspace_sandbox_and_resumes_by_id() {
        let extra = vec!["-m".to_string(), "gpt-5".to_string()];
        let fresh = Preset::Codex.arguments("fix it", None, "/runs/t/r", &extra, false);
        assert_eq!(
            fresh,
            [
                "exec",
                "--json",
                "--skip-git-repo-check",
                "-c",
                "approval_policy=\"never\"",
                "-c",
                "sandbox_mode=\"workspace-write\"",
                "-c",
                "sandbox_workspace_write.writable_roots=[\"/runs/t/r\"]",
                "-m",
                "gpt-5",
                "fix it"
            ]
        );
        let resumed = Preset::Codex.arguments("round 2", Some("0199-abc"), "/runs/t/r", &[], false);
        assert_eq!(&resumed[..2], ["exec", "resume"]);
        assert_eq!(&resumed[resumed.len() - 2..], ["0199-abc", "round 2"]);
    }

    #[test]
    fn claude_takes_its_prompt_first_and_resumes_by_id() {
        let arguments = Preset::Claude.arguments("fix it", Some("41f4"), "/runs/t/r", &["--model".into(), "opus".into()], false);
        assert_eq!(&arguments[..2], ["-p", "fix it"]);
        assert!(arguments.windows(2).any(|pair| pair == ["--resume", "41f4"]));
        assert!(arguments.windows(2).any(|pair| pair == ["--output-format", "stream-json"]));
        assert_eq!(&arguments[arguments.len() - 2..], ["--add-dir", "/runs/t/r"]);
    }

    #[test]
    fn gemini_and_aider_say_yes_to_everything() {
        let gemini = Preset::Gemini.arguments("go", None, "/r", &[], false);
        assert!(gemini.windows(2).any(|pair| pair == ["--approval-mode", "yolo"]) && gemini.contains(&"--skip-trust".to_string()));
        assert_eq!(&gemini[gemini.len() - 2..], ["--prompt", "go"]);
        let aider = Preset::Aider.arguments("go", None, "/r", &[], false);
        assert!(aider.contains(&"--yes-always".to_string()) && aider.contains(&"--no-auto-commits".to_string()));
        assert!(aider.windows(2).any(|pair| pair == ["--chat-history-file", "/r/aider.chat.history.md"]));
        assert_eq!(&aider[aider.len() - 2..], ["--message", "go"]);
    }

    #[test]
    fn agent_args_split_like_shell_words() {
        assert_eq!(
            split_arguments(r#"-m gpt-5 -c 'model_reasoning_effort="high"' --x "a b""#).unwrap(),
            ["-m", "gpt-5", "-c", "model_reasoning_effort=\"high\"", "--x", "a b"]
        );
        assert_eq!(split_arguments("  ").unwrap(), Vec::<String>::new());
        assert!(split_arguments("'open").is_err());
    }
}
