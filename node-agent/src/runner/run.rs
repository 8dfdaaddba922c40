//! One run, from its claim (or its adoption after a restart) to its terminal state: the run's
//! state and its driver loop, which watches the process, climbs the stop ladder and hands what
//! the run has to say to the outbox ([`super::report`]); the ladder, the outcome and the
//! chunking are pure functions. The driver never waits on the network: a stop is local and
//! immediate whatever the control plane does.
//!
//! Order of the ending, each step recorded in `state.json` before the next, so a restarted
//! agent resumes where this one stopped: the process ends → its outcome is decided
//! (`exited`) → checkpoints are written → the output is taken into batches up to the end →
//! checkpoints and the outcome go with the next sync → the rest of `worker.log` is shipped →
//! terminal.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::ladder::{self, Signal};
use super::outcome::{self, ProcessEnd};
use super::process;
use super::report;
use super::run_dir::{write_json_atomic, Outcome, RunDir, RunMeta, RunPhase, RunState};
use super::shipper::ShipCursor;
use super::{wall_ms, RunView, RunnerShared};
use crate::log::log;

/// How often an adopted process (not this agent's child) is checked for its end.
const ADOPTED_POLL: Duration = Duration::from_millis(250);

pub(super) struct ActiveRun {
    pub(super) dir: RunDir,
    pub(super) meta: RunMeta,
    pub(super) state: RunState,
    pub(super) cursor: ShipCursor,
    /// This agent's own child; `None` for an adopted process.
    pub(super) child: Option<tokio::process::Child>,
    /// The recorded pid belongs to another process now (or there never was one).
    pub(super) process_gone: bool,
    pub(super) stdout_bytes: u64,
    pub(super) stderr_bytes: u64,
    pub(super) last_output_at_ms: i64,
    pub(super) next_heartbeat: Instant,
    pub(super) next_ship: Instant,
    /// The checkpoints and the outcome are in the outbox, waiting for their verdicts.
    pub(super) report_queued: bool,
    /// The control plane will never take these logs (the run is not this worker's any more).
    pub(super) ship_abandoned: bool,
    /// Items of the run the control plane accepted (log batches and checkpoints), and when the
    /// first and last were accepted: the shipping rate, for the log and the benchmarks.
    pub(super) uploads: u32,
    pub(super) uploads_span: Option<(Instant, Instant)>,
}

pub(super) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|metadata| metadata.len()).unwrap_or(0)
}

impl ActiveRun {
    pub(super) fn new(dir: RunDir, meta: RunMeta, state: RunState, cursor: ShipCursor) -> ActiveRun {
        let now = crate::clock::now();
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
            report_queued: false,
            ship_abandoned: false,
            uploads: 0,
            uploads_span: None,
        }
    }

    pub(super) fn note_upload(&mut self) {
        let now = crate::clock::now();
        self.uploads += 1;
        self.uploads_span = Some(self.uploads_span.map_or((now, now), |(first, _)| (first, now)));
    }

    pub(super) fn save_state(&mut self) {
        self.state.updated_at_ms = wall_ms();
        if let Err(error) = write_json_atomic(&self.dir.state(), &self.state) {
            log!("run {}: writing state.json: {error}", self.meta.run_id);
        }
    }

    pub(super) fn save_cursor(&self) {
        if let Err(error) = write_json_atomic(&self.dir.ship(), &self.cursor) {
            log!("run {}: writing ship.json: {error}", self.meta.run_id);
        }
    }

    pub(super) fn end_without_process(&mut self, phase: RunPhase, message: String) {
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

/// Watches the process and the stop ladder, keeps the run's heartbeat and output in the
/// outbox, reads what came back, and finally settles the run.
pub(super) async fn drive(shared: Rc<RunnerShared>, mut run: ActiveRun) {
    let mut exited_counted = false;
    loop {
        let now_ms = wall_ms();
        let mut ladder_wake: Option<i64> = None;
        if run.state.status == RunPhase::Running {
            track_output(&mut run, now_ms);
            if let Some(end) = poll_end(&mut run) {
                record_end(&mut run, end);
                // The process is gone: the host has room again, and its last output and
                // outcome should go soon.
                shared.wake.notify_one();
            } else {
                ladder_wake = climb_ladder(&shared, &mut run, now_ms);
            }
        }
        if !exited_counted && !matches!(run.state.status, RunPhase::Prepared | RunPhase::Running) {
            exited_counted = true;
            shared.exited.set(shared.exited.get() + 1);
        }
        report::read_news(&shared, &mut run);
        if run.state.status == RunPhase::Running {
            // The news may have asked for a stop (canceled, or the run is stale).
            ladder_wake = climb_ladder(&shared, &mut run, wall_ms()).or(ladder_wake);
        }
        let reporting_done = run.state.reported_at_ms.is_some() || run.state.status.is_terminal();
        if reporting_done {
            shared.outbox.borrow_mut().end_beat(&run.meta.run_id);
        } else if crate::clock::now() >= run.next_heartbeat {
            report::heartbeat(&shared, &mut run);
        }
        if !run.ship_abandoned && crate::clock::now() >= run.next_ship {
            report::ship(&shared, &mut run);
        }
        if run.state.status == RunPhase::Exited && report::finish(&shared, &mut run).await {
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
        if let Some(at_ms) = ladder_wake {
            wake = wake.min(crate::clock::now() + Duration::from_millis((at_ms - wall_ms()).max(0) as u64));
        }
        let running = run.state.status == RunPhase::Running;
        // Verdicts wake every run; each looks at its own news.
        let news = shared.news.notified();
        match run.child.as_mut() {
            Some(child) if running => {
                tokio::select! {
                    _ = child.wait() => {}
                    _ = news => {}
                    _ = tokio::time::sleep_until(wake.into()) => {}
                }
            }
            _ => {
                if running {
                    wake = wake.min(crate::clock::now() + ADOPTED_POLL);
                }
                tokio::select! {
                    _ = news => {}
                    _ = tokio::time::sleep_until(wake.into()) => {}
                }
            }
        }
    }
    if exited_counted {
        shared.exited.set(shared.exited.get().saturating_sub(1));
    }
    shared.outbox.borrow_mut().forget(&run.meta.run_id);
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
    run.next_ship = crate::clock::now();
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

pub(super) fn climb_ladder(shared: &RunnerShared, run: &mut ActiveRun, now_ms: i64) -> Option<i64> {
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
