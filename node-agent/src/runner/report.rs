//! What a run tells the control plane, through the outbox: its heartbeat, its output in
//! ordered batches, its checkpoints and its outcome; and what it does with the verdicts. The
//! commit of a step's changes and the checkpoints are made here too, before the report.

use std::path::Path;

use serde_json::{json, Value};
use shared::status::{CheckpointFormat, CheckpointType, LogStream, StepKind, StepStatus, Verdict};
use shared::wire::{ItemVerdict, RunBeat, RunCheckpoint, RunCompletion, RunFailure, RunLogs};

use super::checkpoints::{self, SummaryFacts};
use super::ladder;
use super::run::{file_len, ActiveRun};
use super::run_dir::{Outcome, RunDir, RunPhase, StopReason};
use super::shipper::{self, plan_batch, StreamInput, MAX_BATCH_TEXT_BYTES};
use super::{branch, delivery, worktree};
use super::{wall_ms, RunnerShared};
use crate::log::log;

/// Output quiet this long counts as a pause: a trailing partial line is shipped.
const QUIET_MS: i64 = 2_000;
/// How often a run whose log files have not grown looks at them again.
const QUIET_SHIP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);
const TAIL_BYTES: u64 = 64 * 1024;

/// Puts the run's heartbeat, with its progress, into the outbox: it goes with every sync until
/// the run has reported.
pub(super) fn heartbeat(shared: &RunnerShared, run: &mut ActiveRun) {
    let settings = &shared.settings;
    let progress = json!({
        "phase": run.state.status.as_str(),
        "stdout_bytes": run.stdout_bytes,
        "stderr_bytes": run.stderr_bytes,
        "last_output_age_ms": (wall_ms() - run.last_output_at_ms).max(0),
        "shipped_chunks": run.cursor.next_seq - 1,
    });
    run.next_heartbeat = crate::clock::now() + settings.step_heartbeat_interval;
    shared.outbox.borrow_mut().put_beat(RunBeat {
        step_id: run.meta.step_id.clone(),
        run_id: run.meta.run_id.clone(),
        progress: progress.as_object().cloned(),
        base_commit: run.meta.base_commit.clone(),
    });
}

/// Acts on what the control plane said about the run since the driver last looked.
pub(super) fn read_news(shared: &RunnerShared, run: &mut ActiveRun) {
    let news = shared.outbox.borrow_mut().take_news(&run.meta.run_id);
    if let Some(beat) = news.beat {
        let running = run.state.status == RunPhase::Running && run.state.stop.is_none();
        // Reaped or superseded (stale): the control plane will not take this run's result.
        let stop = match (beat.verdict, beat.canceled) {
            (Verdict::Stale, _) => Some((StopReason::Lost, "lost")),
            (_, true) => Some((StopReason::Canceled, "canceled")),
            _ => None,
        };
        if let (Some((reason, name)), true) = (stop, running) {
            let (now_ms, detail) = (wall_ms(), beat.message.unwrap_or_default());
            log!("run {}: stopping the step ({name}) {detail}", run.meta.run_id);
            run.state.stop = Some(ladder::request_stop(None, reason, now_ms));
            run.dir.event(now_ms, "stop_requested", json!({"reason": name, "detail": detail}));
            run.save_state();
        }
    }
    if let Some(logs) = news.logs {
        if logs.verdict == Verdict::Accepted {
            run.cursor.in_flight.clear();
            run.save_cursor();
            run.note_upload();
        } else {
            let detail = logs.message.unwrap_or_default();
            log!("run {}: the control plane refuses this run's logs; shipping stops: {detail}", run.meta.run_id);
            run.ship_abandoned = true;
        }
        // The next batch, if there is one, at once.
        run.next_ship = crate::clock::now();
    }
    for (seq, verdict) in news.checkpoints {
        match verdict.verdict {
            Verdict::Accepted => run.note_upload(),
            _ => log!("run {}: checkpoint {seq} not taken ({}); kept locally", run.meta.run_id, verdict.message.unwrap_or_default()),
        }
        run.state.checkpoints_uploaded = run.state.checkpoints_uploaded.max(seq);
        run.save_state();
    }
    if let Some(verdict) = news.report {
        settle_report(run, &verdict);
    }
}

/// Whether every byte there is to ship has been taken into batches (the last may still be in
/// flight: it goes in the same sync as the report, or before it).
fn taken_to_end(run: &ActiveRun) -> bool {
    let dir = &run.dir;
    let output_done =
        run.cursor.limit_reached || (run.cursor.stdout >= file_len(&dir.stdout_log()) && run.cursor.stderr >= file_len(&dir.stderr_log()));
    run.ship_abandoned || (output_done && run.cursor.worker >= file_len(&dir.worker_log()))
}

/// Whether every byte there is to ship has been acknowledged.
fn caught_up(run: &ActiveRun) -> bool {
    run.ship_abandoned || (run.cursor.in_flight.is_empty() && taken_to_end(run))
}

/// One shipping turn: plan the next batch when none is in flight, and keep the batch in flight
/// in the outbox until its verdict comes back.
pub(super) fn ship(shared: &RunnerShared, run: &mut ActiveRun) {
    let settings = &shared.settings;
    run.next_ship = crate::clock::now() + settings.ship_interval;
    if run.cursor.in_flight.is_empty() {
        // A quiet step's files have not grown: a stat each is all this turn costs.
        let grown = [LogStream::Stdout, LogStream::Stderr, LogStream::Worker]
            .into_iter()
            .any(|stream| file_len(&stream_path(&run.dir, stream)) > run.cursor.offset(stream));
        if !grown {
            // Nothing new: look again at a slower pace, so supervising a quiet step costs
            // about what idling does. Output that starts later waits at most this long.
            run.next_ship = crate::clock::now() + QUIET_SHIP_INTERVAL.max(settings.ship_interval);
            shared.outbox.borrow_mut().set_more_output(&run.meta.run_id, false);
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
    let more = [LogStream::Stdout, LogStream::Stderr, LogStream::Worker].into_iter().any(|stream| {
        let limited = stream != LogStream::Worker && run.cursor.limit_reached;
        !limited && file_len(&stream_path(&run.dir, stream)) > run.cursor.offset(stream)
    });
    let mut outbox = shared.outbox.borrow_mut();
    outbox.set_more_output(&run.meta.run_id, more);
    if outbox.has_logs(&run.meta.run_id) {
        return;
    }
    match shipper::load_chunks(&run.cursor.in_flight, |stream| stream_path(&run.dir, stream)) {
        Ok(chunks) => outbox.put_logs(RunLogs { step_id: run.meta.step_id.clone(), run_id: run.meta.run_id.clone(), chunks }),
        Err(error) => {
            log!("run {}: the log files no longer hold the batch in flight ({error}); shipping stops", run.meta.run_id);
            run.ship_abandoned = true;
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

/// Puts what is left of the checkpoints into the outbox.
fn queue_checkpoints(shared: &RunnerShared, run: &ActiveRun) {
    for file in checkpoints::list(&run.dir.checkpoints()) {
        if file.seq <= run.state.checkpoints_uploaded {
            continue;
        }
        let content = std::fs::read(&file.path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
        shared.outbox.borrow_mut().put_checkpoint(RunCheckpoint {
            step_id: run.meta.step_id.clone(),
            run_id: run.meta.run_id.clone(),
            seq: file.seq,
            checkpoint_type: file.checkpoint_type,
            format: file.format,
            size: content.len() as i64,
            sha256: checkpoints::sha256_hex(content.as_bytes()),
            content,
        });
    }
}

/// The ending after the process is gone; true once the run is terminal.
pub(super) async fn finish(shared: &RunnerShared, run: &mut ActiveRun) -> bool {
    if !run.state.committed {
        commit_step(shared, run).await;
    }
    if run.state.last_checkpoint_seq == 0 {
        write_checkpoints(shared, run).await;
    }
    if run.state.reported_at_ms.is_none() {
        // Output first: the report goes only with (or after) the last batch of output, so a
        // task that shows as finished has its logs.
        if !taken_to_end(run) {
            return false;
        }
        if !run.report_queued {
            queue_report(shared, run).await;
            run.report_queued = true;
            shared.wake.notify_one();
        }
        return false;
    }
    // The terminal event is in worker.log: ship it before closing.
    if !caught_up(run) {
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

/// Puts the checkpoints and the outcome into the outbox (a lost run has nothing to report).
async fn queue_report(shared: &RunnerShared, run: &mut ActiveRun) {
    let outcome =
        run.state.outcome.clone().unwrap_or(Outcome { phase: RunPhase::Failed, exit_code: None, message: "no outcome recorded".into() });
    if outcome.phase == RunPhase::Lost {
        record_reported(run, outcome);
        return;
    }
    queue_checkpoints(shared, run);
    let task_result = delivery::task_result(&run.meta, &run.dir, &shared.settings.host, outcome.phase == RunPhase::Succeeded).await;
    let (step_id, run_id) = (run.meta.step_id.clone(), run.meta.run_id.clone());
    if outcome.phase == RunPhase::Succeeded {
        let summary: Value = std::fs::read(run.dir.checkpoints().join("0001-summary.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        let changed = summary["files_changed_count"].as_u64().unwrap_or(0);
        shared.outbox.borrow_mut().put_completion(RunCompletion {
            step_id,
            run_id,
            summary: format!("{}; {changed} file(s) changed", outcome.message),
            exit_code: 0,
            result: Some(summary),
            task_result,
        });
    } else {
        shared.outbox.borrow_mut().put_failure(RunFailure {
            step_id,
            run_id,
            error: outcome.message.clone(),
            exit_code: outcome.exit_code,
            blocked: outcome.phase == RunPhase::Blocked,
            needs_human: false,
            timed_out: outcome.phase == RunPhase::TimedOut,
            task_result,
        });
    }
}

/// The verdict on the run's completion or failure: the run's phase as the control plane
/// counted it (a completion of a canceled step is a canceled run; a refused report leaves the
/// run lost).
fn settle_report(run: &mut ActiveRun, verdict: &ItemVerdict) {
    let mut outcome =
        run.state.outcome.clone().unwrap_or(Outcome { phase: RunPhase::Failed, exit_code: None, message: "no outcome recorded".into() });
    match verdict.verdict {
        Verdict::Deferred => return,
        Verdict::Accepted if verdict.step_status == Some(StepStatus::Canceled) => outcome.phase = RunPhase::Canceled,
        Verdict::Accepted => {}
        Verdict::Stale | Verdict::Refused => {
            outcome.message =
                format!("{}; the control plane refused the report: {}", outcome.message, verdict.message.as_deref().unwrap_or(""));
            outcome.phase = RunPhase::Lost;
        }
    }
    record_reported(run, outcome);
}

fn record_reported(run: &mut ActiveRun, outcome: Outcome) {
    let now = wall_ms();
    run.dir.event(now, &format!("run_{}", outcome.phase.as_str()), json!({"exit_code": outcome.exit_code, "message": outcome.message}));
    run.state.outcome = Some(outcome);
    run.state.reported_at_ms = Some(now);
    run.save_state();
    // The terminal event is in worker.log now: ship it at once.
    run.next_ship = crate::clock::now();
}
