//! The run's output on its way to the control plane: a shipping turn every `ship_interval`
//! while output grows (every few seconds while the step is quiet), one batch in flight at a
//! time, the next one as soon as the last is accepted. The files are the spool (see
//! [`crate::runner::shipper`]); the machine keeps the cursor and decides, the driver reads.

use serde_json::json;
use shared::status::LogStream;

use super::{Awaiting, RunAction, RunMachine};
use crate::clock::Now;
use crate::runner::run_dir::RunPhase;
use crate::runner::shipper::ChunkRange;

/// Output quiet this long counts as a pause: a trailing partial line is shipped.
pub const QUIET_MS: i64 = 2_000;
/// How often a run whose log files have not grown looks at them again: supervising a quiet
/// step costs about what idling does, and output that starts later waits at most this long.
pub const QUIET_SHIP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

const STREAMS: [LogStream; 3] = [LogStream::Stdout, LogStream::Stderr, LogStream::Worker];

impl RunMachine {
    /// One shipping turn: take the next batch when none is in flight, and keep the batch in
    /// flight in the outbox until its verdict comes back.
    pub(super) fn ship(&mut self, now: Now) {
        self.next_ship = now.at + self.timing.ship_interval;
        if !self.cursor.in_flight.is_empty() {
            self.send_in_flight();
            return;
        }
        let grown = STREAMS.into_iter().any(|stream| self.sizes.of(stream) > self.cursor.offset(stream));
        if !grown {
            // Quiet for a while: look again at the slower pace. A step that has just started
            // or just printed is looked at every `ship_interval`, so its first lines go soon.
            let quiet_for = now.wall_ms - self.last_output_at_ms;
            if quiet_for >= QUIET_SHIP_INTERVAL.as_millis() as i64 {
                self.next_ship = now.at + QUIET_SHIP_INTERVAL.max(self.timing.ship_interval);
            }
            self.actions.push_back(RunAction::MoreOutput(false));
            return;
        }
        let flush = self.state.status != RunPhase::Running || now.wall_ms - self.last_output_at_ms >= QUIET_MS;
        let allowance = self.timing.log_ship_limit_bytes.saturating_sub(self.cursor.output_bytes);
        self.awaiting = Some(Awaiting::Output);
        self.actions.push_back(RunAction::TakeOutput { flush, allowance });
    }

    /// The batch planned by [`RunAction::TakeOutput`] (empty when there was nothing to take).
    pub fn handle_output_taken(&mut self, now: Now, batch: Vec<ChunkRange>, limited: bool) {
        self.awaiting = None;
        self.take_output(now, batch, limited);
        self.step(now);
    }

    fn take_output(&mut self, now: Now, batch: Vec<ChunkRange>, limited: bool) {
        if batch.is_empty() {
            return;
        }
        let newly_limited = limited && !self.cursor.limit_reached;
        self.cursor.take(batch, limited);
        // Recorded before sending: after a crash the same ranges go again with the same seqs.
        self.actions.push_back(RunAction::SaveCursor);
        if newly_limited {
            let detail = json!({
                "limit_bytes": self.timing.log_ship_limit_bytes,
                "note": "stdout and stderr beyond this are kept only in the run directory",
            });
            self.event(now, "log_ship_limit_reached", detail);
        }
        self.send_in_flight();
    }

    fn send_in_flight(&mut self) {
        let more = STREAMS.into_iter().any(|stream| {
            let limited = stream != LogStream::Worker && self.cursor.limit_reached;
            !limited && self.sizes.of(stream) > self.cursor.offset(stream)
        });
        self.actions.push_back(RunAction::MoreOutput(more));
        if !self.logs_in_outbox {
            self.logs_in_outbox = true;
            self.actions.push_back(RunAction::SendOutput);
        }
    }

    /// The log files no longer hold the batch in flight: shipping stops (the run still
    /// reports its outcome).
    pub fn handle_output_unreadable(&mut self, now: Now, error: &str) {
        self.log(format!("run {}: the log files no longer hold the batch in flight ({error}); shipping stops", self.meta.run_id));
        self.logs_in_outbox = false;
        self.ship_abandoned = true;
        self.step(now);
    }

    /// Whether every byte there is to ship has been taken into batches (the last may still be
    /// in flight: it goes in the same sync as the report, or before it).
    pub(super) fn taken_to_end(&self) -> bool {
        if self.ship_abandoned {
            return true;
        }
        let output_done = self.cursor.limit_reached || (self.cursor.stdout >= self.sizes.stdout && self.cursor.stderr >= self.sizes.stderr);
        output_done && !self.worker_size_stale && self.cursor.worker >= self.sizes.worker
    }

    /// Whether every byte there is to ship has been acknowledged.
    pub(super) fn caught_up(&self) -> bool {
        self.ship_abandoned || (self.cursor.in_flight.is_empty() && self.taken_to_end())
    }
}
