//! One run's directory, `<runs_dir>/<task_id>/<run_id>/`, and what it holds: `meta.json`
//! (static facts), `state.json` (where the run is; rewritten atomically), `ship.json` (how far
//! the logs were shipped), `worker.log` (lifecycle events, one JSON line each), `stdout.log`
//! and `stderr.log` (written by the child itself), `exit_status` (written by the step's wrapper
//! shell), `checkpoints/`, `artifacts/`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use shared::status::StepKind;

#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

/// Writes `bytes` to `path` so that a reader (or an agent restarted after a crash at any
/// moment) sees either the old file or the new one, never a torn one: a temporary file in the
/// same folder, fsync, rename over the old name, fsync the folder so the rename itself lasts.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let folder = path.parent().ok_or_else(|| io::Error::other("a file path without a folder"))?;
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("file");
    let temporary = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, path)?;
    File::open(folder)?.sync_all()
}

pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<T> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {error}", path.display())))
}

impl RunDir {
    pub fn new(runs_dir: &Path, task_id: &str, run_id: &str) -> RunDir {
        RunDir { root: runs_dir.join(task_id).join(run_id) }
    }

    pub fn create(&self) -> io::Result<()> {
        fs::create_dir_all(self.checkpoints())?;
        fs::create_dir_all(self.artifacts())
    }

    pub fn meta(&self) -> PathBuf {
        self.root.join("meta.json")
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn ship(&self) -> PathBuf {
        self.root.join("ship.json")
    }
    pub fn worker_log(&self) -> PathBuf {
        self.root.join("worker.log")
    }
    pub fn stdout_log(&self) -> PathBuf {
        self.root.join("stdout.log")
    }
    pub fn stderr_log(&self) -> PathBuf {
        self.root.join("stderr.log")
    }
    pub fn exit_status(&self) -> PathBuf {
        self.root.join("exit_status")
    }
    /// Where a coding agent may write its report under the card's headings (`{report_file}`).
    pub fn agent_report(&self) -> PathBuf {
        self.root.join("agent-report.md")
    }

    /// Where a coding agent may write what the run cost (`{usage_file}`, JSON).
    pub fn usage(&self) -> PathBuf {
        self.root.join("usage.json")
    }
    /// What the coding agent wrote in its usage file: the known fields, if it is JSON.
    pub fn read_usage(&self) -> Option<shared::wire::Usage> {
        let text = fs::read_to_string(self.usage()).ok()?;
        serde_json::from_str::<shared::wire::Usage>(&text).ok().filter(|usage| *usage != shared::wire::Usage::default())
    }
    /// What a coding agent's round is told of the last one (`{feedback_file}`).
    pub fn feedback(&self) -> PathBuf {
        self.root.join("feedback.md")
    }
    /// Where a step may explain its failure in a line (`$BAA_FAILURE_FILE`): the step's error.
    pub fn failure_reason(&self) -> PathBuf {
        self.root.join("failure-reason.txt")
    }
    /// The step's own explanation of its failure, if it wrote one (its first 500 characters).
    pub fn read_failure_reason(&self) -> Option<String> {
        let text = fs::read_to_string(self.failure_reason()).ok()?;
        let line = text.trim();
        (!line.is_empty()).then(|| line.chars().take(500).collect())
    }

    /// What the coding agent wrote in its report file, if it wrote anything.
    pub fn read_agent_report_text(&self) -> Option<String> {
        fs::read_to_string(self.agent_report()).ok().filter(|text| !text.trim().is_empty())
    }

    pub fn goal(&self) -> PathBuf {
        self.root.join("goal.md")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    pub fn artifacts(&self) -> PathBuf {
        self.root.join("artifacts")
    }
    /// The deliver step's pull-request body: what the task did.
    pub fn report(&self) -> PathBuf {
        self.root.join("report.md")
    }

    /// Appends one lifecycle event as a JSON line, in one `write` so lines never interleave.
    pub fn event(&self, at_ms: i64, event: &str, fields: Value) {
        let mut line = Map::new();
        line.insert("at_ms".into(), at_ms.into());
        line.insert("event".into(), event.into());
        if let Value::Object(fields) = fields {
            line.extend(fields);
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let written =
            OpenOptions::new().create(true).append(true).open(self.worker_log()).and_then(|mut file| file.write_all(text.as_bytes()));
        if let Err(error) = written {
            crate::log::log!("run {}: writing worker.log: {error}", self.root.display());
        }
    }

    /// The last exit status the step's wrapper shell recorded, if it got to record one.
    pub fn recorded_exit_status(&self) -> Option<i64> {
        fs::read_to_string(self.exit_status()).ok()?.trim().parse().ok()
    }
}

/// Static facts of a run, written once when it is prepared.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunMeta {
    pub task_id: String,
    pub step_id: String,
    pub run_id: String,
    pub attempt: i64,
    pub step_index: i64,
    pub step_kind: StepKind,
    pub worker_kind: String,
    pub title: String,
    pub timeout_sec: i64,
    pub worker_id: String,
    pub host: String,
    pub repo: String,
    pub base_ref: String,
    pub branch_name: String,
    pub worktree: PathBuf,
    /// The branch's tip when the step started; the step's diff is taken against it.
    pub base_sha: Option<String>,
    /// The task's base commit, resolved once; the task's result counts from it.
    #[serde(default)]
    pub base_commit: Option<String>,
    /// The branch the base came from (a pull request's base).
    #[serde(default)]
    pub base_branch: Option<String>,
    #[serde(default)]
    pub task_title: String,
    /// A deliver step's remote (`constraints.remote`, default `origin`).
    #[serde(default)]
    pub deliver_remote: Option<String>,
    /// What the wrapper shell runs (`sh -c`): the goal, the acceptance command, or the
    /// rendered coding-agent template.
    pub shell_command: Option<String>,
    pub prepared_at_ms: i64,
    /// The task's write scope (SPEC §12): what an agent step may change; empty: anything.
    #[serde(default)]
    pub write_scope: Vec<String>,
    /// `constraints.allow_no_change`: an agent step that changed nothing and wrote no report
    /// succeeds instead of failing with `no_change` (SPEC §13).
    #[serde(default)]
    pub allow_no_change: bool,
    /// Stop the step as `stalled` after this long without progress (SPEC §13): the task's
    /// `constraints.stall_after_sec`, else 600 for agent steps; `None`: never.
    #[serde(default)]
    pub stall_after_sec: Option<i64>,
}

/// Where a run is. `Prepared → Running → Exited → <terminal>`; terminal once the control
/// plane has the outcome (or refused it for good).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    Prepared,
    Running,
    Exited,
    Succeeded,
    Failed,
    TimedOut,
    Canceled,
    Blocked,
    Lost,
}

impl RunPhase {
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunPhase::Prepared | RunPhase::Running | RunPhase::Exited)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Prepared => "prepared",
            RunPhase::Running => "running",
            RunPhase::Exited => "exited",
            RunPhase::Succeeded => "succeeded",
            RunPhase::Failed => "failed",
            RunPhase::TimedOut => "timed_out",
            RunPhase::Canceled => "canceled",
            RunPhase::Blocked => "blocked",
            RunPhase::Lost => "lost",
        }
    }
}

/// Why the runner is stopping a step's process group.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It ran past `timeout_sec`.
    Timeout,
    /// The task was canceled.
    Canceled,
    /// The control plane no longer counts this run (reaped or superseded).
    Lost,
    /// No output, no change in the worktree and no CPU time for `stall_after_sec`.
    Stalled,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct StopRequest {
    pub reason: StopReason,
    pub requested_at_ms: i64,
    pub terminate_sent_at_ms: Option<i64>,
    pub kill_sent_at_ms: Option<i64>,
}

/// How the run ended, decided once when its process is gone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Outcome {
    /// The phase the run ends in once reported.
    pub phase: RunPhase,
    pub exit_code: Option<i64>,
    /// One line for people: the summary of a success, the error of anything else.
    pub message: String,
    /// A person must look before the task can go on (an agent wrote outside its scope).
    #[serde(default)]
    pub needs_human: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunState {
    pub status: RunPhase,
    /// The wrapper shell's pid, which is also the process group id.
    pub pid: Option<i32>,
    /// How the operating system describes the process's start, to tell it from a later
    /// process that reuses the pid.
    pub process_identity: Option<String>,
    pub started_at_ms: Option<i64>,
    pub deadline_at_ms: Option<i64>,
    pub exited_at_ms: Option<i64>,
    pub stop: Option<StopRequest>,
    pub outcome: Option<Outcome>,
    pub last_checkpoint_seq: i64,
    pub checkpoints_uploaded: i64,
    pub reported_at_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// The step's changes are committed on the branch (or there were none): done once, before
    /// the checkpoints, so a restarted agent never commits twice.
    #[serde(default)]
    pub committed: bool,
    /// The usage limit the coding agent's output announced when it failed (SPEC §13).
    #[serde(default)]
    pub limit: Option<super::limits::LimitHit>,
}

impl RunState {
    pub fn prepared(now_ms: i64) -> RunState {
        RunState {
            status: RunPhase::Prepared,
            pid: None,
            process_identity: None,
            started_at_ms: None,
            deadline_at_ms: None,
            exited_at_ms: None,
            stop: None,
            outcome: None,
            last_checkpoint_seq: 0,
            checkpoints_uploaded: 0,
            reported_at_ms: None,
            updated_at_ms: now_ms,
            committed: false,
            limit: None,
        }
    }
}
