//! `node-agent agent-exec --preset NAME [-- EXTRA ARGS]`: the process of an agent step on a
//! host configured with `--agent`. The runner starts it like any step (in the worktree, stdin at
//! EOF, its output into the run directory, in the step's process group, so stall detection,
//! timeouts, cancellation and adoption after an agent restart work unchanged); it reads what it
//! needs from the step's environment (`BAA_GOAL_FILE`, `BAA_FEEDBACK_FILE`, `BAA_REPORT_FILE`,
//! `BAA_USAGE_FILE`, `BAA_RUN_DIR`).
//!
//! It writes the prompt, starts the CLI, and while the CLI runs turns each line of its standard
//! output into the readable transcript on its own standard output (the step's log), keeping the
//! raw events in `agent-events.jsonl`. When the CLI ends it writes the usage file (tokens, cost,
//! model, session id), the task's session file (for the next round) and, for a limit the CLI
//! reported in its structured output, `agent-limit.json`, which the runner reads before the
//! text of the log. A round after a failed acceptance or a reject resumes the session of the
//! round before when this host still has it; where it cannot, it starts a new session with the
//! whole prompt and says so.

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::prompt::{self, PromptParts};
use super::tally::{Repeats, Tally, Transcript};
use super::{claude, Preset};
use crate::runner::limits::LimitHit;
use crate::runner::run_dir::{read_json, write_atomic, write_json_atomic};

/// A task's last session, beside its runs (`<runs_dir>/<task_id>/agent-session.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub agent: String,
    pub session_id: String,
    pub run_id: String,
    /// The session's usage so far as the CLI counts it, for CLIs that count a resumed
    /// session's tokens or cost from its start: the next run's own usage is what it adds.
    #[serde(default)]
    pub totals: SessionTotals,
}

/// A session's usage from its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionTotals {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
}

/// Makes the usage a CLI reported the run's own share, where the CLI counts a resumed
/// session's usage from the session's start (codex its tokens, Claude Code its cost); returns
/// the session's totals as the CLI now counts them.
pub fn own_share(preset: Preset, tally: &mut Tally, before: SessionTotals) -> SessionTotals {
    let (tokens_cumulative, cost_cumulative) = match preset {
        Preset::Codex => (true, false),
        Preset::Claude => (false, true),
        Preset::Gemini | Preset::Aider => (false, false),
    };
    let reported = SessionTotals {
        input_tokens: tally.input_tokens.unwrap_or(0),
        output_tokens: tally.output_tokens.unwrap_or(0),
        cost_usd: tally.cost_usd.unwrap_or(0.0),
    };
    if tokens_cumulative {
        tally.input_tokens = tally.input_tokens.map(|tokens| (tokens - before.input_tokens).max(0));
        tally.output_tokens = tally.output_tokens.map(|tokens| (tokens - before.output_tokens).max(0));
    }
    if cost_cumulative {
        tally.cost_usd = tally.cost_usd.map(|cost| (cost - before.cost_usd).max(0.0));
    }
    SessionTotals {
        input_tokens: if tokens_cumulative { reported.input_tokens } else { before.input_tokens + reported.input_tokens },
        output_tokens: if tokens_cumulative { reported.output_tokens } else { before.output_tokens + reported.output_tokens },
        cost_usd: if cost_cumulative { reported.cost_usd } else { before.cost_usd + reported.cost_usd },
    }
}

/// Where the run directory keeps a limit the CLI reported in its structured output.
pub fn limit_file(run_dir: &Path) -> PathBuf {
    run_dir.join("agent-limit.json")
}

/// Reads `agent-limit.json`, if the CLI reported a limit.
pub fn read_limit(run_dir: &Path) -> Option<LimitHit> {
    read_json(&limit_file(run_dir)).ok()
}

/// The files of one agent step, from its environment.
struct StepFiles {
    run_dir: PathBuf,
    goal: PathBuf,
    feedback: PathBuf,
    report: PathBuf,
    usage: PathBuf,
}

impl StepFiles {
    fn from_env() -> Result<StepFiles, String> {
        let path = |name: &str| {
            std::env::var_os(name).map(PathBuf::from).ok_or_else(|| format!("{name} is not set: agent-exec runs as a step of the runner"))
        };
        Ok(StepFiles {
            run_dir: path("BAA_RUN_DIR")?,
            goal: path("BAA_GOAL_FILE")?,
            feedback: path("BAA_FEEDBACK_FILE")?,
            report: path("BAA_REPORT_FILE")?,
            usage: path("BAA_USAGE_FILE")?,
        })
    }

    fn session_record(&self) -> Option<PathBuf> {
        self.run_dir.parent().map(|task_runs| task_runs.join("agent-session.json"))
    }
}

/// How one start of the CLI ended.
struct Attempt {
    tally: Tally,
    exit_code: i32,
    /// The CLI did not resume the session it was given.
    resume_refused: bool,
}

/// Runs the step; the exit code is the process's.
pub fn main(preset: Preset, extra: Vec<String>) -> i32 {
    let files = match StepFiles::from_env() {
        Ok(files) => files,
        Err(error) => {
            eprintln!("error: {error}");
            return 2;
        }
    };
    let mut out = io::stdout().lock();
    let goal = fs::read_to_string(&files.goal).unwrap_or_default();
    let feedback = fs::read_to_string(&files.feedback).unwrap_or_default();
    let report = files.report.to_string_lossy().into_owned();
    let parts = PromptParts { goal: &goal, feedback: &feedback, report_file: &report };
    let writable = files.run_dir.to_string_lossy().into_owned();

    let earlier = files.session_record().and_then(|path| read_json::<SessionRecord>(&path).ok());
    let resume = match (feedback.trim().is_empty(), earlier) {
        (true, _) => None,
        (false, None) => {
            say(&mut out, "no earlier session of this task on this host: a new session gets the whole prompt");
            None
        }
        (false, Some(_)) if !preset.resumes() => {
            say(&mut out, &format!("{preset} cannot resume a session from the command line: a new session gets the whole prompt"));
            None
        }
        (false, Some(record)) if record.agent != preset.name() => {
            say(&mut out, &format!("the earlier session was {}'s: a new session gets the whole prompt", record.agent));
            None
        }
        (false, Some(record)) if !session_exists(preset, &record.session_id) => {
            say(&mut out, &format!("session {} is gone from this host: a new session gets the whole prompt", record.session_id));
            None
        }
        (false, Some(record)) => Some(record),
    };
    let resume_id = resume.as_ref().map(|record| record.session_id.clone());
    // The runner says so when the step runs in the agent's sandbox (SPEC §19).
    let sandboxed = std::env::var_os(crate::sandbox::SANDBOXED_ENV_VAR).is_some();

    let mut attempt = match &resume_id {
        Some(session) => {
            say(&mut out, &format!("resuming {preset} session {session} with the feedback of the round before"));
            run_cli(
                preset,
                &preset.arguments(&prompt::resumed(&parts), Some(session), &writable, &extra, sandboxed),
                Some(session),
                &files,
                &mut out,
            )
        }
        None => run_cli(preset, &preset.arguments(&prompt::whole(&parts), None, &writable, &extra, sandboxed), None, &files, &mut out),
    };
    let mut resumed_from = resume.as_ref().map(|record| record.totals).unwrap_or_default();
    if let (Ok(refused), Some(session)) = (&attempt, &resume_id) {
        if refused.resume_refused {
            say(&mut out, &format!("{preset} did not resume session {session}: starting a new session with the whole prompt"));
            resumed_from = SessionTotals::default();
            attempt =
                run_cli(preset, &preset.arguments(&prompt::whole(&parts), None, &writable, &extra, sandboxed), None, &files, &mut out);
        }
    }
    let mut attempt = match attempt {
        Ok(attempt) => attempt,
        Err(error) => {
            let _ = writeln!(out, "error: could not start {}: {error}", preset.program());
            eprintln!("error: could not start {} (is it installed and on PATH?): {error}", preset.program());
            return 127;
        }
    };
    let totals = own_share(preset, &mut attempt.tally, resumed_from);
    let tally = &attempt.tally;
    let mut transcript = Transcript::default();
    transcript.usage(tally);
    for line in transcript.take() {
        let _ = writeln!(out, "{line}");
    }
    record(preset, tally, totals, &files);
    let _ = out.flush();
    match (attempt.exit_code, &tally.failed) {
        (0, Some(reason)) => {
            eprintln!("{preset} exited 0 but reported a failure: {reason}");
            1
        }
        (code, _) => code,
    }
}

/// Starts the CLI once and reads its output to the end.
fn run_cli(preset: Preset, arguments: &[String], resuming: Option<&str>, files: &StepFiles, out: &mut impl Write) -> io::Result<Attempt> {
    let mut command = Command::new(preset.program());
    command.args(arguments).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    // Claude Code refuses to skip its permission prompts as root unless told that it runs in
    // a sandbox; the runner's step is that sandbox.
    // (It takes only "1": an inherited `IS_SANDBOX=yes` is refused too.)
    if preset == Preset::Claude && is_root() {
        command.env("IS_SANDBOX", "1");
    }
    // aider writes a made-up identity ("Your Name") into the repository's `.git/config` when git has none;
    // in the sandbox that file is out of reach (a step that could write it could point the
    // runner's own git at its hooks). An identity given here, for this process only, keeps aider
    // from trying; the runner commits under its own.
    if preset == Preset::Aider
        && std::env::var_os(crate::sandbox::SANDBOXED_ENV_VAR).is_some()
        && std::env::var_os("GIT_CONFIG_COUNT").is_none()
    {
        command.envs([
            ("GIT_CONFIG_COUNT", "2"),
            ("GIT_CONFIG_KEY_0", "user.name"),
            ("GIT_CONFIG_VALUE_0", "baa-conductor agent"),
            ("GIT_CONFIG_KEY_1", "user.email"),
            ("GIT_CONFIG_VALUE_1", "agent@baa-conductor.invalid"),
        ]);
    }
    // aider keeps its repository map's cache in the repository (`.aider.tags.cache.v4`): one the
    // run created is removed after it, so that it is not committed as the task's work.
    let caches_before = if preset == Preset::Aider { aider_caches() } else { Vec::new() };
    let mut child = command.spawn()?;
    let mut events = OpenOptions::new().create(true).append(true).open(files.run_dir.join("agent-events.jsonl"))?;
    let (mut reader, mut tally, mut transcript) = (preset.reader(), Tally::default(), Transcript::default());
    let mut resume_refused = false;
    let worktree_prefix = std::env::current_dir().ok().map(|dir| format!("{}/", dir.display()));
    let mut repeats = Repeats::default();
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        let _ = events.write_all(line.as_bytes()).and_then(|()| events.write_all(b"\n"));
        reader.line(&line, &mut tally, &mut transcript);
        for text in transcript.take() {
            // Paths read best relative to the worktree, the step's working directory.
            let text = match &worktree_prefix {
                Some(prefix) => text.replace(prefix.as_str(), ""),
                None => text,
            };
            for text in repeats.line(text) {
                let _ = writeln!(out, "{text}");
            }
        }
        let _ = out.flush();
        // codex starts a new thread, silently, for a session it does not have.
        if let (Some(wanted), Some(started)) = (resuming, tally.session_id.as_deref()) {
            if preset == Preset::Codex && wanted != started {
                resume_refused = true;
                let _ = child.kill();
                break;
            }
        }
    }
    for text in repeats.flush() {
        let _ = writeln!(out, "{text}");
    }
    let status = child.wait()?;
    if preset == Preset::Aider {
        for cache in aider_caches().into_iter().filter(|cache| !caches_before.contains(cache)) {
            let _ = fs::remove_dir_all(&cache);
        }
    }
    let exit_code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    });
    if resuming.is_some() && exit_code != 0 && tally.limit.is_none() {
        // Claude Code answers an error result naming the session; codex fails before it
        // starts the thread (a session file it cannot read), so it names no session at all.
        let unknown = tally.failed.as_deref().is_some_and(|reason| reason.contains(claude::NO_SUCH_SESSION));
        resume_refused |= unknown || tally.session_id.is_none();
    }
    Ok(Attempt { tally, exit_code, resume_refused })
}

/// Keeps what the run said: the usage file, the task's session, a structured limit.
fn record(preset: Preset, tally: &Tally, totals: SessionTotals, files: &StepFiles) {
    let usage = shared::wire::Usage {
        input_tokens: tally.input_tokens,
        output_tokens: tally.output_tokens,
        cost_usd: tally.cost_usd,
        model: tally.model.clone(),
        session_id: tally.session_id.clone(),
        agent: Some(preset.name().to_string()),
    };
    if let Err(error) = write_json_atomic(&files.usage, &usage) {
        eprintln!("warning: writing {}: {error}", files.usage.display());
    }
    if let (Some(session_id), Some(path)) = (&tally.session_id, files.session_record()) {
        let run_id = files.run_dir.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let record = SessionRecord { agent: preset.name().into(), session_id: session_id.clone(), run_id, totals };
        if let Err(error) = write_json_atomic(&path, &record) {
            eprintln!("warning: writing {}: {error}", path.display());
        }
    }
    if let Some(limit) = &tally.limit {
        let text = serde_json::to_vec(limit).unwrap_or_default();
        if let Err(error) = write_atomic(&limit_file(&files.run_dir), &text) {
            eprintln!("warning: writing the limit: {error}");
        }
    }
}

/// aider's repository-map caches in the working directory.
fn aider_caches() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(".") else { return Vec::new() };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(".aider.tags.cache."))
        .map(|entry| entry.path())
        .collect()
}

fn say(out: &mut impl Write, text: &str) {
    let _ = writeln!(out, "-- {text}");
    let _ = out.flush();
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this host still has the CLI's session `id` on disk.
fn session_exists(preset: Preset, id: &str) -> bool {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let (root, depth) = match preset {
        Preset::Codex => (std::env::var_os("CODEX_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".codex")).join("sessions"), 4),
        Preset::Claude => {
            (std::env::var_os("CLAUDE_CONFIG_DIR").map(PathBuf::from).unwrap_or_else(|| home.join(".claude")).join("projects"), 2)
        }
        Preset::Gemini | Preset::Aider => return false,
    };
    find_file_naming(&root, id, depth)
}

/// Whether a file whose name contains `id` lies under `dir`, at most `depth` folders down.
fn find_file_naming(dir: &Path, id: &str, depth: usize) -> bool {
    let Ok(entries) = fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            depth > 0 && find_file_naming(&path, id, depth - 1)
        } else {
            entry.file_name().to_string_lossy().contains(id)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_session_s_usage_is_the_run_s_own_share() {
        // codex counts a resumed thread's tokens from its start.
        let before = SessionTotals { input_tokens: 200, output_tokens: 14, cost_usd: 0.0 };
        let mut tally = Tally { input_tokens: Some(500), output_tokens: Some(30), ..Tally::default() };
        let totals = own_share(Preset::Codex, &mut tally, before);
        assert_eq!((tally.input_tokens, tally.output_tokens), (Some(300), Some(16)));
        assert_eq!(totals, SessionTotals { input_tokens: 500, output_tokens: 30, cost_usd: 0.0 });
        // Claude Code counts its cost from the session's start, its tokens per run.
        let before = SessionTotals { input_tokens: 100, output_tokens: 24, cost_usd: 0.0009 };
        let mut tally = Tally { input_tokens: Some(100), output_tokens: Some(24), cost_usd: Some(0.0018), ..Tally::default() };
        let totals = own_share(Preset::Claude, &mut tally, before);
        assert_eq!((tally.input_tokens, tally.output_tokens), (Some(100), Some(24)));
        assert!((tally.cost_usd.unwrap() - 0.0009).abs() < 1e-12);
        assert_eq!((totals.input_tokens, totals.output_tokens), (200, 48));
        assert!((totals.cost_usd - 0.0018).abs() < 1e-12);
    }

    #[test]
    fn a_session_is_found_by_its_id_in_the_cli_folders() {
        let root = tempfile::tempdir().unwrap();
        let day = root.path().join("sessions/2026/12/03");
        fs::create_dir_all(&day).unwrap();
        fs::write(day.join("rollout-2026-12-03T10-00-00-01a23c63-6213-71e0-9b20-0b01f450e258.jsonl"), "{}").unwrap();
        assert!(find_file_naming(&root.path().join("sessions"), "01a23c63-6213-71e0-9b20-0b01f450e258", 4));
        assert!(!find_file_naming(&root.path().join("sessions"), "01a23c63-0000", 4));
        assert!(!find_file_naming(&root.path().join("sessions"), "01a23c63-6213-71e0-9b20-0b01f450e258", 2));
    }
}
