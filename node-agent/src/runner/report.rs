//! What a run's ending does on the host: the commit of the step's changes, the checkpoints
//! (summary, git diff, log tail, test output), and the report — checkpoints and the outcome —
//! put into the outbox. The run's machine decides when; these do it.

use std::path::Path;

use serde_json::Value;
use shared::status::{CheckpointFormat, CheckpointType, StepKind};
use shared::wire::{AgentReport, QuotaHit, RunCheckpoint, RunCompletion, RunFailure};

use super::checkpoints::{self, SummaryFacts};
use super::run::file_len;
use super::run_dir::{Outcome, RunDir, RunMeta, RunPhase, RunState, StopReason};
use super::shipper;
use super::{branch, delivery, worktree, RunnerShared};

const TAIL_BYTES: u64 = 64 * 1024;

fn outcome_of(state: &RunState) -> Outcome {
    state.outcome.clone().unwrap_or(Outcome {
        phase: RunPhase::Failed,
        exit_code: None,
        message: "no outcome recorded".into(),
        needs_human: false,
    })
}

/// The last `bytes` of a file (what there is of them).
pub(super) fn tail(path: &Path, bytes: u64) -> Vec<u8> {
    let len = file_len(path);
    shipper::read_range(path, len.saturating_sub(bytes), bytes as usize).unwrap_or_default()
}

/// The step's changes as one commit on the task's branch: the commit's id, or why it failed.
pub(super) async fn commit(shared: &RunnerShared, meta: &RunMeta) -> Result<Option<String>, String> {
    let message = branch::commit_message(&meta.task_title, &meta.title, &meta.task_id, &meta.run_id);
    let _git = shared.git_lock.lock().await;
    branch::commit_all(&meta.worktree, &message, &shared.settings.git_author).await.map_err(|error| error.to_string())
}

/// The paths the step changed since its start commit (untracked files included).
pub(super) async fn changed_paths(shared: &RunnerShared, meta: &RunMeta) -> Result<Vec<String>, String> {
    let Some(base_sha) = meta.base_sha.as_deref() else { return Ok(Vec::new()) };
    let scratch = shared.settings.tmp_dir.join(format!("{}.scope.index", meta.run_id));
    worktree::diff(&meta.worktree, base_sha, &scratch).await.map(|diff| diff.files).map_err(|error| error.to_string())
}

/// Writes the run's checkpoints: how many, and how many files the step changed.
pub(super) async fn write_checkpoints(
    shared: &RunnerShared,
    dir: &RunDir,
    meta: &RunMeta,
    state: &RunState,
) -> Result<(usize, usize), String> {
    let outcome = outcome_of(state);
    let mut diff = None;
    if let Some(base_sha) = meta.base_sha.as_deref() {
        let scratch = shared.settings.tmp_dir.join(format!("{}.index", meta.run_id));
        diff = Some(match worktree::diff(&meta.worktree, base_sha, &scratch).await {
            Ok(diff) => diff,
            Err(error) => worktree::Diff { patch: format!("# the diff could not be taken: {error}\n"), files: Vec::new() },
        });
    }
    let duration_ms = match (state.started_at_ms, state.exited_at_ms) {
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
        stdout_bytes: file_len(&dir.stdout_log()),
        stderr_bytes: file_len(&dir.stderr_log()),
        step_kind: meta.step_kind.as_str(),
        attempt: meta.attempt,
    });
    let mut list = vec![(CheckpointType::Summary, CheckpointFormat::Json, serde_json::to_string_pretty(&summary).unwrap_or_default())];
    if let Some(diff) = diff {
        let whole = dir.artifacts().join("git-diff.patch");
        let fitted = checkpoints::fit(&diff.patch, "artifacts/git-diff.patch");
        if fitted.len() != diff.patch.len() {
            let _ = super::run_dir::write_atomic(&whole, diff.patch.as_bytes());
        }
        list.push((CheckpointType::GitDiff, CheckpointFormat::Patch, fitted));
    }
    if let (Some(base_commit), Some(start), true) = (meta.base_commit.as_deref(), meta.base_sha.as_deref(), state.committed) {
        match worktree::branch_diff(&meta.worktree, base_commit, start).await {
            Ok(Some(patch)) => {
                list.push((CheckpointType::BranchDiff, CheckpointFormat::Patch, checkpoints::fit(&patch, "the branch itself")))
            }
            Ok(None) => {}
            Err(error) => {
                dir.event(crate::clock::Now::read().wall_ms, "branch_diff_failed", serde_json::json!({"error": error.to_string()}))
            }
        }
    }
    let (stdout_tail, stderr_tail) = (tail(&dir.stdout_log(), TAIL_BYTES), tail(&dir.stderr_log(), TAIL_BYTES));
    list.push((CheckpointType::LogTail, CheckpointFormat::Text, checkpoints::log_tail(&stdout_tail, &stderr_tail)));
    if meta.step_kind == StepKind::Test {
        let budget = (checkpoints::CONTENT_BUDGET / 2) as u64;
        let text = checkpoints::test_output(
            meta.shell_command.as_deref().unwrap_or(""),
            &tail(&dir.stdout_log(), budget),
            &tail(&dir.stderr_log(), budget),
            &outcome.message,
        );
        list.push((CheckpointType::TestOutput, CheckpointFormat::Text, checkpoints::fit(&text, "stdout.log and stderr.log")));
    }
    let files = checkpoints::write_all(&dir.checkpoints(), &list).map_err(|error| error.to_string())?;
    Ok((files.len(), files_changed.len()))
}

/// Puts the checkpoints not yet accepted and the outcome into the outbox.
pub(super) async fn queue_report(shared: &RunnerShared, dir: &RunDir, meta: &RunMeta, state: &RunState) {
    for file in checkpoints::list(&dir.checkpoints()) {
        if file.seq <= state.checkpoints_uploaded {
            continue;
        }
        let content = std::fs::read(&file.path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
        shared.outbox.borrow_mut().put_checkpoint(RunCheckpoint {
            step_id: meta.step_id.clone(),
            run_id: meta.run_id.clone(),
            seq: file.seq,
            checkpoint_type: file.checkpoint_type,
            format: file.format,
            size: content.len() as i64,
            sha256: checkpoints::sha256_hex(content.as_bytes()),
            content,
        });
    }
    let outcome = outcome_of(state);
    let task_result = delivery::task_result(meta, dir, &shared.settings.host, outcome.phase == RunPhase::Succeeded).await;
    let (step_id, run_id) = (meta.step_id.clone(), meta.run_id.clone());
    let report = dir.read_agent_report_text().and_then(|text| agent_report(&text));
    if outcome.phase == RunPhase::Succeeded {
        let summary: Value = std::fs::read(dir.checkpoints().join("0001-summary.json"))
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
            report,
            usage: dir.read_usage(),
        });
    } else {
        let mut error = outcome.message.clone();
        if state.stop.is_some_and(|stop| stop.reason == StopReason::Stalled) {
            // What the step said last is the best clue to what it was waiting for.
            let last = last_line(&tail(&dir.stdout_log(), 4_096)).or_else(|| last_line(&tail(&dir.stderr_log(), 4_096)));
            error.push_str(&format!("; last output: {}", last.unwrap_or_else(|| "(none)".into())));
        }
        // A sandboxed step that hit the wall: the path, not a mystery.
        if dir.root.join("sandbox.json").exists() || dir.root.join("sandbox.sb").exists() {
            let output = [tail(&dir.stderr_log(), 16_384), tail(&dir.stdout_log(), 16_384)].concat();
            if let Some(path) = crate::sandbox::refusal::first_refused_path(&String::from_utf8_lossy(&output)) {
                error.push_str(&format!("; {}", crate::sandbox::refusal::note(&path)));
            }
        }
        shared.outbox.borrow_mut().put_failure(RunFailure {
            step_id,
            run_id,
            error,
            exit_code: outcome.exit_code,
            blocked: outcome.phase == RunPhase::Blocked,
            needs_human: outcome.needs_human,
            timed_out: outcome.phase == RunPhase::TimedOut,
            task_result,
            report,
            quota: state.limit.as_ref().map(|limit| QuotaHit {
                account: shared.settings.options.agent_account.clone(),
                resets_at: limit.resets_at,
                message: limit.message.clone(),
            }),
            usage: dir.read_usage(),
        });
    }
}

/// The last line of `bytes` with something on it, at most 200 characters.
fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines().rev().map(str::trim).find(|line| !line.is_empty()).map(|line| line.chars().take(200).collect())
}

/// The card's sections a coding agent wrote in its report file: the text under headings
/// (any level) named `result`, `risks` and `next_handoff` (or `next handoff`), any case;
/// `None` when it wrote none of them.
pub fn agent_report(markdown: &str) -> Option<AgentReport> {
    let mut report = AgentReport::default();
    let mut current: Option<&str> = None;
    let mut sections: Vec<(&str, String)> = Vec::new();
    for line in markdown.lines() {
        if let Some(heading) = line.trim_start().strip_prefix('#') {
            let name = heading.trim_start_matches('#').trim().to_ascii_lowercase().replace([' ', '-'], "_");
            current = ["result", "risks", "next_handoff"].into_iter().find(|known| *known == name);
            if let Some(name) = current {
                sections.push((name, String::new()));
            }
            continue;
        }
        if let (Some(_), Some((_, text))) = (current, sections.last_mut()) {
            text.push_str(line);
            text.push('\n');
        }
    }
    for (name, text) in sections {
        let text = Some(text.trim().to_string()).filter(|text| !text.is_empty());
        match name {
            "result" => report.result = text,
            "risks" => report.risks = text,
            _ => report.next_handoff = text,
        }
    }
    (report != AgentReport::default()).then_some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_report_is_read_by_its_headings() {
        let text = "# T-013\n\n## Result\nFixed the adder.\nTests pass.\n\n## Risks\n- none known\n\n### next handoff\nreview it\n## other\nignored\n";
        let report = agent_report(text).unwrap();
        assert_eq!(report.result.as_deref(), Some("Fixed the adder.\nTests pass."));
        assert_eq!(report.risks.as_deref(), Some("- none known"));
        assert_eq!(report.next_handoff.as_deref(), Some("review it"));
        assert_eq!(agent_report("just some words\n"), None);
    }
}
