//! One run, from its claim (or its adoption after a restart) to its terminal state. The loop
//! only watches and calls; the ladder, the outcome and the chunking are pure functions.
//!
//! Order of the ending, each step recorded in `state.json` before the next, so a restarted
//! agent resumes where this one stopped: the process ends → its outcome is decided
//! (`exited`) → checkpoints are written → the output is shipped up to the end → checkpoints
//! are uploaded and the outcome reported → the rest of `worker.log` is shipped → terminal.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use shared::status::{CheckpointFormat, CheckpointType, LogStream, RunStatus, StepKind};
use shared::wire::{CheckpointRequest, ClaimedStep, StepCompleteRequest, StepFailRequest, StepHeartbeatRequest, StepLogsRequest};
use shared::ErrorCode;

use super::checkpoints::{self, SummaryFacts};
use super::command::{self, CommandError, TemplateValues};
use super::ladder::{self, Signal};
use super::outcome::{self, ProcessEnd};
use super::process::{self, StepCommand};
use super::run_dir::{read_json, write_json_atomic, Outcome, RunDir, RunMeta, RunPhase, RunState, StopReason};
use super::shipper::{self, plan_batch, ShipCursor, StreamInput, MAX_BATCH_TEXT_BYTES};
use super::{branch, delivery, worktree};
use super::{wall_ms, RunView, RunnerShared};
use crate::client::ClientError;
use crate::log::log;

/// Output quiet this long counts as a pause: a trailing partial line is shipped.
const QUIET_MS: i64 = 2_000;
/// How often a run whose log files have not grown looks at them again.
const QUIET_SHIP_INTERVAL: Duration = Duration::from_secs(3);
/// How often an adopted process (not this agent's child) is checked for its end.
const ADOPTED_POLL: Duration = Duration::from_millis(250);
const TAIL_BYTES: u64 = 64 * 1024;

pub(super) struct ActiveRun {
    dir: RunDir,
    meta: RunMeta,
    state: RunState,
    cursor: ShipCursor,
    /// This agent's own child; `None` for an adopted process.
    child: Option<tokio::process::Child>,
    /// The recorded pid belongs to another process now (or there never was one).
    process_gone: bool,
    stdout_bytes: u64,
    stderr_bytes: u64,
    last_output_at_ms: i64,
    next_heartbeat: Instant,
    next_ship: Instant,
    next_report: Instant,
    ship_failures: u32,
    report_failures: u32,
    heartbeat_failures: u32,
    /// The control plane will never take these logs (the run is not this worker's any more).
    ship_abandoned: bool,
    /// Upload requests (logs and checkpoints) this agent made for the run, and when the first
    /// and last were made: the shipping rate, for the log and the benchmarks.
    uploads: u32,
    uploads_span: Option<(Instant, Instant)>,
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|metadata| metadata.len()).unwrap_or(0)
}

/// A repeated failure is logged the first time and every tenth time after.
fn worth_logging(failures: u32) -> bool {
    failures == 1 || failures.is_multiple_of(10)
}

fn backoff(failures: u32, cap: Duration) -> Duration {
    (Duration::from_millis(500) * 2u32.saturating_pow(failures.min(8))).min(cap)
}

impl ActiveRun {
    fn new(dir: RunDir, meta: RunMeta, state: RunState, cursor: ShipCursor) -> ActiveRun {
        let now = Instant::now();
        let (stdout_bytes, stderr_bytes) = (file_len(&dir.stdout_log()), file_len(&dir.stderr_log()));
        ActiveRun {
            last_output_at_ms: state.started_at_ms.unwrap_or(state.updated_at_ms),
            dir,
            meta,
            state,
            cursor,
            child: None,
            process_gone: false,
            stdout_bytes,
            stderr_bytes,
            next_heartbeat: now,
            next_ship: now,
            next_report: now,
            ship_failures: 0,
            report_failures: 0,
            heartbeat_failures: 0,
            ship_abandoned: false,
            uploads: 0,
            uploads_span: None,
        }
    }

    fn note_upload(&mut self) {
        let now = Instant::now();
        self.uploads += 1;
        self.uploads_span = Some(self.uploads_span.map_or((now, now), |(first, _)| (first, now)));
    }

    fn save_state(&mut self) {
        self.state.updated_at_ms = wall_ms();
        if let Err(error) = write_json_atomic(&self.dir.state(), &self.state) {
            log!("run {}: writing state.json: {error}", self.meta.run_id);
        }
    }

    fn save_cursor(&self) {
        if let Err(error) = write_json_atomic(&self.dir.ship(), &self.cursor) {
            log!("run {}: writing ship.json: {error}", self.meta.run_id);
        }
    }

    fn end_without_process(&mut self, phase: RunPhase, message: String) {
        let now = wall_ms();
        self.dir.event(now, "run_not_started", json!({"reason": message}));
        self.state.status = RunPhase::Exited;
        self.state.exited_at_ms = Some(now);
        self.state.outcome = Some(Outcome { phase, exit_code: None, message });
        self.process_gone = true;
        self.save_state();
    }

    pub(super) fn view(&self) -> RunView {
        let now = wall_ms();
        RunView {
            run_id: self.meta.run_id.clone(),
            task_id: self.meta.task_id.clone(),
            step_id: self.meta.step_id.clone(),
            title: self.meta.title.clone(),
            step_kind: self.meta.step_kind,
            phase: self.state.status,
            pid: self.state.pid,
            started_at_ms: self.state.started_at_ms,
            stdout_bytes: self.stdout_bytes,
            stderr_bytes: self.stderr_bytes,
            last_output_age_ms: (now - self.last_output_at_ms).max(0),
            shipped_chunks: self.cursor.next_seq - 1 - self.cursor.in_flight.len() as i64,
            outcome: self.state.outcome.as_ref().map(|outcome| outcome.message.clone()),
            finished_at_ms: self.state.status.is_terminal().then_some(self.state.updated_at_ms),
        }
    }
}

/// Prepares a claimed step (run directory, worktree, command) and starts its process.
pub(super) async fn prepare(shared: &RunnerShared, claimed: ClaimedStep) -> Option<ActiveRun> {
    let settings = &shared.settings;
    let (task, step) = (&claimed.task, &claimed.step);
    let now = wall_ms();
    let dir = RunDir::new(&settings.runs_dir, &task.task_id, &claimed.run_id);
    let worktree_path = settings.worktrees_dir.join(&task.task_id);
    let mut meta = RunMeta {
        task_id: task.task_id.clone(),
        step_id: step.step_id.clone(),
        run_id: claimed.run_id.clone(),
        attempt: claimed.attempt,
        step_index: step.step_index,
        step_kind: step.step_kind,
        worker_kind: step.worker_kind.clone(),
        title: step.title.clone(),
        timeout_sec: step.timeout_sec,
        worker_id: settings.worker_id.clone(),
        host: settings.host.clone(),
        repo: task.repo.clone(),
        base_ref: task.base_ref.clone(),
        branch_name: task.branch_name.clone(),
        worktree: worktree_path.clone(),
        base_sha: None,
        base_commit: task.base_commit.clone(),
        base_branch: None,
        task_title: task.title.clone(),
        deliver_remote: (step.step_kind == StepKind::Deliver).then(|| delivery::remote(task).to_string()),
        shell_command: None,
        prepared_at_ms: now,
    };
    if let Err(error) = dir.create() {
        // Without a run directory nothing can be kept: say so and let the retry policy decide.
        log!("run {}: cannot create {}: {error}", claimed.run_id, dir.root.display());
        let request = StepFailRequest {
            worker_id: settings.worker_id.clone(),
            run_id: claimed.run_id.clone(),
            error: format!("the runner could not create its run directory: {error}"),
            exit_code: None,
            blocked: false,
            needs_human: false,
            timed_out: false,
            task_result: None,
        };
        if let Err(error) = shared.client.step_fail(&step.step_id, &request).await {
            log!("run {}: reporting the failure: {error}", claimed.run_id);
        }
        return None;
    }
    dir.event(now, "run_prepared", json!({"task_id": task.task_id, "step_id": step.step_id, "attempt": claimed.attempt, "worker_id": settings.worker_id, "host": settings.host}));
    let mut failure: Option<(RunPhase, String)> = None;
    let request = worktree::WorktreeRequest {
        repo: &task.repo,
        mirrors_dir: &settings.mirrors_dir,
        worktrees_dir: &settings.worktrees_dir,
        task_id: &task.task_id,
        branch: &task.branch_name,
        base_ref: &task.base_ref,
        base_commit: task.base_commit.as_deref(),
        first_step: step.step_index == 0,
    };
    let prepared = {
        let _git = shared.git_lock.lock().await;
        worktree::prepare(&request).await
    };
    match prepared {
        Ok(worktree) => {
            meta.base_sha = Some(worktree.start_commit);
            meta.base_commit = Some(worktree.base_commit);
            meta.base_branch = worktree.base_branch;
        }
        Err(error) => {
            failure = Some((if error.is_permanent() { RunPhase::Blocked } else { RunPhase::Failed }, format!("worktree: {error}")))
        }
    }
    if failure.is_none() {
        let (goal_file, worktree_text, run_dir_text) = (
            dir.goal().to_string_lossy().into_owned(),
            worktree_path.to_string_lossy().into_owned(),
            dir.root.to_string_lossy().into_owned(),
        );
        let values = TemplateValues {
            goal_file: &goal_file,
            worktree: &worktree_text,
            task_id: &task.task_id,
            step_id: &step.step_id,
            run_id: &claimed.run_id,
            run_dir: &run_dir_text,
        };
        let command = match step.step_kind {
            StepKind::Deliver => match delivery::command(task, &meta, &dir, settings.pr_command.as_deref()).await {
                Ok(command) => Some(command),
                Err(error) => {
                    failure = Some((RunPhase::Blocked, error.to_string()));
                    None
                }
            },
            _ => step.command.clone(),
        };
        match command::shell_command(step.step_kind, &step.step_id, command.as_deref(), settings.agent_command.as_deref(), &values) {
            Ok(shell_command) => meta.shell_command = Some(shell_command),
            Err(error @ CommandError::NoAgentTemplate) => failure = Some((RunPhase::Blocked, error.to_string())),
            Err(error) => failure = Some((RunPhase::Failed, error.to_string())),
        }
        if step.step_kind == StepKind::Agent {
            let goal = step.prompt.clone().unwrap_or_else(|| task.goal.clone());
            if let Err(error) = super::run_dir::write_atomic(&dir.goal(), goal.as_bytes()) {
                failure = Some((RunPhase::Failed, format!("writing the goal file: {error}")));
            }
        }
    }
    if let Err(error) = write_json_atomic(&dir.meta(), &meta) {
        log!("run {}: writing meta.json: {error}", meta.run_id);
    }
    let mut run = ActiveRun::new(dir, meta, RunState::prepared(now), ShipCursor::default());
    run.save_state();
    if let Some((phase, message)) = failure {
        run.end_without_process(phase, message);
        return Some(run);
    }
    let mut env = vec![
        ("BAA_TASK_ID", run.meta.task_id.clone()),
        ("BAA_STEP_ID", run.meta.step_id.clone()),
        ("BAA_RUN_ID", run.meta.run_id.clone()),
        ("BAA_ATTEMPT", run.meta.attempt.to_string()),
        ("BAA_WORKTREE", run.meta.worktree.to_string_lossy().into_owned()),
        ("BAA_RUN_DIR", run.dir.root.to_string_lossy().into_owned()),
        ("BAA_ARTIFACTS_DIR", run.dir.artifacts().to_string_lossy().into_owned()),
    ];
    if run.meta.step_kind == StepKind::Agent {
        env.push(("BAA_GOAL_FILE", run.dir.goal().to_string_lossy().into_owned()));
    }
    let (stdout, stderr, exit_status) = (run.dir.stdout_log(), run.dir.stderr_log(), run.dir.exit_status());
    let shell_command = run.meta.shell_command.clone().unwrap_or_default();
    let spawned = process::spawn(&StepCommand {
        shell_command: &shell_command,
        worktree: &run.meta.worktree,
        stdout: &stdout,
        stderr: &stderr,
        exit_status: &exit_status,
        env,
    });
    match spawned {
        Ok(child) => {
            let started = wall_ms();
            let pid = child.id().map(|pid| pid as i32);
            run.state.pid = pid;
            run.state.process_identity = pid.and_then(crate::platform::process_start);
            run.state.started_at_ms = Some(started);
            run.state.deadline_at_ms = Some(started + run.meta.timeout_sec.max(1) * 1_000);
            run.state.status = RunPhase::Running;
            run.last_output_at_ms = started;
            run.child = Some(child);
            run.save_state();
            run.dir.event(
                started,
                "worker_started",
                json!({"pid": pid, "timeout_sec": run.meta.timeout_sec, "worktree": run.meta.worktree}),
            );
        }
        Err(error) => run.end_without_process(RunPhase::Failed, format!("could not start the process: {error}")),
    }
    Some(run)
}

/// Picks up a run left by an earlier agent. A live process is adopted; a run that never got
/// its process is settled as failed; everything else resumes where `state.json` says.
pub(super) fn adopt(shared: &RunnerShared, root: &Path) -> Result<ActiveRun, String> {
    let meta: RunMeta = read_json(&root.join("meta.json")).map_err(|error| format!("no readable meta.json: {error}"))?;
    if meta.worker_id != shared.settings.worker_id {
        return Err(format!("run of worker {}, not of this node ({})", meta.worker_id, shared.settings.worker_id));
    }
    let dir = RunDir { root: root.to_path_buf() };
    let state: RunState = read_json(&dir.state()).unwrap_or_else(|_| RunState::prepared(meta.prepared_at_ms));
    let cursor: ShipCursor = read_json(&dir.ship()).unwrap_or_default();
    let mut run = ActiveRun::new(dir, meta, state, cursor);
    let now = wall_ms();
    match run.state.status {
        RunPhase::Prepared => run.end_without_process(RunPhase::Failed, "the agent stopped before the step's process started".into()),
        RunPhase::Running => {
            let pid = run.state.pid.unwrap_or(0);
            let same_process = process::is_alive(pid)
                && match (&run.state.process_identity, crate::platform::process_start(pid)) {
                    (Some(recorded), Some(now)) => *recorded == now,
                    _ => true,
                };
            run.process_gone = !same_process;
            run.dir.event(now, "run_adopted", json!({"pid": pid, "alive": same_process, "worker_id": run.meta.worker_id}));
        }
        _ => run.dir.event(now, "run_resumed", json!({"phase": run.state.status.as_str()})),
    }
    Ok(run)
}

/// Watches, heartbeats, ships and finally settles the run.
pub(super) async fn drive(shared: Rc<RunnerShared>, mut run: ActiveRun) {
    loop {
        let now_ms = wall_ms();
        let mut ladder_wake: Option<i64> = None;
        if run.state.status == RunPhase::Running {
            track_output(&mut run, now_ms);
            if let Some(end) = poll_end(&mut run) {
                record_end(&mut run, end);
            } else {
                ladder_wake = climb_ladder(&shared, &mut run, now_ms);
            }
        }
        let now = Instant::now();
        let reporting_done = run.state.reported_at_ms.is_some() || run.state.status.is_terminal();
        if !reporting_done && now >= run.next_heartbeat {
            heartbeat(&shared, &mut run).await;
        }
        if !run.ship_abandoned && Instant::now() >= run.next_ship {
            ship(&shared, &mut run).await;
        }
        if run.state.status == RunPhase::Exited && finish(&shared, &mut run).await {
            break;
        }
        shared.board.borrow_mut().insert(run.meta.run_id.clone(), run.view());
        if run.state.status.is_terminal() {
            break;
        }
        let mut wake = run.next_ship;
        if !reporting_done {
            wake = wake.min(run.next_heartbeat);
        }
        if run.state.status == RunPhase::Exited {
            wake = wake.min(run.next_report.max(Instant::now()));
        }
        if let Some(at_ms) = ladder_wake {
            wake = wake.min(Instant::now() + Duration::from_millis((at_ms - wall_ms()).max(0) as u64));
        }
        let running = run.state.status == RunPhase::Running;
        match run.child.as_mut() {
            Some(child) if running => {
                tokio::select! {
                    _ = child.wait() => {}
                    _ = tokio::time::sleep_until(wake.into()) => {}
                }
            }
            _ => {
                if running {
                    wake = wake.min(Instant::now() + ADOPTED_POLL);
                }
                tokio::time::sleep_until(wake.into()).await;
            }
        }
    }
    shared.board.borrow_mut().insert(run.meta.run_id.clone(), run.view());
    let span = run.uploads_span.map(|(first, last)| last.duration_since(first).as_secs_f64()).unwrap_or(0.0);
    log!(
        "run {}: {} ({}) uploads={} over {span:.1} s",
        run.meta.run_id,
        run.state.status.as_str(),
        run.state.outcome.as_ref().map(|outcome| outcome.message.as_str()).unwrap_or(""),
        run.uploads
    );
}

fn track_output(run: &mut ActiveRun, now_ms: i64) {
    let (stdout, stderr) = (file_len(&run.dir.stdout_log()), file_len(&run.dir.stderr_log()));
    if (stdout, stderr) != (run.stdout_bytes, run.stderr_bytes) {
        run.last_output_at_ms = now_ms;
        (run.stdout_bytes, run.stderr_bytes) = (stdout, stderr);
    }
}

fn poll_end(run: &mut ActiveRun) -> Option<ProcessEnd> {
    if let Some(child) = run.child.as_mut() {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Some(ProcessEnd {
                    recorded_exit: run.dir.recorded_exit_status(),
                    wrapper_exit: status.code().map(i64::from),
                    wrapper_signal: status.signal(),
                })
            }
            Ok(None) => return None,
            Err(_) => {}
        }
    }
    let pid = run.state.pid.unwrap_or(0);
    let ended = run.process_gone || !process::is_alive(pid) || run.dir.exit_status().exists();
    ended.then(|| ProcessEnd { recorded_exit: run.dir.recorded_exit_status(), wrapper_exit: None, wrapper_signal: None })
}

fn record_end(run: &mut ActiveRun, end: ProcessEnd) {
    let now = wall_ms();
    // Whatever the step left running in its group goes with it.
    if let (Some(pid), false) = (run.state.pid, run.process_gone) {
        if process::group_exists(pid) {
            process::signal_group(pid, Signal::Kill);
        }
    }
    run.process_gone = true;
    run.child = None;
    // The last output goes now, not at the quiet pace.
    run.next_ship = Instant::now();
    let outcome = outcome::decide(run.state.stop, end, run.meta.timeout_sec);
    (run.stdout_bytes, run.stderr_bytes) = (file_len(&run.dir.stdout_log()), file_len(&run.dir.stderr_log()));
    run.dir.event(
        now,
        "worker_exited",
        json!({
            "exit_code": end.recorded_exit.or(end.wrapper_exit),
            "signal": end.wrapper_signal,
            "outcome": outcome.phase.as_str(),
            "message": outcome.message,
            "stdout_bytes": run.stdout_bytes,
            "stderr_bytes": run.stderr_bytes,
        }),
    );
    run.state.status = RunPhase::Exited;
    run.state.exited_at_ms = Some(now);
    run.state.outcome = Some(outcome);
    run.save_state();
}

fn climb_ladder(shared: &RunnerShared, run: &mut ActiveRun, now_ms: i64) -> Option<i64> {
    let step = ladder::advance(run.state.deadline_at_ms, run.state.stop, now_ms, shared.settings.kill_grace.as_millis() as i64);
    if step.stop != run.state.stop {
        if run.state.stop.is_none() {
            if let Some(stop) = step.stop {
                run.dir.event(now_ms, "stop_requested", json!({"reason": stop.reason}));
            }
        }
        run.state.stop = step.stop;
        // Recorded before the signal: an agent restarted right after knows why the group died.
        run.save_state();
    }
    if let (Some(signal), Some(pid)) = (step.send, run.state.pid) {
        if !run.process_gone {
            let delivered = process::signal_group(pid, signal);
            let name = if signal == Signal::Terminate { "SIGTERM" } else { "SIGKILL" };
            run.dir.event(now_ms, "signal_sent", json!({"signal": name, "process_group": pid, "delivered": delivered}));
        }
    }
    step.wake_at_ms
}

async fn heartbeat(shared: &RunnerShared, run: &mut ActiveRun) {
    let settings = &shared.settings;
    let request = StepHeartbeatRequest {
        worker_id: settings.worker_id.clone(),
        run_id: run.meta.run_id.clone(),
        heartbeat_ttl_sec: Some(settings.step_heartbeat_ttl_sec),
        progress: Some(
            json!({
                "phase": run.state.status.as_str(),
                "stdout_bytes": run.stdout_bytes,
                "stderr_bytes": run.stderr_bytes,
                "last_output_age_ms": (wall_ms() - run.last_output_at_ms).max(0),
                "shipped_chunks": run.cursor.next_seq - 1,
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ),
        base_commit: run.meta.base_commit.clone(),
    };
    run.next_heartbeat = Instant::now() + settings.step_heartbeat_interval;
    match shared.client.step_heartbeat(&run.meta.step_id, &request).await {
        Ok(answer) => {
            run.heartbeat_failures = 0;
            if answer.canceled && run.state.status == RunPhase::Running && run.state.stop.is_none() {
                let now_ms = wall_ms();
                run.state.stop = Some(ladder::request_stop(None, StopReason::Canceled, now_ms));
                run.dir.event(now_ms, "stop_requested", json!({"reason": "canceled"}));
                run.save_state();
                // SIGTERM now, not at the next wake-up.
                climb_ladder(shared, run, now_ms);
            }
        }
        Err(error) if error.is_final() => {
            // Reaped or superseded: the control plane will not take this run's result.
            if run.state.status == RunPhase::Running && run.state.stop.is_none() {
                log!("run {}: heartbeat refused, stopping the step: {error}", run.meta.run_id);
                run.state.stop = Some(ladder::request_stop(None, StopReason::Lost, wall_ms()));
                run.dir.event(wall_ms(), "stop_requested", json!({"reason": "lost", "detail": error.to_string()}));
                run.save_state();
            }
        }
        Err(error) => {
            run.heartbeat_failures += 1;
            if worth_logging(run.heartbeat_failures) {
                log!("run {}: heartbeat failed ({} in a row): {error}", run.meta.run_id, run.heartbeat_failures);
            }
        }
    }
}

/// Whether every byte there is to ship has been acknowledged.
fn caught_up(run: &ActiveRun) -> bool {
    let dir = &run.dir;
    let output_done =
        run.cursor.limit_reached || (run.cursor.stdout >= file_len(&dir.stdout_log()) && run.cursor.stderr >= file_len(&dir.stderr_log()));
    run.ship_abandoned || (run.cursor.in_flight.is_empty() && output_done && run.cursor.worker >= file_len(&dir.worker_log()))
}

/// One shipping turn: send the batch in flight, or plan the next one and send it.
async fn ship(shared: &RunnerShared, run: &mut ActiveRun) {
    let settings = &shared.settings;
    run.next_ship = Instant::now() + settings.ship_interval;
    if run.cursor.in_flight.is_empty() {
        // A quiet step's files have not grown: a stat each is all this turn costs.
        let grown = [LogStream::Stdout, LogStream::Stderr, LogStream::Worker]
            .into_iter()
            .any(|stream| file_len(&stream_path(&run.dir, stream)) > run.cursor.offset(stream));
        if !grown {
            // Nothing new: look again at a slower pace, so supervising a quiet step costs
            // about what idling does. Output that starts later waits at most this long.
            run.next_ship = Instant::now() + QUIET_SHIP_INTERVAL.max(settings.ship_interval);
            return;
        }
        let flush = run.state.status != RunPhase::Running || wall_ms() - run.last_output_at_ms >= QUIET_MS;
        let mut buffers = Vec::new();
        for stream in [LogStream::Stdout, LogStream::Stderr, LogStream::Worker] {
            let path = stream_path(&run.dir, stream);
            match shipper::read_range(&path, run.cursor.offset(stream), MAX_BATCH_TEXT_BYTES) {
                Ok(bytes) => buffers.push((stream, bytes)),
                Err(error) => {
                    log!("run {}: reading {}: {error}", run.meta.run_id, path.display());
                    return;
                }
            }
        }
        let inputs: Vec<StreamInput<'_>> = buffers
            .iter()
            .map(|(stream, bytes)| StreamInput { stream: *stream, offset: run.cursor.offset(*stream), bytes, flush_partial: flush })
            .collect();
        let allowance = settings.log_ship_limit_bytes.saturating_sub(run.cursor.output_bytes);
        let (batch, limited) = plan_batch(run.cursor.next_seq, &inputs, allowance);
        if batch.is_empty() {
            return;
        }
        let newly_limited = limited && !run.cursor.limit_reached;
        run.cursor.take(batch, limited);
        // Recorded before sending: after a crash the same ranges go again with the same seqs.
        run.save_cursor();
        if newly_limited {
            run.dir.event(
                wall_ms(),
                "log_ship_limit_reached",
                json!({
                    "limit_bytes": settings.log_ship_limit_bytes,
                    "note": "stdout and stderr beyond this are kept only in the run directory",
                }),
            );
        }
    }
    let chunks = match shipper::load_chunks(&run.cursor.in_flight, |stream| stream_path(&run.dir, stream)) {
        Ok(chunks) => chunks,
        Err(error) => {
            log!("run {}: the log files no longer hold the batch in flight ({error}); shipping stops", run.meta.run_id);
            run.ship_abandoned = true;
            return;
        }
    };
    let request = StepLogsRequest { worker_id: settings.worker_id.clone(), run_id: run.meta.run_id.clone(), chunks };
    match shared.client.step_logs(&run.meta.step_id, &request).await {
        Ok(_) => {
            run.ship_failures = 0;
            run.cursor.in_flight.clear();
            run.save_cursor();
            run.note_upload();
        }
        Err(error) if error.is_final() => {
            log!("run {}: the control plane refuses this run's logs; shipping stops: {error}", run.meta.run_id);
            run.ship_abandoned = true;
        }
        Err(error) => {
            run.ship_failures += 1;
            run.next_ship = Instant::now() + backoff(run.ship_failures, Duration::from_secs(4)).max(settings.ship_interval);
            if worth_logging(run.ship_failures) {
                log!("run {}: log upload failed ({} in a row), kept for later: {error}", run.meta.run_id, run.ship_failures);
            }
        }
    }
}

fn stream_path(dir: &RunDir, stream: LogStream) -> std::path::PathBuf {
    match stream {
        LogStream::Stdout => dir.stdout_log(),
        LogStream::Stderr => dir.stderr_log(),
        LogStream::Worker => dir.worker_log(),
    }
}

fn tail(path: &Path, bytes: u64) -> Vec<u8> {
    let len = file_len(path);
    shipper::read_range(path, len.saturating_sub(bytes), bytes as usize).unwrap_or_default()
}

async fn write_checkpoints(shared: &RunnerShared, run: &mut ActiveRun) {
    let outcome =
        run.state.outcome.clone().unwrap_or(Outcome { phase: RunPhase::Failed, exit_code: None, message: "no outcome recorded".into() });
    let mut diff = None;
    if let Some(base_sha) = run.meta.base_sha.clone() {
        let scratch = shared.settings.tmp_dir.join(format!("{}.index", run.meta.run_id));
        diff = Some(match worktree::diff(&run.meta.worktree, &base_sha, &scratch).await {
            Ok(diff) => diff,
            Err(error) => worktree::Diff { patch: format!("# the diff could not be taken: {error}\n"), files: Vec::new() },
        });
    }
    let duration_ms = match (run.state.started_at_ms, run.state.exited_at_ms) {
        (Some(started), Some(exited)) => Some(exited - started),
        _ => None,
    };
    let files_changed = diff.as_ref().map(|diff| diff.files.clone()).unwrap_or_default();
    let summary = checkpoints::summary(&SummaryFacts {
        outcome: outcome.phase.as_str(),
        exit_code: outcome.exit_code,
        message: &outcome.message,
        duration_ms,
        files_changed: &files_changed,
        stdout_bytes: run.stdout_bytes,
        stderr_bytes: run.stderr_bytes,
        step_kind: run.meta.step_kind.as_str(),
        attempt: run.meta.attempt,
    });
    let mut list = vec![(CheckpointType::Summary, CheckpointFormat::Json, serde_json::to_string_pretty(&summary).unwrap_or_default())];
    if let Some(diff) = diff {
        let whole = run.dir.artifacts().join("git-diff.patch");
        let fitted = checkpoints::fit(&diff.patch, "artifacts/git-diff.patch");
        if fitted.len() != diff.patch.len() {
            let _ = super::run_dir::write_atomic(&whole, diff.patch.as_bytes());
        }
        list.push((CheckpointType::GitDiff, CheckpointFormat::Patch, fitted));
    }
    let (stdout_tail, stderr_tail) = (tail(&run.dir.stdout_log(), TAIL_BYTES), tail(&run.dir.stderr_log(), TAIL_BYTES));
    list.push((CheckpointType::LogTail, CheckpointFormat::Text, checkpoints::log_tail(&stdout_tail, &stderr_tail)));
    if run.meta.step_kind == StepKind::Test {
        let budget = (checkpoints::CONTENT_BUDGET / 2) as u64;
        let text = checkpoints::test_output(
            run.meta.shell_command.as_deref().unwrap_or(""),
            &tail(&run.dir.stdout_log(), budget),
            &tail(&run.dir.stderr_log(), budget),
            &outcome.message,
        );
        list.push((CheckpointType::TestOutput, CheckpointFormat::Text, checkpoints::fit(&text, "stdout.log and stderr.log")));
    }
    match checkpoints::write_all(&run.dir.checkpoints(), &list) {
        Ok(files) => {
            run.state.last_checkpoint_seq = files.len() as i64;
            run.dir.event(wall_ms(), "checkpoints_written", json!({"count": files.len(), "files_changed": files_changed.len()}));
            run.save_state();
        }
        Err(error) => log!("run {}: writing checkpoints: {error}", run.meta.run_id),
    }
}

/// Uploads what is left of the checkpoints; false when the control plane is unreachable.
async fn upload_checkpoints(shared: &RunnerShared, run: &mut ActiveRun) -> Result<(), ClientError> {
    for file in checkpoints::list(&run.dir.checkpoints()) {
        if file.seq <= run.state.checkpoints_uploaded {
            continue;
        }
        let content = std::fs::read(&file.path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
        let request = CheckpointRequest {
            worker_id: shared.settings.worker_id.clone(),
            run_id: run.meta.run_id.clone(),
            seq: file.seq,
            checkpoint_type: file.checkpoint_type,
            format: file.format,
            size: content.len() as i64,
            sha256: checkpoints::sha256_hex(content.as_bytes()),
            content,
        };
        match shared.client.step_checkpoint(&run.meta.step_id, &request).await {
            Ok(_) => run.note_upload(),
            Err(error) if error.code() == Some(ErrorCode::Conflict) => {
                log!("run {}: checkpoint {} was stored earlier with other content; kept locally", run.meta.run_id, file.seq)
            }
            Err(error) => return Err(error),
        }
        run.state.checkpoints_uploaded = file.seq;
        run.save_state();
    }
    Ok(())
}

/// The ending after the process is gone; true once the run is terminal.
async fn finish(shared: &RunnerShared, run: &mut ActiveRun) -> bool {
    if !run.state.committed {
        commit_step(shared, run).await;
    }
    if run.state.last_checkpoint_seq == 0 {
        write_checkpoints(shared, run).await;
    }
    // Output first, so a task that shows as finished has its logs in the control plane.
    if !caught_up(run) {
        return false;
    }
    if run.state.reported_at_ms.is_none() {
        if Instant::now() < run.next_report {
            return false;
        }
        match report(shared, run).await {
            Ok(()) => {}
            Err(error) => {
                run.report_failures += 1;
                run.next_report = Instant::now() + backoff(run.report_failures, Duration::from_secs(15));
                if worth_logging(run.report_failures) {
                    log!("run {}: reporting failed ({} in a row), will retry: {error}", run.meta.run_id, run.report_failures);
                }
                return false;
            }
        }
        // The terminal event is in worker.log now: ship it before closing.
        run.next_ship = Instant::now();
        return false;
    }
    let phase = run.state.outcome.as_ref().map(|outcome| outcome.phase).unwrap_or(RunPhase::Failed);
    run.state.status = phase;
    run.save_state();
    true
}

/// After an agent or shell step that exited 0, its changes become one commit on the task's
/// branch. A commit that fails turns the success into a failure: the branch must hold what
/// the task reports.
async fn commit_step(shared: &RunnerShared, run: &mut ActiveRun) {
    let succeeded = run.state.outcome.as_ref().is_some_and(|outcome| outcome.phase == RunPhase::Succeeded);
    if succeeded && run.meta.step_kind.commits() && run.meta.base_sha.is_some() {
        let message = branch::commit_message(&run.meta.task_title, &run.meta.title, &run.meta.task_id, &run.meta.run_id);
        let committed = {
            let _git = shared.git_lock.lock().await;
            branch::commit_all(&run.meta.worktree, &message, &shared.settings.git_author).await
        };
        match committed {
            Ok(commit) => run.dir.event(wall_ms(), "committed", json!({"commit": commit, "branch": run.meta.branch_name})),
            Err(error) => {
                run.dir.event(wall_ms(), "commit_failed", json!({"error": error.to_string()}));
                if let Some(outcome) = run.state.outcome.as_mut() {
                    outcome.phase = RunPhase::Failed;
                    outcome.message = format!("the step succeeded but its changes could not be committed: {error}");
                }
            }
        }
    }
    run.state.committed = true;
    run.save_state();
}

fn phase_of(status: RunStatus) -> RunPhase {
    match status {
        RunStatus::Succeeded => RunPhase::Succeeded,
        RunStatus::TimedOut => RunPhase::TimedOut,
        RunStatus::Canceled => RunPhase::Canceled,
        RunStatus::Blocked => RunPhase::Blocked,
        RunStatus::Lost => RunPhase::Lost,
        _ => RunPhase::Failed,
    }
}

/// Uploads the checkpoints and reports the outcome; a transient failure is returned for a
/// retry, a refusal for good settles the run as lost.
async fn report(shared: &RunnerShared, run: &mut ActiveRun) -> Result<(), ClientError> {
    let settings = &shared.settings;
    let mut outcome =
        run.state.outcome.clone().unwrap_or(Outcome { phase: RunPhase::Failed, exit_code: None, message: "no outcome recorded".into() });
    let answer = if outcome.phase == RunPhase::Lost {
        None
    } else {
        let uploaded = upload_checkpoints(shared, run).await;
        let task_result = delivery::task_result(&run.meta, &run.dir, &shared.settings.host, outcome.phase == RunPhase::Succeeded).await;
        let answer = match uploaded {
            Err(error) => Err(error),
            Ok(()) if outcome.phase == RunPhase::Succeeded => {
                let summary: Value = std::fs::read(run.dir.checkpoints().join("0001-summary.json"))
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .unwrap_or(Value::Null);
                let changed = summary["files_changed_count"].as_u64().unwrap_or(0);
                let request = StepCompleteRequest {
                    worker_id: settings.worker_id.clone(),
                    run_id: run.meta.run_id.clone(),
                    summary: format!("{}; {changed} file(s) changed", outcome.message),
                    exit_code: 0,
                    result: Some(summary),
                    task_result,
                };
                shared.client.step_complete(&run.meta.step_id, &request).await
            }
            Ok(()) => {
                let request = StepFailRequest {
                    worker_id: settings.worker_id.clone(),
                    run_id: run.meta.run_id.clone(),
                    error: outcome.message.clone(),
                    exit_code: outcome.exit_code,
                    blocked: outcome.phase == RunPhase::Blocked,
                    needs_human: false,
                    timed_out: outcome.phase == RunPhase::TimedOut,
                    task_result,
                };
                shared.client.step_fail(&run.meta.step_id, &request).await
            }
        };
        match answer {
            Ok(settled) => Some(Ok(settled)),
            Err(error) if error.is_final() => Some(Err(error)),
            Err(error) => return Err(error),
        }
    };
    match answer {
        Some(Ok(settled)) => outcome.phase = phase_of(settled.run.status),
        Some(Err(error)) => {
            outcome.message = format!("{}; the control plane refused the report: {error}", outcome.message);
            outcome.phase = RunPhase::Lost;
        }
        None => {}
    }
    let now = wall_ms();
    run.dir.event(now, &format!("run_{}", outcome.phase.as_str()), json!({"exit_code": outcome.exit_code, "message": outcome.message}));
    run.state.outcome = Some(outcome);
    run.state.reported_at_ms = Some(now);
    run.save_state();
    Ok(())
}
