//! The step's process: its end, the stop ladder (timeout, cancel, lost, stalled) that ends
//! it, and the watch for a stall.

use serde_json::json;

use super::{RunAction, RunMachine};
use crate::clock::Now;
use crate::runner::ladder;
use crate::runner::outcome::{self, ProcessEnd};
use crate::runner::run_dir::{Outcome, RunPhase, StopReason};
use crate::runner::stall::{self, Activity};

impl RunMachine {
    /// The step's process has ended.
    pub fn handle_exit(&mut self, now: Now, end: ProcessEnd) {
        if self.state.status != RunPhase::Running {
            return;
        }
        if self.state.pid.is_some() && !self.process_gone {
            // Whatever the step left running in its group goes with it.
            self.actions.push_back(RunAction::KillLeftovers);
        }
        self.process_gone = true;
        // The last output goes now, not at the quiet pace.
        self.next_ship = now.at;
        let decided = outcome::decide(
            self.state.stop,
            &end,
            outcome::Limits { timeout_sec: self.meta.timeout_sec, stall_after_sec: self.meta.stall_after_sec },
        );
        let detail = json!({
            "exit_code": end.recorded_exit.or(end.wrapper_exit),
            "signal": end.wrapper_signal,
            "outcome": decided.phase.as_str(),
            "message": decided.message,
            "stdout_bytes": self.sizes.stdout,
            "stderr_bytes": self.sizes.stderr,
        });
        self.event(now, "worker_exited", detail);
        self.state.status = RunPhase::Exited;
        self.state.exited_at_ms = Some(now.wall_ms);
        if decided.phase == RunPhase::Failed {
            self.state.limit = end.limit;
        }
        self.state.outcome = Some(decided);
        self.save_state(now);
        // The host has room again, and the last output and the outcome should go soon.
        self.actions.push_back(RunAction::Wake);
        self.step(now);
    }

    /// The step's CPU time and worktree as the driver saw them ([`RunAction::SampleActivity`]).
    pub fn handle_activity(&mut self, now: Now, activity: Activity) {
        self.sampling = false;
        self.stall.sample(now.wall_ms, activity);
        if let Some(after) = self.meta.stall_after_sec {
            self.next_sample_ms = now.wall_ms + stall::sample_interval_ms(after);
        }
        self.step(now);
    }

    /// When the stall watch next has something to do: a look at the activity, or the stall.
    pub(super) fn stall_wake_ms(&self) -> Option<i64> {
        let after = self.meta.stall_after_sec?;
        if self.state.status != RunPhase::Running || self.state.stop.is_some() || self.process_gone {
            return None;
        }
        let stall_at = self.stall.stalls_at_ms(after);
        Some(if self.sampling { stall_at } else { stall_at.min(self.next_sample_ms) })
    }

    /// A step held to `stall_after_sec` that showed no progress for that long is stopped with
    /// the ladder, as `stalled`; until then its activity is looked at a few times per window.
    pub(super) fn watch_for_stall(&mut self, now: Now) {
        let Some(after) = self.meta.stall_after_sec else { return };
        if self.state.stop.is_some() || self.process_gone {
            return;
        }
        if now.wall_ms >= self.stall.stalls_at_ms(after) {
            self.state.stop = Some(ladder::request_stop(None, StopReason::Stalled, now.wall_ms));
            let quiet_ms = now.wall_ms - self.stall.last_progress_ms;
            self.event(now, "stop_requested", json!({"reason": StopReason::Stalled, "quiet_ms": quiet_ms}));
            self.save_state(now);
        } else if !self.sampling && now.wall_ms >= self.next_sample_ms {
            self.sampling = true;
            self.actions.push_back(RunAction::SampleActivity);
        }
    }

    pub(super) fn climb_ladder(&mut self, now: Now) {
        let grace = self.timing.kill_grace.as_millis() as i64;
        let rung = ladder::advance(self.state.deadline_at_ms, self.state.stop, now.wall_ms, grace);
        self.ladder_wake_ms = rung.wake_at_ms;
        if rung.stop != self.state.stop {
            if let (None, Some(stop)) = (self.state.stop, rung.stop) {
                self.event(now, "stop_requested", json!({"reason": stop.reason}));
            }
            self.state.stop = rung.stop;
            // Recorded before the signal: an agent restarted right after knows why the group died.
            self.save_state(now);
        }
        if let (Some(signal), Some(_), false) = (rung.send, self.state.pid, self.process_gone) {
            self.actions.push_back(RunAction::Signal(signal));
        }
    }

    pub(super) fn end_without_process(&mut self, now: Now, phase: RunPhase, message: String) {
        self.event(now, "run_not_started", json!({"reason": message}));
        self.state.status = RunPhase::Exited;
        self.state.exited_at_ms = Some(now.wall_ms);
        self.state.outcome = Some(Outcome { phase, exit_code: None, message, needs_human: false });
        self.process_gone = true;
        self.save_state(now);
    }
}
