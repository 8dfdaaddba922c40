//! The startup checklist (`register-controller` … `start-scheduler`), in the order of
//! [`crate::checklist::STARTUP_CHECKLIST`].

use std::time::{Duration, Instant};

use super::lease::LeaseStatus;
use super::{clock_now, ChecklistEntry, Conductor, SyncKind};
use crate::checklist::STARTUP_CHECKLIST;
use crate::client::ControlPlane;
use crate::log::log;

/// The runs directory's part of the startup checklist (`load-runs`, `reconcile-runs`), done
/// by the runner; each answers a checklist status and a detail.
pub trait StartupRuns {
    fn load_runs(&mut self) -> (&'static str, String);
    fn reconcile_runs(&mut self) -> (&'static str, String);
}

/// For a conductor without a runner (tests, `--run-once`): counts unfinished runs, settles none.
pub struct CountRuns(pub std::path::PathBuf, pub usize);

impl StartupRuns for CountRuns {
    fn load_runs(&mut self) -> (&'static str, String) {
        self.1 = crate::runner::unfinished_runs(&self.0).len();
        ("done", format!("{} unfinished run(s) under {}", self.1, self.0.display()))
    }
    fn reconcile_runs(&mut self) -> (&'static str, String) {
        ("skipped", format!("{} run(s) left for a running agent to adopt or settle", self.1))
    }
}

impl<P: ControlPlane> Conductor<P> {
    /// Records the next checklist step; `STARTUP_CHECKLIST` is the one list of steps and
    /// their order, and each call must be the step that list names next.
    fn check(&mut self, id: &'static str, status: &'static str, detail: String) {
        assert_eq!(STARTUP_CHECKLIST.get(self.checklist.len()).map(|item| item.id), Some(id), "checklist out of order");
        log!("checklist {id}: {status} ({detail})");
        self.checklist.push(ChecklistEntry { id, status, detail });
    }

    /// The startup checklist, in order. The first syncs register the controller and try the
    /// lease without asking for steps: the runner takes steps only after it has reconciled the
    /// runs it found. `start-scheduler` is done only by a leader.
    pub async fn startup(&mut self, now: Instant, run_once: bool, runs: &mut dyn StartupRuns) {
        // One attempt per allowed failure when the control plane does not answer, so a single
        // cycle can tell "unreachable" (degraded) from one lost request.
        let mut answered = false;
        for attempt in 0..self.config.renew_failure_threshold {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if self.sync_once(clock_now().max(now), SyncKind::Startup).await {
                answered = true;
                break;
            }
        }
        self.check(
            "register-controller",
            if answered { "done" } else { "failed" },
            match &self.sync.last_error {
                Some(error) if !answered => error.clone(),
                _ => format!("{} as {} on {}", self.config.node_id, self.config.role, self.config.host),
            },
        );
        let lease_detail = match self.lease.status(clock_now()) {
            LeaseStatus::Leader => format!("leader in term {}", self.lease.term),
            LeaseStatus::Standby => match &self.lease.holder_id {
                Some(holder) => format!("standby; the leader is {holder} in term {}", self.lease.term),
                None => format!("standby; no leader yet (term {})", self.lease.term),
            },
            LeaseStatus::Degraded => "degraded: the control plane did not answer".to_string(),
        };
        self.check("acquire-lease", if answered { "done" } else { "failed" }, lease_detail);
        let (status, detail) = runs.load_runs();
        self.check("load-runs", status, detail);
        let (status, detail) = runs.reconcile_runs();
        self.check("reconcile-runs", status, detail);
        self.check(
            "start-heartbeat-loop",
            if run_once { "skipped" } else { "done" },
            format!(
                "one agents.sync at the control plane's pace (at most {} ms apart; retry after {} ms)",
                self.config.heartbeat_interval.as_millis(),
                self.config.lease_renew_interval.as_millis()
            ),
        );
        let now = clock_now();
        match self.lease.leading_term(now) {
            Some(term) => {
                self.check("start-scheduler", "done", format!("leader in term {term}"));
                if run_once {
                    // One leader pass: reap and claim, then send the plans of what was claimed.
                    self.sync_once(clock_now(), SyncKind::Startup).await;
                    if !self.pending_plans.is_empty() {
                        self.sync_once(clock_now(), SyncKind::Startup).await;
                    }
                }
            }
            None => self.check("start-scheduler", "skipped", "not the leader: a standby never schedules".into()),
        }
        self.log_transition(clock_now());
    }
}
