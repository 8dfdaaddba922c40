//! The conductor: controller registration, heartbeats, the leader lease and, only while this
//! node leads, the scheduler.
//!
//! - [`lease`]: the pure lease state machine (local deadline, degraded after failures).
//! - [`planner`]: the built-in planner (pure).
//! - this file: the driver. It only sleeps, calls the control plane and feeds the answers to
//!   the machines; every decision is theirs.

pub mod lease;
pub mod planner;

#[cfg(test)]
mod driver_tests;

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use shared::status::{SystemMode, TaskStatus};
use shared::wire::{ControllerHeartbeatRequest, LeaderAcquireRequest, LeaderReleaseRequest, StepsReapRequest, TasksClaimRequest};
use shared::ErrorCode;

use crate::checklist::STARTUP_CHECKLIST;
use crate::client::{ClientError, ControlPlane};
use crate::config::AgentConfig;
use crate::log::log;
use lease::{LeaseMachine, LeaseStatus, LeaseTiming};

/// Tasks claimed per scheduler tick.
pub const CLAIM_LIMIT: i64 = 5;

#[derive(Debug, Clone, Serialize)]
pub struct ChecklistEntry {
    pub id: &'static str,
    pub status: &'static str,
    pub detail: String,
}

#[derive(Debug, Default)]
struct HeartbeatLoop {
    next_due: Option<Instant>,
    last_ok: Option<Instant>,
    consecutive_failures: u32,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct SchedulerLoop {
    next_due: Option<Instant>,
    /// Reaping is not urgent (a step's heartbeat deadline is a minute away): it runs at the
    /// lease renewal pace, not at every scheduler tick.
    next_reap: Option<Instant>,
    ticks: u64,
    claimed: u64,
    planned: u64,
    reaped: u64,
    last_error: Option<String>,
}

pub struct Conductor<P> {
    pub config: AgentConfig,
    plane: P,
    pub lease: LeaseMachine,
    heartbeat: HeartbeatLoop,
    scheduler: SchedulerLoop,
    mode: Option<SystemMode>,
    checklist: Vec<ChecklistEntry>,
    /// The term this node last acted in as leader, to log transitions.
    logged_term: Option<i64>,
    /// Told when this node's scheduler planned tasks, so the local runner claims at once.
    pub planned: Option<std::rc::Rc<tokio::sync::Notify>>,
    /// When this agent started (unix seconds), reported with every heartbeat; set by `main`.
    pub started_at: Option<i64>,
}

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

/// Now, from tokio's clock: real time in the agent, virtual time under a paused test clock.
pub fn clock_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

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
            heartbeat: HeartbeatLoop::default(),
            scheduler: SchedulerLoop::default(),
            mode: None,
            checklist: Vec::new(),
            logged_term: None,
            planned: None,
            started_at: None,
        }
    }

    /// Records the next checklist step; `STARTUP_CHECKLIST` is the one list of steps and
    /// their order, and each call must be the step that list names next.
    fn check(&mut self, id: &'static str, status: &'static str, detail: String) {
        assert_eq!(STARTUP_CHECKLIST.get(self.checklist.len()).map(|item| item.id), Some(id), "checklist out of order");
        log!("checklist {id}: {status} ({detail})");
        self.checklist.push(ChecklistEntry { id, status, detail });
    }

    /// The startup checklist, in order. `start-scheduler` is done only by a leader.
    pub async fn startup(&mut self, now: Instant, run_once: bool, runs: &mut dyn StartupRuns) {
        let registered = self.send_heartbeat(now).await;
        self.check(
            "register-controller",
            if registered { "done" } else { "failed" },
            match &self.heartbeat.last_error {
                Some(error) if !registered => error.clone(),
                _ => format!("{} as {} on {}", self.config.node_id, self.config.role, self.config.host),
            },
        );
        // One attempt per allowed failure when the control plane does not answer, so a single
        // cycle can tell "unreachable" (degraded) from one lost request.
        for attempt in 0..self.config.renew_failure_threshold {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if self.attempt_lease(clock_now().max(now)).await {
                break;
            }
        }
        let lease_detail = match self.lease.status(clock_now()) {
            LeaseStatus::Leader => format!("leader in term {}", self.lease.term),
            LeaseStatus::Standby => match &self.lease.holder_id {
                Some(holder) => format!("standby; the leader is {holder} in term {}", self.lease.term),
                None => format!("standby; no leader yet (term {})", self.lease.term),
            },
            LeaseStatus::Degraded => "degraded: the control plane did not answer".to_string(),
        };
        let lease_ok = self.lease.consecutive_failures == 0;
        self.check("acquire-lease", if lease_ok { "done" } else { "failed" }, lease_detail);
        let (status, detail) = runs.load_runs();
        self.check("load-runs", status, detail);
        let (status, detail) = runs.reconcile_runs();
        self.check("reconcile-runs", status, detail);
        self.check(
            "start-heartbeat-loop",
            if run_once { "skipped" } else { "done" },
            format!(
                "heartbeat every {} ms, lease every {} ms",
                self.config.heartbeat_interval.as_millis(),
                self.config.lease_renew_interval.as_millis()
            ),
        );
        let now = clock_now();
        match self.lease.leading_term(now) {
            Some(term) => {
                self.scheduler.next_due = Some(now);
                self.check("start-scheduler", "done", format!("leader in term {term}"));
                if run_once {
                    self.schedule(now).await;
                }
            }
            None => self.check("start-scheduler", "skipped", "not the leader: a standby never schedules".into()),
        }
    }

    async fn send_heartbeat(&mut self, now: Instant) -> bool {
        self.heartbeat.next_due = Some(now + self.config.heartbeat_interval);
        let status = self.lease.status(now).as_str();
        let request = ControllerHeartbeatRequest {
            controller_id: self.config.node_id.clone(),
            host: self.config.host.clone(),
            role: self.config.role,
            priority: self.config.priority,
            status: status.into(),
            version: Some(self.config.version.clone()),
            started_at: self.started_at,
            metadata: None,
        };
        match self.plane.heartbeat(&request).await {
            Ok(answer) => {
                if self.mode != Some(answer.mode) {
                    log!("mode is {}", answer.mode);
                }
                self.mode = Some(answer.mode);
                self.heartbeat.last_ok = Some(now);
                self.heartbeat.consecutive_failures = 0;
                self.heartbeat.last_error = None;
                true
            }
            Err(error) => {
                self.heartbeat.consecutive_failures += 1;
                self.heartbeat.last_error = Some(short(&error));
                log!("heartbeat failed: {}", short(&error));
                false
            }
        }
    }

    /// One acquire/renew call; returns whether the control plane answered.
    async fn attempt_lease(&mut self, now: Instant) -> bool {
        let sent_at = self.lease.start_attempt(now);
        let request = LeaderAcquireRequest {
            controller_id: self.config.node_id.clone(),
            host: self.config.host.clone(),
            ttl_sec: self.config.lease_ttl_sec,
            preferred: self.config.preferred,
        };
        let answered = match self.plane.acquire(&request).await {
            Ok(answer) => {
                self.lease.handle_answer(sent_at, &answer);
                true
            }
            Err(error) => {
                self.lease.handle_failure();
                log!("lease attempt failed ({} in a row): {}", self.lease.consecutive_failures, short(&error));
                false
            }
        };
        self.log_transition(clock_now().max(now));
        answered
    }

    fn log_transition(&mut self, now: Instant) {
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
            // Say so in the controllers list at once, not at the next heartbeat.
            self.heartbeat.next_due = Some(now);
        }
    }

    /// The next instant after `now` a loop is due or the lease changes on its own.
    pub fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = self.lease.poll_timeout(now);
        if let Some(due) = self.heartbeat.next_due {
            wake = wake.min(due);
        }
        if let (Some(due), Some(_)) = (self.scheduler.next_due, self.lease.leading_term(now)) {
            wake = wake.min(due);
        }
        wake
    }

    /// Runs whatever is due at `now`.
    pub async fn tick(&mut self, now: Instant) {
        if self.heartbeat.next_due.is_none_or(|due| now >= due) {
            self.send_heartbeat(now).await;
        }
        if self.lease.attempt_due(now) {
            self.attempt_lease(now).await;
        }
        self.log_transition(clock_now().max(now));
        let now = clock_now().max(now);
        if self.lease.leading_term(now).is_some() {
            if self.scheduler.next_due.is_none_or(|due| now >= due) {
                self.schedule(now).await;
            }
        } else {
            self.scheduler.next_due = None;
            self.scheduler.next_reap = None;
        }
    }

    /// One scheduler pass, only while leading: reap lost steps, then (mode running) claim and
    /// plan queued tasks. Every write carries the current term; the control plane refuses
    /// it if the term is stale.
    async fn schedule(&mut self, now: Instant) {
        self.scheduler.next_due = Some(now + self.config.scheduler_interval);
        let Some(term) = self.lease.leading_term(now) else { return };
        self.scheduler.ticks += 1;
        let id = self.config.node_id.clone();
        if self.scheduler.next_reap.is_none_or(|due| now >= due) {
            self.scheduler.next_reap = Some(now + self.config.lease_renew_interval);
            match self.plane.reap(&StepsReapRequest { controller_id: id.clone(), term }).await {
                Ok(reaped) => {
                    self.scheduler.reaped += reaped.reaped.len() as u64;
                    if !reaped.reaped.is_empty() || !reaped.requeued_tasks.is_empty() {
                        log!(
                            "leader write steps.reap term={term} reaped={} requeued_tasks={}",
                            reaped.reaped.len(),
                            reaped.requeued_tasks.len()
                        );
                    }
                }
                Err(error) => return self.scheduler_error("steps.reap", term, error),
            }
        }
        if self.mode != Some(SystemMode::Running) && self.mode.is_some() {
            return;
        }
        let request = TasksClaimRequest { controller_id: id.clone(), host: self.config.host.clone(), term, limit: Some(CLAIM_LIMIT) };
        let claimed = match self.plane.claim_tasks(&request).await {
            Ok(claimed) => claimed,
            Err(error) => return self.scheduler_error("tasks.claim", term, error),
        };
        self.mode = Some(claimed.mode);
        if claimed.tasks.is_empty() {
            return;
        }
        self.scheduler.claimed += claimed.tasks.len() as u64;
        log!("leader write tasks.claim term={term} claimed={}", claimed.tasks.len());
        for task in claimed.tasks.iter().filter(|task| task.status == TaskStatus::Planning) {
            let plan = planner::plan(task, &id, term);
            match self.plane.plan(&task.task_id, &plan).await {
                Ok(_) => {
                    self.scheduler.planned += 1;
                    log!("leader write tasks.plan term={term} task={} steps={}", task.task_id, plan.steps.len());
                    if let Some(planned) = &self.planned {
                        planned.notify_one();
                    }
                }
                Err(error) => return self.scheduler_error("tasks.plan", term, error),
            }
        }
    }

    fn scheduler_error(&mut self, route: &str, term: i64, error: ClientError) {
        log!("leader write {route} term={term} refused: {}", short(&error));
        self.scheduler.last_error = Some(format!("{route}: {}", short(&error)));
        if matches!(error.code(), Some(ErrorCode::StaleTerm | ErrorCode::NotLeader)) {
            // The control plane knows better: stop acting until the next lease answer.
            self.lease.handle_released();
            self.log_transition(clock_now());
        }
    }

    /// Gives the lease up if this node holds it, so a standby takes over at once.
    pub async fn shutdown(&mut self) {
        if let Some(term) = self.lease.held_term() {
            let request = LeaderReleaseRequest { controller_id: self.config.node_id.clone(), term: Some(term) };
            match self.plane.release(&request).await {
                Ok(_) => log!("lease: released term={term}"),
                Err(error) => log!("lease: release of term={term} failed: {}", short(&error)),
            }
            self.lease.handle_released();
        }
    }

    /// What `start --run-once --json` prints and the status server will serve.
    pub fn snapshot(&self, now: Instant) -> Value {
        let ago = |instant: Option<Instant>| instant.map(|instant| now.saturating_duration_since(instant).as_millis() as u64);
        json!({
            "node_id": self.config.node_id,
            "host": self.config.host,
            "role": self.config.role,
            "preferred": self.config.preferred,
            "lease": {
                "state": self.lease.status(now),
                "leader_id": self.lease.holder_id,
                "term": self.lease.term,
                "lease_expires_at": self.lease.lease_expires_at,
                "last_operation": self.lease.last_operation,
                "consecutive_failures": self.lease.consecutive_failures,
            },
            "mode": self.mode,
            "loops": {
                "heartbeat": {
                    "interval_ms": self.config.heartbeat_interval.as_millis() as u64,
                    "last_ok_ms_ago": ago(self.heartbeat.last_ok),
                    "consecutive_failures": self.heartbeat.consecutive_failures,
                    "last_error": self.heartbeat.last_error,
                },
                "lease": {
                    "renew_interval_ms": self.config.lease_renew_interval.as_millis() as u64,
                    "ttl_sec": self.config.lease_ttl_sec,
                    "renew_failure_threshold": self.config.renew_failure_threshold,
                },
                "scheduler": {
                    "interval_ms": self.config.scheduler_interval.as_millis() as u64,
                    "active": self.lease.leading_term(now).is_some(),
                    "ticks": self.scheduler.ticks,
                    "claimed": self.scheduler.claimed,
                    "planned": self.scheduler.planned,
                    "reaped": self.scheduler.reaped,
                    "last_error": self.scheduler.last_error,
                },
            },
            "checklist": self.checklist,
            "paths": self.config.paths,
            "control_api_base": self.config.control_api_base,
            "local_api": self.config.local_api,
            "token_set": self.config.shared_token.is_some(),
            "warnings": self.config.warnings,
        })
    }
}

/// Runs the conductor's loops (after [`Conductor::startup`]) until `shutdown` resolves, then
/// releases the lease if held. `after_tick` sees the conductor after every tick (the status
/// server publishes its snapshot from there).
pub async fn run<P: ControlPlane>(
    conductor: &mut Conductor<P>,
    shutdown: impl Future<Output = ()>,
    mut after_tick: impl FnMut(&Conductor<P>),
) {
    tokio::pin!(shutdown);
    after_tick(conductor);
    loop {
        let wake = conductor.next_wake(clock_now());
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
        }
        conductor.tick(clock_now()).await;
        after_tick(conductor);
    }
    conductor.shutdown().await;
    after_tick(conductor);
}
