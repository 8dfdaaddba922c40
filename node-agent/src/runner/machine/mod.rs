//! One run as a state machine, from its start (or its adoption after a restart) to its
//! terminal state, in the shape of the conductor's lease machine: inputs come in through
//! `handle_*` calls, each with the time ([`Now`]) read by the driver; what the run wants done
//! comes out of [`RunMachine::poll_action`] in order; [`RunMachine::poll_timeout`] says when it
//! next has something to do. It performs no I/O and reads no clock, so every path — the stop
//! ladder, the verdicts, an outage, a restart — is tested with made-up times and outputs.
//!
//! - [`process`]: the step's process: its end, and the stop ladder.
//! - [`verdicts`]: what the control plane said (a stop, the verdicts on output and report).
//! - [`shipping`]: the run's output, taken into ordered batches and sent through the outbox.
//! - [`ending`]: after the process: the commit, the checkpoints, the report, the terminal state.
//! - `sim_host` (tests): a simulated host, with the real conductor and control plane in memory.
//!
//! Order of the ending, each step recorded in `state.json` before the next, so a restarted
//! agent resumes where this one stopped: the process ends → its outcome is decided
//! (`exited`) → the step's changes are committed → checkpoints are written → the output is
//! taken into batches up to the end → checkpoints and the outcome go with the next sync → the
//! rest of `worker.log` is shipped → terminal.

mod ending;
mod process;
mod shipping;
#[cfg(test)]
pub(crate) mod sim_host;
#[cfg(test)]
mod tests;
mod verdicts;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::status::LogStream;
use shared::wire::RunBeat;

use super::ladder::Signal;
use super::run_dir::{RunMeta, RunPhase, RunState};
use super::shipper::ShipCursor;
use super::stall::StallWatch;
use super::RunView;
use crate::clock::Now;

/// The runner's settings that a run's timing depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunTiming {
    pub heartbeat_interval: Duration,
    pub ship_interval: Duration,
    pub kill_grace: Duration,
    pub log_ship_limit_bytes: u64,
}

/// The lengths of the run's three log files, as the driver last saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogSizes {
    pub stdout: u64,
    pub stderr: u64,
    pub worker: u64,
}

impl LogSizes {
    pub fn of(&self, stream: LogStream) -> u64 {
        match stream {
            LogStream::Stdout => self.stdout,
            LogStream::Stderr => self.stderr,
            LogStream::Worker => self.worker,
        }
    }
}

/// What the run wants done, in order. Those marked *answer* wait for the driver to call the
/// named `handle_*` before the machine asks for the next such thing.
#[derive(Debug, Clone, PartialEq)]
pub enum RunAction {
    /// Write [`RunMachine::state`] to `state.json`.
    SaveState,
    /// Write [`RunMachine::cursor`] to `ship.json`.
    SaveCursor,
    /// Append an event to `worker.log`.
    Event { at_ms: i64, name: String, detail: Value },
    /// A line for the agent's log.
    Log(String),
    /// Signal the step's process group (and record `signal_sent`).
    Signal(Signal),
    /// The process has ended: kill whatever is left of its group.
    KillLeftovers,
    /// The run's heartbeat, to go with every sync from now on.
    Beat(RunBeat),
    /// The run holds its step no more: no heartbeat from now on.
    EndBeat,
    /// Whether output is waiting beyond the batch in flight.
    MoreOutput(bool),
    /// Read the files past the cursor and plan a batch. *Answer*: `handle_output_taken`.
    TakeOutput { flush: bool, allowance: u64 },
    /// Put the batch in flight into the outbox; if its ranges cannot be read,
    /// `handle_output_unreadable`.
    SendOutput,
    /// List the paths the step changed since its start commit. *Answer*: `handle_scope_checked`.
    CheckScope,
    /// Look at the step's CPU time and worktree. *Answer*: `handle_activity`.
    SampleActivity,
    /// Commit the step's changes on the task's branch. *Answer*: `handle_committed`.
    Commit,
    /// Write the checkpoints. *Answer*: `handle_checkpoints_written`.
    WriteCheckpoints,
    /// Put the checkpoints and the outcome into the outbox. *Answer*: `handle_report_queued`.
    QueueReport,
    /// The conductor should sync soon (the host has room, or the run has something to say).
    Wake,
}

/// The action whose answer the machine is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Output,
    Scope,
    Commit,
    Checkpoints,
    Report,
}

#[derive(Debug)]
pub struct RunMachine {
    meta: RunMeta,
    state: RunState,
    cursor: ShipCursor,
    timing: RunTiming,
    actions: VecDeque<RunAction>,
    awaiting: Option<Awaiting>,
    /// The time of the last input: the reference for turning wall-clock deadlines into instants.
    last: Now,
    sizes: LogSizes,
    /// An event was written since the sizes were read: `worker.log` is longer than they say.
    worker_size_stale: bool,
    /// The recorded pid belongs to another process now (or there never was one).
    process_gone: bool,
    last_output_at_ms: i64,
    /// Progress of a step held to `stall_after_sec`, and when its activity is next looked at.
    stall: StallWatch,
    next_sample_ms: i64,
    sampling: bool,
    next_heartbeat: Instant,
    next_ship: Instant,
    ladder_wake_ms: Option<i64>,
    beat_ended: bool,
    /// The batch in flight is in the outbox (until its verdict comes back).
    logs_in_outbox: bool,
    /// The control plane will never take these logs (the run is not this worker's any more).
    ship_abandoned: bool,
    checkpoints_tried: bool,
    scope_checked: bool,
    report_queued: bool,
    /// Items of the run the control plane accepted (log batches and checkpoints), and when the
    /// first and last were: the shipping rate, for the log and the benchmarks.
    uploads: u32,
    uploads_span: Option<(Instant, Instant)>,
}

impl RunMachine {
    fn new(meta: RunMeta, state: RunState, cursor: ShipCursor, timing: RunTiming, now: Now, sizes: LogSizes) -> RunMachine {
        RunMachine {
            last_output_at_ms: state.started_at_ms.unwrap_or(state.updated_at_ms),
            // After a restart the watch starts afresh: a stall is never called early.
            stall: StallWatch::new(now.wall_ms),
            next_sample_ms: now.wall_ms,
            sampling: false,
            meta,
            state,
            cursor,
            timing,
            actions: VecDeque::new(),
            awaiting: None,
            last: now,
            sizes,
            worker_size_stale: false,
            process_gone: false,
            next_heartbeat: now.at,
            next_ship: now.at,
            ladder_wake_ms: None,
            beat_ended: false,
            logs_in_outbox: false,
            ship_abandoned: false,
            checkpoints_tried: false,
            scope_checked: false,
            report_queued: false,
            uploads: 0,
            uploads_span: None,
        }
    }

    /// A run whose process has just been spawned (`pid`), or that could not be started
    /// (`Err((phase, why))`).
    pub fn started(
        meta: RunMeta,
        timing: RunTiming,
        now: Now,
        process: Result<(Option<i32>, Option<String>), (RunPhase, String)>,
    ) -> RunMachine {
        let mut run = RunMachine::new(meta, RunState::prepared(now.wall_ms), ShipCursor::default(), timing, now, LogSizes::default());
        match process {
            Ok((pid, identity)) => {
                run.state.pid = pid;
                run.state.process_identity = identity;
                run.state.started_at_ms = Some(now.wall_ms);
                run.state.deadline_at_ms = Some(now.wall_ms + run.meta.timeout_sec.max(1) * 1_000);
                run.state.status = RunPhase::Running;
                run.last_output_at_ms = now.wall_ms;
                run.save_state(now);
                let detail = json!({"pid": pid, "timeout_sec": run.meta.timeout_sec, "worktree": run.meta.worktree});
                run.event(now, "worker_started", detail);
                // Said at once: the step shows `running`, and its base commit is recorded,
                // with the next sync rather than after the idle interval.
                run.heartbeat(now);
                run.actions.push_back(RunAction::Wake);
            }
            Err((phase, message)) => run.end_without_process(now, phase, message),
        }
        run.step(now);
        run
    }

    /// A run left by an earlier agent, from its files; `alive` says whether the recorded
    /// process is still the step's (only asked of a running run).
    pub fn adopted(
        meta: RunMeta,
        state: RunState,
        cursor: ShipCursor,
        timing: RunTiming,
        now: Now,
        sizes: LogSizes,
        alive: bool,
    ) -> RunMachine {
        let mut run = RunMachine::new(meta, state, cursor, timing, now, sizes);
        match run.state.status {
            RunPhase::Prepared => {
                run.end_without_process(now, RunPhase::Failed, "the agent stopped before the step's process started".into())
            }
            RunPhase::Running => {
                run.process_gone = !alive;
                let detail = json!({"pid": run.state.pid, "alive": alive, "worker_id": run.meta.worker_id});
                run.event(now, "run_adopted", detail);
            }
            phase => run.event(now, "run_resumed", json!({"phase": phase.as_str()})),
        }
        run.step(now);
        run
    }

    pub fn meta(&self) -> &RunMeta {
        &self.meta
    }

    pub fn state(&self) -> &RunState {
        &self.state
    }

    pub fn cursor(&self) -> &ShipCursor {
        &self.cursor
    }

    pub fn phase(&self) -> RunPhase {
        self.state.status
    }

    /// The process may still be running: the driver watches for its end.
    pub fn watching_process(&self) -> bool {
        self.state.status == RunPhase::Running
    }

    /// The recorded pid is not the step's process (adopted after it ended, or never started).
    pub fn process_gone(&self) -> bool {
        self.process_gone
    }

    /// The process has ended: the run only settles now, and holds no slot on the host.
    pub fn holds_no_slot(&self) -> bool {
        !matches!(self.state.status, RunPhase::Prepared | RunPhase::Running)
    }

    pub fn is_finished(&self) -> bool {
        self.state.status.is_terminal() && self.actions.is_empty()
    }

    /// Accepted uploads, and the seconds between the first and the last.
    pub fn uploads(&self) -> (u32, f64) {
        (self.uploads, self.uploads_span.map(|(first, last)| last.duration_since(first).as_secs_f64()).unwrap_or(0.0))
    }

    pub fn poll_action(&mut self) -> Option<RunAction> {
        self.actions.pop_front()
    }

    /// When the run next has something to do of its own accord (a heartbeat, a shipping turn,
    /// the next rung of the stop ladder).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut consider = |at: Instant| wake = Some(wake.map_or(at, |wake: Instant| wake.min(at)));
        if !self.ship_abandoned {
            consider(self.next_ship);
        }
        if !self.reporting_done() {
            consider(self.next_heartbeat);
        }
        if let (Some(at_ms), RunPhase::Running) = (self.ladder_wake_ms, self.state.status) {
            consider(self.last.instant_at(at_ms));
        }
        if let Some(at_ms) = self.stall_wake_ms() {
            consider(self.last.instant_at(at_ms));
        }
        if self.worker_size_stale && self.state.status == RunPhase::Exited {
            // The ending waits on the length of `worker.log`, which an event just changed.
            consider(self.last.at);
        }
        wake
    }

    /// The log files' lengths, read by the driver: growth of stdout or stderr is output seen.
    pub fn handle_sizes(&mut self, now: Now, sizes: LogSizes) {
        if self.state.status == RunPhase::Running && (sizes.stdout, sizes.stderr) != (self.sizes.stdout, self.sizes.stderr) {
            self.last_output_at_ms = now.wall_ms;
            self.stall.output(now.wall_ms);
        }
        self.sizes = sizes;
        self.worker_size_stale = false;
        self.step(now);
    }

    /// Time has passed (the driver woke at [`poll_timeout`](Self::poll_timeout), or for another
    /// reason).
    pub fn handle_timeout(&mut self, now: Now) {
        self.step(now);
    }

    /// Everything that is due at `now`, in order: the stop ladder, the heartbeat, a shipping
    /// turn, the next step of the ending.
    fn step(&mut self, now: Now) {
        self.last = now;
        if self.state.status == RunPhase::Running {
            self.watch_for_stall(now);
            self.climb_ladder(now);
        }
        if self.reporting_done() {
            if !self.beat_ended {
                self.beat_ended = true;
                self.actions.push_back(RunAction::EndBeat);
            }
        } else if now.at >= self.next_heartbeat {
            self.heartbeat(now);
        }
        if !self.ship_abandoned && now.at >= self.next_ship && self.awaiting.is_none() {
            self.ship(now);
        }
        if self.state.status == RunPhase::Exited && self.awaiting.is_none() {
            self.finish(now);
        }
    }

    fn reporting_done(&self) -> bool {
        self.state.reported_at_ms.is_some() || self.state.status.is_terminal()
    }

    fn heartbeat(&mut self, now: Now) {
        let progress = json!({
            "phase": self.state.status.as_str(),
            "stdout_bytes": self.sizes.stdout,
            "stderr_bytes": self.sizes.stderr,
            "last_output_age_ms": (now.wall_ms - self.last_output_at_ms).max(0),
            "shipped_chunks": self.cursor.next_seq - 1,
        });
        self.next_heartbeat = now.at + self.timing.heartbeat_interval;
        self.actions.push_back(RunAction::Beat(RunBeat {
            step_id: self.meta.step_id.clone(),
            run_id: self.meta.run_id.clone(),
            progress: progress.as_object().cloned(),
            base_commit: self.meta.base_commit.clone(),
        }));
    }

    fn save_state(&mut self, now: Now) {
        self.state.updated_at_ms = now.wall_ms;
        if self.actions.back() != Some(&RunAction::SaveState) {
            self.actions.push_back(RunAction::SaveState);
        }
    }

    fn event(&mut self, now: Now, name: &str, detail: Value) {
        self.worker_size_stale = true;
        self.actions.push_back(RunAction::Event { at_ms: now.wall_ms, name: name.to_string(), detail });
    }

    fn log(&mut self, line: String) {
        self.actions.push_back(RunAction::Log(line));
    }

    fn note_upload(&mut self, now: Now) {
        self.uploads += 1;
        self.uploads_span = Some(self.uploads_span.map_or((now.at, now.at), |(first, _)| (first, now.at)));
    }

    /// What the status page shows of the run at `now_ms`.
    pub fn view(&self, now_ms: i64) -> RunView {
        RunView {
            run_id: self.meta.run_id.clone(),
            task_id: self.meta.task_id.clone(),
            step_id: self.meta.step_id.clone(),
            title: self.meta.title.clone(),
            step_kind: self.meta.step_kind,
            phase: self.state.status,
            pid: self.state.pid,
            started_at_ms: self.state.started_at_ms,
            stdout_bytes: self.sizes.stdout,
            stderr_bytes: self.sizes.stderr,
            last_output_age_ms: (now_ms - self.last_output_at_ms).max(0),
            shipped_chunks: self.cursor.next_seq - 1 - self.cursor.in_flight.len() as i64,
            outcome: self.state.outcome.as_ref().map(|outcome| outcome.message.clone()),
            finished_at_ms: self.state.status.is_terminal().then_some(self.state.updated_at_ms),
        }
    }
}
