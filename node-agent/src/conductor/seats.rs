//! What the conductor needs of the runner on its host, each sync: its room for steps and what
//! its runs have to report; and where granted steps and verdicts go.

use shared::wire::{AgentSyncResponse, ClaimedStep};

use crate::runner::outbox::RunReports;

/// What the runner on this host offers each sync: its room for steps, what its runs have to
/// report; and where granted steps and verdicts go.
pub trait Seats {
    fn room(&self) -> Room;
    fn start(&self, step: ClaimedStep);
    /// The run items for this sync (they stay with the runner until settled).
    fn reports(&self) -> RunReports;
    /// The verdicts on what `sent` carried.
    fn settle(&self, sent: &RunReports, answer: &AgentSyncResponse);
    /// Runs are still going or settling.
    fn busy(&self) -> bool;
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Room {
    /// Steps the runner can start now; 0 asks for none.
    pub capacity: i64,
    pub worker_kinds: Vec<String>,
    /// Free disk is below the minimum: ask for nothing, and say so.
    pub disk_low: bool,
    pub step_heartbeat_ttl_sec: Option<i64>,
    /// The coding agent's account: no agent step is granted while it is parked (SPEC §13).
    pub account: Option<String>,
    /// The coding CLI and its version, as probed at startup (SPEC §16).
    pub agent_cli: Option<String>,
    /// The sandbox as the startup proof found it (SPEC §19).
    pub sandbox: Option<String>,
}

/// No runner (tests, `--run-once`): no room, nothing started.
pub struct NoSeats;

impl Seats for NoSeats {
    fn room(&self) -> Room {
        Room::default()
    }
    fn start(&self, _step: ClaimedStep) {}
    fn reports(&self) -> RunReports {
        RunReports::default()
    }
    fn settle(&self, _sent: &RunReports, _answer: &AgentSyncResponse) {}
    fn busy(&self) -> bool {
        false
    }
}
