//! After the process: the commit of the step's changes, the checkpoints, the report (only
//! with, or after, the last batch of output), the verdict on it, and the terminal state once
//! `worker.log` has been shipped to its end.

use super::{Awaiting, RunAction, RunMachine};
use crate::clock::Now;
use crate::runner::run_dir::{Outcome, RunPhase};
use serde_json::json;
use shared::status::StepKind;

/// The error of an agent step that exited 0 but did nothing (SPEC §13).
pub const NO_CHANGE_MESSAGE: &str =
    "no_change: the coding agent exited 0 but changed nothing in the worktree and wrote no report (constraints.allow_no_change: true accepts that)";

impl RunMachine {
    pub(super) fn outcome_or_failed(&self) -> Outcome {
        self.state.outcome.clone().unwrap_or(Outcome {
            phase: RunPhase::Failed,
            exit_code: None,
            message: "no outcome recorded".into(),
            needs_human: false,
        })
    }

    /// The next step of the ending, if it can be taken now.
    pub(super) fn finish(&mut self, now: Now) {
        if !self.state.committed {
            let succeeded = self.state.outcome.as_ref().is_some_and(|outcome| outcome.phase == RunPhase::Succeeded);
            // An agent step's changes are held to the task's write scope before anything of
            // them is committed.
            if succeeded && self.meta.step_kind == StepKind::Agent && !self.meta.write_scope.is_empty() && !self.scope_checked {
                self.awaiting = Some(Awaiting::Scope);
                self.actions.push_back(RunAction::CheckScope);
                return;
            }
            if succeeded && self.meta.step_kind.commits() && self.meta.base_sha.is_some() {
                self.awaiting = Some(Awaiting::Commit);
                self.actions.push_back(RunAction::Commit);
                return;
            }
            self.state.committed = true;
            self.save_state(now);
        }
        if self.state.last_checkpoint_seq == 0 && !self.checkpoints_tried {
            self.awaiting = Some(Awaiting::Checkpoints);
            self.actions.push_back(RunAction::WriteCheckpoints);
            return;
        }
        if self.state.reported_at_ms.is_none() {
            // Output first: the report goes only with (or after) the last batch of output, so
            // a task that shows as finished has its logs.
            if self.report_queued || !self.taken_to_end() {
                return;
            }
            self.report_queued = true;
            let outcome = self.outcome_or_failed();
            if outcome.phase == RunPhase::Lost {
                // A lost run has nothing to report: the control plane counts it no more.
                self.record_reported(now, outcome);
            } else {
                self.awaiting = Some(Awaiting::Report);
                self.actions.push_back(RunAction::QueueReport);
            }
            return;
        }
        // The terminal event is in worker.log: ship it before closing.
        if !self.caught_up() {
            return;
        }
        self.state.status = self.state.outcome.as_ref().map(|outcome| outcome.phase).unwrap_or(RunPhase::Failed);
        self.save_state(now);
    }

    /// The paths the step changed, asked for by [`RunAction::CheckScope`]. Any outside the
    /// write scope ends the step `blocked`, needing a person, and nothing is committed; a
    /// change that cannot be listed cannot be checked, and blocks too.
    pub fn handle_scope_checked(&mut self, now: Now, changed: Result<Vec<String>, String>) {
        self.awaiting = None;
        self.scope_checked = true;
        let outside: Vec<String> = match &changed {
            Ok(changed) => shared::scope::outside(&self.meta.write_scope, changed).into_iter().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        };
        let refusal = match changed {
            Err(error) => Some(format!("the changes could not be checked against the write scope: {error}")),
            Ok(_) if !outside.is_empty() => Some(format!(
                "the agent changed files outside the task's write_scope ({}): {}",
                self.meta.write_scope.join(", "),
                outside.join(", ")
            )),
            Ok(_) => None,
        };
        if let (Some(message), Some(outcome)) = (refusal, self.state.outcome.as_mut()) {
            outcome.phase = RunPhase::Blocked;
            outcome.needs_human = true;
            outcome.message = message;
            self.event(now, "outside_write_scope", json!({"paths": outside, "write_scope": self.meta.write_scope}));
            self.save_state(now);
        }
        self.step(now);
    }

    /// The commit asked for by [`RunAction::Commit`]: its id (none when nothing changed), or
    /// why it failed, and whether the coding agent wrote a report. A commit that fails turns
    /// the success into a failure: the branch must hold what the task reports. A coding agent
    /// that exited 0 having changed nothing and written no report did nothing: `no_change`,
    /// unless the task allows it.
    pub fn handle_committed(&mut self, now: Now, commit: Result<Option<String>, String>, agent_reported: bool) {
        self.awaiting = None;
        match commit {
            Ok(None) if self.meta.step_kind == StepKind::Agent && !self.meta.allow_no_change && !agent_reported => {
                if let Some(outcome) = self.state.outcome.as_mut() {
                    outcome.phase = RunPhase::Failed;
                    outcome.message = NO_CHANGE_MESSAGE.into();
                }
                self.event(now, "no_change", json!({"branch": self.meta.branch_name}));
            }
            Ok(commit) => self.event(now, "committed", json!({"commit": commit, "branch": self.meta.branch_name})),
            Err(error) => {
                if let Some(outcome) = self.state.outcome.as_mut() {
                    outcome.phase = RunPhase::Failed;
                    outcome.message = format!("the step succeeded but its changes could not be committed: {error}");
                }
                self.event(now, "commit_failed", json!({"error": error}));
            }
        }
        self.state.committed = true;
        self.save_state(now);
        self.step(now);
    }

    /// The checkpoints asked for by [`RunAction::WriteCheckpoints`]: how many were written
    /// and how many files the step changed, or why none could be.
    pub fn handle_checkpoints_written(&mut self, now: Now, written: Result<(usize, usize), String>) {
        self.awaiting = None;
        self.checkpoints_tried = true;
        match written {
            Ok((count, files_changed)) => {
                self.state.last_checkpoint_seq = count as i64;
                self.event(now, "checkpoints_written", json!({"count": count, "files_changed": files_changed}));
                self.save_state(now);
            }
            Err(error) => self.log(format!("run {}: writing checkpoints: {error}", self.meta.run_id)),
        }
        self.step(now);
    }

    /// The checkpoints and the outcome are in the outbox: the conductor should sync.
    pub fn handle_report_queued(&mut self, now: Now) {
        self.awaiting = None;
        self.actions.push_back(RunAction::Wake);
        self.step(now);
    }

    pub(super) fn record_reported(&mut self, now: Now, outcome: Outcome) {
        let name = format!("run_{}", outcome.phase.as_str());
        self.event(now, &name, json!({"exit_code": outcome.exit_code, "message": outcome.message}));
        self.state.outcome = Some(outcome);
        self.state.reported_at_ms = Some(now.wall_ms);
        self.save_state(now);
        // The terminal event is in worker.log now: ship it at once.
        self.next_ship = now.at;
    }
}
