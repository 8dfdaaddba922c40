//! The step's process: its end, and the stop ladder (timeout, cancel, lost) that ends it.

use serde_json::json;

use super::{RunAction, RunMachine};
use crate::clock::Now;
use crate::runner::ladder;
use crate::runner::outcome::{self, ProcessEnd};
use crate::runner::run_dir::{Outcome, RunPhase};

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
        let decided = outcome::decide(self.state.stop, &end, self.meta.timeout_sec);
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
        self.state.outcome = Some(decided);
        self.save_state(now);
        // The host has room again, and the last output and the outcome should go soon.
        self.actions.push_back(RunAction::Wake);
        self.step(now);
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
