//! The conductor: one `agents.sync` per tick carries this node's heartbeat, its lease wish, the
//! room its runner has and, while it leads, its plans; the answer feeds the lease machine, the
//! planner and the runner, and says when to sync next (SPEC §14).
//!
//! - [`lease`]: the pure lease state machine (local deadline, degraded after failures).
//! - [`planner`]: the built-in planner (pure).
//! - [`seats`]: what the conductor needs of the runner (its room, its runs' reports).
//! - [`startup`]: the startup checklist.
//! - [`snapshot`]: what the status server and `--run-once --json` show of the conductor.
//! - this file: the driver. It only sleeps, calls the control plane and feeds the answers to
//!   the machines; every decision is theirs, and the pace is the control plane's.

pub mod lease;
pub mod planner;
mod seats;
mod snapshot;
mod startup;

#[cfg(test)]
mod driver_tests;
#[cfg(test)]
pub mod memory_plane;

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use shared::status::{LeaderWrites, LeaseWish, SystemMode, TaskStatus, Verdict};
use shared::wire::{AgentSyncRequest, AgentSyncResponse, LeaseIntent, TaskPlan};
use shared::ErrorCode;

use crate::client::{ClientError, ControlPlane};
use crate::config::AgentConfig;
use crate::log::log;
use crate::runner::outbox::RunReports;
use lease::{LeaseMachine, LeaseStatus, LeaseTiming};
pub use seats::{NoSeats, Room, Seats};
pub use startup::{CountRuns, StartupRuns};

/// What a sync asks and carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncKind {
    /// Registration and the lease before the runs are reconciled: no room, no reports.
    Startup,
    /// Every tick: the lease, the room, the runs' reports, the plans.
    Tick,
    /// After the lease was given up on shutdown: the runs' reports only, while they settle.
    Draining,
}

/// A sync on its way: what was sent, and when, for [`Conductor::end_sync`].
pub(crate) struct SyncSent {
    sent_at: Instant,
    pub(crate) request: AgentSyncRequest,
    reports: RunReports,
}

/// The shortest pause between two syncs, whatever the control plane asks.
const MIN_SYNC_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Serialize)]
pub struct ChecklistEntry {
    pub id: &'static str,
    pub status: &'static str,
    pub detail: String,
}

#[derive(Debug, Default)]
struct SyncLoop {
    syncs: u64,
    last_ok: Option<Instant>,
    consecutive_failures: u32,
    last_error: Option<String>,
    /// The pace the control plane asked for last.
    next_sync_ms: Option<i64>,
    /// Statements the last sync took in the control plane's batch.
    statements: usize,
}

#[derive(Debug, Default)]
struct SchedulerStats {
    claimed: u64,
    planned: u64,
    reaped: u64,
    granted: u64,
    last_error: Option<String>,
}

pub struct Conductor<P> {
    pub config: AgentConfig,
    plane: P,
    pub lease: LeaseMachine,
    sync: SyncLoop,
    scheduler: SchedulerStats,
    /// Plans of tasks this leader claimed, sent with the next sync until a verdict comes back.
    pending_plans: Vec<TaskPlan>,
    mode: Option<SystemMode>,
    /// Accounts parked by a usage limit, as the last sync said.
    parked_accounts: Vec<shared::wire::ParkedAccount>,
    checklist: Vec<ChecklistEntry>,
    /// The term this node last acted in as leader, to log transitions.
    logged_term: Option<i64>,
    /// When this agent started (unix seconds), reported with every sync; set by `main`.
    pub started_at: Option<i64>,
    pub seats: Box<dyn Seats>,
    /// The event feed for this host's notifier, while it leads (SPEC §13); set by `agent`.
    pub feed: Option<crate::notify::Feed>,
}

/// Now, from tokio's clock (see [`crate::clock`]).
pub use crate::clock::now as clock_now;

fn short(error: &ClientError) -> String {
    error.to_string().chars().take(300).collect()
}

impl<P: ControlPlane> Conductor<P> {
    pub fn new(config: AgentConfig, plane: P, now: Instant) -> Self {
        let timing = LeaseTiming {
            renew_interval: config.lease_renew_interval,
            ttl: Duration::from_secs(config.lease_ttl_sec as u64),
            failure_threshold: config.renew_failure_threshold,
        };
        Conductor {
            lease: LeaseMachine::new(timing, now),
            config,
            plane,
            sync: SyncLoop::default(),
            scheduler: SchedulerStats::default(),
            pending_plans: Vec::new(),
            mode: None,
            parked_accounts: Vec::new(),
            checklist: Vec::new(),
            logged_term: None,
            started_at: None,
            seats: Box::new(NoSeats),
            feed: None,
        }
    }

    /// Asks for a sync at once (a run ended: the host has room, and its task's next step may be
    /// waiting).
    pub fn sync_soon(&mut self) {
        self.lease.call_again_at(clock_now());
    }

    /// A sync carrying this node's facts, its lease wish, its room, its plans and its runs'
    /// reports.
    fn request(&self, status: &str, lease: LeaseIntent, room: Room, plans: Vec<TaskPlan>, reports: RunReports) -> AgentSyncRequest {
        // Only a leader's notifier asks for the feed.
        let (events_after, events_delivered) = match (&self.feed, lease.term) {
            (Some(feed), Some(_)) => feed.ask(),
            _ => (None, None),
        };
        AgentSyncRequest {
            events_after,
            events_delivered,
            node_id: Some(self.config.node_id.clone()),
            host: self.config.host.clone(),
            role: self.config.role,
            priority: self.config.priority,
            status: status.into(),
            version: Some(self.config.version.clone()),
            started_at: self.started_at,
            lease,
            capacity: room.capacity,
            worker_kinds: room.worker_kinds,
            disk_low: room.disk_low,
            account: room.account,
            agent_cli: room.agent_cli,
            sandbox: room.sandbox,
            heartbeat_ttl_sec: room.step_heartbeat_ttl_sec,
            runs: reports.runs,
            completions: reports.completions,
            failures: reports.failures,
            logs: reports.logs,
            checkpoints: reports.checkpoints,
            plans,
            more_output: reports.more_output,
            hold_ms: 0,
        }
    }

    /// One `agents.sync`; returns whether the control plane answered.
    async fn sync_once(&mut self, now: Instant, kind: SyncKind) -> bool {
        let sync = self.begin_sync(now, kind);
        let answer = self.plane.sync(&sync.request).await;
        self.end_sync(sync, answer)
    }

    /// The sans-IO half of a sync that goes out: the request, built from the lease machine,
    /// the room and the runs' reports at `now`. Exactly one [`Self::end_sync`] follows.
    pub(crate) fn begin_sync(&mut self, now: Instant, kind: SyncKind) -> SyncSent {
        let sent_at = self.lease.start_attempt(now);
        let term = self.lease.leading_term(now);
        let room = if kind == SyncKind::Tick { self.seats.room() } else { Room::default() };
        let reports = if kind == SyncKind::Startup { RunReports::default() } else { self.seats.reports() };
        let plans = if term.is_some() { self.pending_plans.clone() } else { Vec::new() };
        let wish = if kind == SyncKind::Draining { LeaseWish::Keep } else { LeaseWish::Acquire };
        let lease = LeaseIntent { wish, ttl_sec: self.config.lease_ttl_sec, preferred: self.config.preferred, term };
        let status = if kind == SyncKind::Draining { "stopping" } else { self.lease.status(now).as_str() };
        let mut request = self.request(status, lease, room, plans, reports.clone());
        // A standby with nothing else to do lets the control plane hold its answer until the
        // lease changes hands (within what its request timeout allows): a released lease is
        // taken within a second instead of at the next idle sync.
        let quiet = request.runs.is_empty() && request.completions.is_empty() && request.failures.is_empty() && !self.seats.busy();
        if kind == SyncKind::Tick && quiet && term.is_none() && self.lease.status(now) == LeaseStatus::Standby {
            // Never past this agent's own longest gap between syncs.
            request.hold_ms = (self.config.sync_timeout() * 3 / 4).min(self.config.heartbeat_interval).as_millis() as i64;
        }
        self.sync.syncs += 1;
        SyncSent { sent_at, request, reports }
    }

    /// The sans-IO half of a sync that came back (or did not): the answer feeds the lease
    /// machine, the planner and the runner. Returns whether the control plane answered.
    pub(crate) fn end_sync(&mut self, sync: SyncSent, answer: Result<AgentSyncResponse, ClientError>) -> bool {
        let SyncSent { sent_at, request, reports } = sync;
        match answer {
            Ok(answer) => {
                self.seats.settle(&reports, &answer);
                self.handle_answer(sent_at, &request, answer);
                true
            }
            Err(error) => {
                self.lease.handle_failure();
                self.sync.consecutive_failures += 1;
                self.sync.last_error = Some(short(&error));
                let hint = match error.code() {
                    Some(ErrorCode::UnknownToken | ErrorCode::MissingBearerToken | ErrorCode::Forbidden) => {
                        " (check --shared-token: the control plane does not accept it for this node)"
                    }
                    _ => "",
                };
                log!("sync failed ({} in a row): {}{hint}", self.sync.consecutive_failures, short(&error));
                self.log_transition(clock_now().max(sent_at));
                false
            }
        }
    }

    fn handle_answer(&mut self, sent_at: Instant, request: &AgentSyncRequest, answer: AgentSyncResponse) {
        self.lease.handle_answer(sent_at, &answer.lease);
        let now = clock_now().max(sent_at);
        self.sync.last_ok = Some(now);
        self.sync.consecutive_failures = 0;
        self.sync.last_error = None;
        self.sync.next_sync_ms = Some(answer.next_sync_ms);
        self.sync.statements = answer.statements;
        if self.mode != Some(answer.mode) {
            log!("mode is {}", answer.mode);
        }
        self.mode = Some(answer.mode);
        if let Some(feed) = self.feed.as_mut() {
            feed.take(answer.notified_through, &answer.events);
        }
        if self.parked_accounts != answer.parked_accounts {
            for parked in answer.parked_accounts.iter().filter(|parked| !self.parked_accounts.contains(parked)) {
                log!("account {} parked until {} by a usage limit: {}", parked.account, parked.parked_until, parked.message);
            }
            self.parked_accounts = answer.parked_accounts.clone();
        }
        let term = answer.lease.term;

        // Plans: a verdict for each sent; only a deferred one goes again.
        for (plan, verdict) in request.plans.iter().zip(&answer.plans) {
            match verdict.verdict {
                Verdict::Accepted => {
                    self.scheduler.planned += 1;
                    log!("leader write tasks.plan term={term} task={} steps={}", plan.task_id, plan.steps.len());
                }
                Verdict::Deferred => continue,
                Verdict::Refused | Verdict::Stale => {
                    let message = verdict.message.as_deref().unwrap_or("");
                    log!("leader write tasks.plan task={} refused: {message}", plan.task_id);
                    self.scheduler.last_error = Some(format!("tasks.plan: {message}"));
                }
            }
            self.pending_plans.retain(|pending| pending.task_id != plan.task_id);
        }
        if answer.leader_writes == LeaderWrites::Fenced {
            // The control plane knows better: plans made in another term will be refused, and
            // the next leader's reaping returns their tasks to the queue.
            if !self.pending_plans.is_empty() {
                log!("leader writes fenced: dropping {} plan(s) of an earlier term", self.pending_plans.len());
            }
            self.pending_plans.clear();
            self.scheduler.last_error = Some(format!("leader writes fenced: the lease is in term {term}"));
        }
        if let Some(reaped) = &answer.reaped {
            self.scheduler.reaped += reaped.reaped.len() as u64;
            if !reaped.reaped.is_empty() || !reaped.requeued_tasks.is_empty() || !reaped.restarted_tasks.is_empty() {
                log!(
                    "leader write steps.reap term={term} reaped={} requeued_tasks={} restarted_tasks={}",
                    reaped.reaped.len(),
                    reaped.requeued_tasks.len(),
                    reaped.restarted_tasks.len()
                );
            }
        }
        if !answer.claimed_tasks.is_empty() {
            self.scheduler.claimed += answer.claimed_tasks.len() as u64;
            log!("leader write tasks.claim term={term} claimed={}", answer.claimed_tasks.len());
            for task in answer.claimed_tasks.iter().filter(|task| task.status == TaskStatus::Planning) {
                self.pending_plans.retain(|pending| pending.task_id != task.task_id);
                self.pending_plans.push(planner::plan(task));
            }
        }
        for step in answer.granted {
            self.scheduler.granted += 1;
            self.seats.start(step);
        }
        // The control plane's pace, bounded by this agent's own: never longer than the
        // heartbeat interval, never a busy loop.
        let pace = Duration::from_millis(answer.next_sync_ms.max(0) as u64).clamp(MIN_SYNC_INTERVAL, self.config.heartbeat_interval);
        self.lease.call_again_at(now + pace);
        self.log_transition(now);
    }

    pub(crate) fn log_transition(&mut self, now: Instant) {
        let term = self.lease.leading_term(now);
        if term != self.logged_term {
            match (self.logged_term, term) {
                (_, Some(term)) => log!("lease: leading term={term}"),
                (Some(old), None) => {
                    let holder = self.lease.holder_id.as_deref().unwrap_or("nobody");
                    log!("lease: stopped leading term={old} status={} holder={holder}", self.lease.status(now).as_str())
                }
                (None, None) => {}
            }
            self.logged_term = term;
            // Say so at once: the leader's writes start with the next sync, and the controllers
            // list shows the new status.
            self.lease.call_again_at(now);
        }
    }

    /// The next instant after `now` a sync is due or the lease changes on its own.
    pub fn next_wake(&self, now: Instant) -> Instant {
        self.lease.poll_timeout(now)
    }

    /// Syncs if one is due at `now`.
    pub async fn tick(&mut self, now: Instant) {
        if self.lease.attempt_due(now) {
            self.sync_once(now, SyncKind::Tick).await;
        }
        self.log_transition(clock_now().max(now));
    }

    /// After the lease was given up: syncs the runs' reports while they settle, for at most the
    /// runner's shutdown grace (runs still going then are adopted by the next agent).
    pub async fn drain(&mut self, wake: std::rc::Rc<tokio::sync::Notify>) {
        let deadline = clock_now() + self.config.runner.shutdown_grace;
        while self.seats.busy() && clock_now() < deadline {
            if self.lease.attempt_due(clock_now()) {
                self.sync_once(clock_now(), SyncKind::Draining).await;
            }
            let wake_at = self.lease.poll_timeout(clock_now()).min(deadline);
            tokio::select! {
                _ = wake.notified() => self.sync_soon(),
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake_at)) => {}
            }
        }
    }

    /// Gives the lease up if this node holds it, so a standby takes over at once.
    pub async fn shutdown(&mut self) {
        let Some(release) = self.begin_release(clock_now()) else { return };
        let answer = self.plane.sync(&release.request).await;
        self.end_release(release, answer);
    }

    /// The sans-IO half of a release that goes out, if this node holds the lease. Leadership
    /// ends before it is sent: once the control plane frees the lease another node may take
    /// it, whenever this answer arrives.
    pub(crate) fn begin_release(&mut self, now: Instant) -> Option<SyncSent> {
        let term = self.lease.held_term()?;
        let lease = LeaseIntent {
            wish: LeaseWish::Release,
            ttl_sec: self.config.lease_ttl_sec,
            preferred: self.config.preferred,
            term: Some(term),
        };
        let request = self.request("stopping", lease, Room::default(), Vec::new(), RunReports::default());
        self.lease.handle_released();
        Some(SyncSent { sent_at: now, request, reports: RunReports::default() })
    }

    /// The sans-IO half of a release that came back (or did not).
    pub(crate) fn end_release(&mut self, release: SyncSent, answer: Result<AgentSyncResponse, ClientError>) {
        let term = release.request.lease.term.unwrap_or_default();
        match answer {
            Ok(answer) if answer.lease.holder_id.as_deref() != Some(self.config.node_id.as_str()) => log!("lease: released term={term}"),
            Ok(answer) => log!("lease: release of term={term} refused; the lease is in term {}", answer.lease.term),
            Err(error) => log!("lease: release of term={term} failed: {}", short(&error)),
        }
    }
}

/// Runs the conductor's loop (after [`Conductor::startup`]) until `shutdown` resolves, then
/// releases the lease if held. `wake` asks for a sync at once (a run ended); `after_tick` sees
/// the conductor after every tick (the status server publishes its snapshot from there).
pub async fn run<P: ControlPlane>(
    conductor: &mut Conductor<P>,
    shutdown: impl Future<Output = ()>,
    wake: std::rc::Rc<tokio::sync::Notify>,
    mut after_tick: impl FnMut(&Conductor<P>),
) {
    tokio::pin!(shutdown);
    after_tick(conductor);
    loop {
        let wake_at = conductor.next_wake(clock_now());
        tokio::select! {
            _ = &mut shutdown => break,
            _ = wake.notified() => conductor.sync_soon(),
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake_at)) => {}
        }
        // A sync in flight is given up at shutdown (a held one can take seconds): what it
        // carried stays in the outbox and goes with the next.
        tokio::select! {
            _ = conductor.tick(clock_now()) => {}
            _ = &mut shutdown => break,
        }
        after_tick(conductor);
    }
    conductor.shutdown().await;
    after_tick(conductor);
    conductor.drain(wake).await;
    after_tick(conductor);
}
