//! One run's driver: the I/O around its [`RunMachine`]. Each turn it reads both clocks and
//! the log files' lengths, looks at the process, hands the machine the verdicts that came
//! back, then performs what the machine asks (state files, events, signals, the outbox, git)
//! and sleeps until the machine's next timer, the child's exit or the next verdicts. It never
//! waits on the network, so a stop is local and immediate whatever the control plane does.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use shared::status::{LogStream, StepKind};

use super::ladder::Signal;
use super::limits::{self, LimitHit};
use super::machine::{LogSizes, RunAction, RunMachine};
use super::outcome::ProcessEnd;
use super::run_dir::{write_json_atomic, RunDir};
use super::shipper::{self, plan_batch, StreamInput, MAX_BATCH_TEXT_BYTES};
use super::stall::Activity;
use super::{process, report, worktree, RunnerShared};
use crate::clock::Now;
use crate::log::log;

/// How much of the end of a failed coding agent's stdout and stderr is read for a usage limit.
const LIMIT_SCAN_BYTES: u64 = 16 * 1024;

/// How often an adopted process (not this agent's child) is checked for its end.
const ADOPTED_POLL: Duration = Duration::from_millis(250);

/// A run on this host: its machine, its directory, and its process if this agent started it.
pub(super) struct ActiveRun {
    pub(super) dir: RunDir,
    pub(super) machine: RunMachine,
    /// This agent's own child; `None` for an adopted process.
    pub(super) child: Option<tokio::process::Child>,
}

pub(super) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|metadata| metadata.len()).unwrap_or(0)
}

pub(super) fn log_sizes(dir: &RunDir) -> LogSizes {
    LogSizes { stdout: file_len(&dir.stdout_log()), stderr: file_len(&dir.stderr_log()), worker: file_len(&dir.worker_log()) }
}

pub(super) fn stream_path(dir: &RunDir, stream: LogStream) -> std::path::PathBuf {
    match stream {
        LogStream::Stdout => dir.stdout_log(),
        LogStream::Stderr => dir.stderr_log(),
        LogStream::Worker => dir.worker_log(),
    }
}

/// Drives the run to its terminal state.
pub(super) async fn drive(shared: Rc<RunnerShared>, mut run: ActiveRun) {
    let run_id = run.machine.meta().run_id.clone();
    let mut exited_counted = false;
    loop {
        let now = Now::read();
        run.machine.handle_sizes(now, log_sizes(&run.dir));
        if run.machine.watching_process() {
            if let Some(end) = poll_end(&mut run, &shared.settings.options.agent_limit_patterns) {
                run.child = None;
                run.machine.handle_exit(now, end);
            }
        }
        let news = shared.outbox.borrow_mut().take_news(&run_id);
        run.machine.handle_news(now, news);
        run.machine.handle_timeout(now);
        perform(&shared, &mut run, now).await;
        if !exited_counted && run.machine.holds_no_slot() {
            exited_counted = true;
            shared.exited.set(shared.exited.get() + 1);
        }
        shared.board.borrow_mut().insert(run_id.clone(), run.machine.view(now.wall_ms));
        if run.machine.is_finished() {
            break;
        }
        let mut wake = run.machine.poll_timeout().unwrap_or(now.at + Duration::from_secs(60));
        if run.machine.watching_process() && run.child.is_none() {
            wake = wake.min(now.at + ADOPTED_POLL);
        }
        // Verdicts wake every run; each looks at its own news.
        let news = shared.news.notified();
        match run.child.as_mut() {
            Some(child) => {
                tokio::select! {
                    _ = child.wait() => {}
                    _ = news => {}
                    _ = tokio::time::sleep_until(wake.into()) => {}
                }
            }
            None => {
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
    shared.outbox.borrow_mut().forget(&run_id);
    let state = run.machine.state();
    let (uploads, span) = run.machine.uploads();
    log!(
        "run {run_id}: {} ({}) uploads={uploads} over {span:.1} s",
        state.status.as_str(),
        state.outcome.as_ref().map(|outcome| outcome.message.as_str()).unwrap_or("")
    );
}

/// Performs what the machine asks, in order, answering the actions that need an answer.
pub(super) async fn perform(shared: &RunnerShared, run: &mut ActiveRun, now: Now) {
    let run_id = run.machine.meta().run_id.clone();
    while let Some(action) = run.machine.poll_action() {
        match action {
            RunAction::SaveState => {
                if let Err(error) = write_json_atomic(&run.dir.state(), run.machine.state()) {
                    log!("run {run_id}: writing state.json: {error}");
                }
            }
            RunAction::SaveCursor => {
                if let Err(error) = write_json_atomic(&run.dir.ship(), run.machine.cursor()) {
                    log!("run {run_id}: writing ship.json: {error}");
                }
            }
            RunAction::Event { at_ms, name, detail } => run.dir.event(at_ms, &name, detail),
            RunAction::Log(line) => log!("{line}"),
            RunAction::Signal(signal) => {
                if let Some(pid) = run.machine.state().pid {
                    let delivered = process::signal_group(pid, signal);
                    let name = if signal == Signal::Terminate { "SIGTERM" } else { "SIGKILL" };
                    run.dir.event(now.wall_ms, "signal_sent", json!({"signal": name, "process_group": pid, "delivered": delivered}));
                }
            }
            RunAction::KillLeftovers => {
                if let Some(pid) = run.machine.state().pid.filter(|pid| process::group_exists(*pid)) {
                    process::signal_group(pid, Signal::Kill);
                }
            }
            RunAction::Beat(beat) => shared.outbox.borrow_mut().put_beat(beat),
            RunAction::EndBeat => shared.outbox.borrow_mut().end_beat(&run_id),
            RunAction::MoreOutput(more) => shared.outbox.borrow_mut().set_more_output(&run_id, more),
            RunAction::TakeOutput { flush, allowance } => {
                let (batch, limited) = take_output(&run.dir, &run.machine, flush, allowance);
                run.machine.handle_output_taken(now, batch, limited);
            }
            RunAction::SendOutput => match shipper::load_chunks(&run.machine.cursor().in_flight, |stream| stream_path(&run.dir, stream)) {
                Ok(chunks) => {
                    let meta = run.machine.meta();
                    let logs = shared::wire::RunLogs { step_id: meta.step_id.clone(), run_id: run_id.clone(), chunks };
                    shared.outbox.borrow_mut().put_logs(logs);
                }
                Err(error) => run.machine.handle_output_unreadable(now, &error.to_string()),
            },
            RunAction::CheckScope => {
                let changed = report::changed_paths(shared, run.machine.meta()).await;
                run.machine.handle_scope_checked(Now::read(), changed);
            }
            RunAction::SampleActivity => {
                let cpu_ms = run.machine.state().pid.and_then(crate::platform::group_cpu_ms);
                let worktree_stamp = worktree::activity_stamp(&run.machine.meta().worktree).await;
                run.machine.handle_activity(Now::read(), Activity { cpu_ms, worktree_stamp });
            }
            RunAction::Commit => {
                let committed = report::commit(shared, run.machine.meta()).await;
                let reported = run.dir.read_agent_report_text().is_some();
                run.machine.handle_committed(Now::read(), committed, reported);
            }
            RunAction::WriteCheckpoints => {
                let written = report::write_checkpoints(shared, &run.dir, run.machine.meta(), run.machine.state()).await;
                run.machine.handle_checkpoints_written(Now::read(), written);
            }
            RunAction::QueueReport => {
                report::queue_report(shared, &run.dir, run.machine.meta(), run.machine.state()).await;
                run.machine.handle_report_queued(Now::read());
            }
            RunAction::Wake => shared.wake.notify_one(),
        }
    }
}

/// Reads what the files hold past the cursor and plans the next batch.
fn take_output(dir: &RunDir, machine: &RunMachine, flush: bool, allowance: u64) -> (Vec<shipper::ChunkRange>, bool) {
    let cursor = machine.cursor();
    let mut buffers = Vec::new();
    for stream in [LogStream::Stdout, LogStream::Stderr, LogStream::Worker] {
        let path = stream_path(dir, stream);
        match shipper::read_range(&path, cursor.offset(stream), MAX_BATCH_TEXT_BYTES) {
            Ok(bytes) => buffers.push((stream, bytes)),
            Err(error) => {
                log!("run {}: reading {}: {error}", machine.meta().run_id, path.display());
                return (Vec::new(), false);
            }
        }
    }
    let inputs: Vec<StreamInput<'_>> = buffers
        .iter()
        .map(|(stream, bytes)| StreamInput { stream: *stream, offset: cursor.offset(*stream), bytes, flush_partial: flush })
        .collect();
    plan_batch(cursor.next_seq, &inputs, allowance)
}

/// The process's end, if it has ended: this agent's child tells its status; an adopted
/// process is gone when its pid is or when its exit status was recorded.
fn poll_end(run: &mut ActiveRun, limit_patterns: &[String]) -> Option<ProcessEnd> {
    if let Some(child) = run.child.as_mut() {
        match child.try_wait() {
            Ok(Some(status)) => {
                let recorded_exit = run.dir.recorded_exit_status();
                let wrapper_exit = status.code().map(i64::from);
                return Some(ProcessEnd {
                    recorded_exit,
                    wrapper_exit,
                    wrapper_signal: status.signal(),
                    reason: run.dir.read_failure_reason(),
                    limit: usage_limit(run, recorded_exit.or(wrapper_exit), limit_patterns),
                });
            }
            Ok(None) => return None,
            Err(_) => {}
        }
    }
    let pid = run.machine.state().pid.unwrap_or(0);
    let ended = run.machine.process_gone() || !process::is_alive(pid) || run.dir.exit_status().exists();
    ended.then(|| {
        let recorded_exit = run.dir.recorded_exit_status();
        ProcessEnd {
            recorded_exit,
            reason: run.dir.read_failure_reason(),
            limit: usage_limit(run, recorded_exit, limit_patterns),
            ..ProcessEnd::default()
        }
    })
}

/// The usage limit a coding agent that failed announced in the end of its output, if any.
fn usage_limit(run: &ActiveRun, exit_code: Option<i64>, patterns: &[String]) -> Option<LimitHit> {
    if run.machine.meta().step_kind != StepKind::Agent || matches!(exit_code, Some(0)) {
        return None;
    }
    // A limit the CLI reported in its structured output (SPEC §16) comes before its text.
    if let Some(limit) = crate::agents::exec::read_limit(&run.dir.root) {
        let now = chrono::Utc::now();
        let from_text = limits::detect(&limit.message, now, limits::host_zone(), patterns);
        return Some(LimitHit { resets_at: limit.resets_at.or(from_text.and_then(|hit| hit.resets_at)), message: limit.message });
    }
    let mut output = String::new();
    for path in [run.dir.stdout_log(), run.dir.stderr_log()] {
        output.push_str(&String::from_utf8_lossy(&report::tail(&path, LIMIT_SCAN_BYTES)));
        output.push('\n');
    }
    limits::detect(&output, chrono::Utc::now(), limits::host_zone(), patterns)
}
