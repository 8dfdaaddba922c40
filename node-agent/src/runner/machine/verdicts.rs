//! What the control plane said about the run, through the outbox: a stop (canceled, or the
//! run is stale), the verdict on the batch of output in flight and on the checkpoints, and the
//! verdict on the report.

use serde_json::json;
use shared::status::{StepStatus, Verdict};
use shared::wire::ItemVerdict;

use super::{RunAction, RunMachine};
use crate::clock::Now;
use crate::runner::ladder;
use crate::runner::outbox::RunNews;
use crate::runner::run_dir::{RunPhase, StopReason};

impl RunMachine {
    /// What the control plane said about the run (the verdicts of a sync).
    pub fn handle_news(&mut self, now: Now, news: RunNews) {
        if let Some(beat) = news.beat {
            // Reaped or superseded (stale): the control plane will not take this run's result.
            let stop = match (beat.verdict, beat.canceled) {
                (Verdict::Stale, _) => Some((StopReason::Lost, "lost")),
                (_, true) => Some((StopReason::Canceled, "canceled")),
                _ => None,
            };
            let running = self.state.status == RunPhase::Running && self.state.stop.is_none();
            if let (Some((reason, name)), true) = (stop, running) {
                let detail = beat.message.unwrap_or_default();
                self.log(format!("run {}: stopping the step ({name}) {detail}", self.meta.run_id));
                self.state.stop = Some(ladder::request_stop(None, reason, now.wall_ms));
                self.event(now, "stop_requested", json!({"reason": name, "detail": detail}));
                self.save_state(now);
            }
        }
        if let Some(logs) = news.logs {
            self.logs_in_outbox = false;
            if logs.verdict == Verdict::Accepted {
                self.cursor.in_flight.clear();
                self.actions.push_back(RunAction::SaveCursor);
                self.note_upload(now);
            } else {
                let detail = logs.message.unwrap_or_default();
                self.log(format!("run {}: the control plane refuses this run's logs; shipping stops: {detail}", self.meta.run_id));
                self.ship_abandoned = true;
            }
            // The next batch, if there is one, at once.
            self.next_ship = now.at;
        }
        let mut checkpoints_settled = false;
        for (seq, verdict) in news.checkpoints {
            match verdict.verdict {
                Verdict::Accepted => self.note_upload(now),
                _ => self.log(format!(
                    "run {}: checkpoint {seq} not taken ({}); kept locally",
                    self.meta.run_id,
                    verdict.message.unwrap_or_default()
                )),
            }
            self.state.checkpoints_uploaded = self.state.checkpoints_uploaded.max(seq);
            checkpoints_settled = true;
        }
        if checkpoints_settled {
            self.save_state(now);
        }
        if let Some(verdict) = news.report {
            self.settle_report(now, &verdict);
        }
        self.step(now);
    }

    /// The verdict on the run's completion or failure: the run's phase as the control plane
    /// counted it (a completion of a canceled step is a canceled run; a refused report leaves
    /// the run lost).
    fn settle_report(&mut self, now: Now, verdict: &ItemVerdict) {
        let mut outcome = self.outcome_or_failed();
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
        self.record_reported(now, outcome);
    }
}
