//! The conductor driver against an in-memory control plane, under tokio's paused clock: time
//! is virtual, so seconds of lease behaviour run in microseconds and exactly.

use std::cell::RefCell;
use std::time::Duration;

use shared::status::{LeaseOperation, SystemMode};
use shared::wire::*;
use tokio::time::Instant;

use super::lease::LeaseStatus;
use super::{clock_now, Conductor, CountRuns};
use crate::cli::RawArgs;
use crate::client::{ClientError, ControlPlane};
use crate::config::AgentConfig;

#[derive(Default)]
struct FakeState {
    down: bool,
    holder: Option<String>,
    term: i64,
    expires: Option<Instant>,
    /// (route, caller, term) of every leader write that arrived.
    writes: Vec<(&'static str, String, i64)>,
}

/// Grants the lease like the real control plane (free or expired → term + 1), in virtual time.
#[derive(Default)]
struct FakePlane {
    state: RefCell<FakeState>,
    ttl: Duration,
}

impl FakePlane {
    fn new(ttl: Duration) -> Self {
        FakePlane { state: RefCell::default(), ttl }
    }

    fn set_down(&self, down: bool) {
        self.state.borrow_mut().down = down;
    }

    fn writes_by(&self, caller: &str) -> usize {
        self.state.borrow().writes.iter().filter(|(_, who, _)| who == caller).count()
    }

    fn reachable(&self) -> Result<(), ClientError> {
        if self.state.borrow().down {
            Err(ClientError::Unreachable("connection refused".into()))
        } else {
            Ok(())
        }
    }

    fn fenced_write(&self, route: &'static str, caller: &str, term: i64) -> Result<(), ClientError> {
        self.reachable()?;
        let mut state = self.state.borrow_mut();
        state.writes.push((route, caller.to_string(), term));
        let live = state.expires.is_some_and(|expires| Instant::now() < expires);
        if state.holder.as_deref() == Some(caller) && state.term == term && live {
            Ok(())
        } else {
            Err(ClientError::api(409, "stale_term", "stale"))
        }
    }
}

impl ControlPlane for &FakePlane {
    async fn heartbeat(&self, request: &ControllerHeartbeatRequest) -> Result<ControllerHeartbeatResponse, ClientError> {
        self.reachable()?;
        let controller = Controller {
            controller_id: request.controller_id.clone(),
            host: request.host.clone(),
            role: request.role,
            priority: request.priority,
            status: request.status.clone(),
            version: None,
            started_at: None,
            metadata: Default::default(),
            first_seen_at: 0,
            last_heartbeat_at: 0,
            alive: true,
        };
        Ok(ControllerHeartbeatResponse { controller, mode: SystemMode::Running })
    }

    async fn acquire(&self, request: &LeaderAcquireRequest) -> Result<LeaderAcquireResponse, ClientError> {
        self.reachable()?;
        let mut state = self.state.borrow_mut();
        let now = Instant::now();
        let live = state.expires.is_some_and(|expires| now < expires);
        let operation = if state.holder.as_deref() == Some(request.controller_id.as_str()) && live {
            LeaseOperation::Renew
        } else if !live {
            state.term += 1;
            state.holder = Some(request.controller_id.clone());
            LeaseOperation::Acquire
        } else {
            LeaseOperation::None
        };
        if operation != LeaseOperation::None {
            state.expires = Some(now + self.ttl);
        }
        let is_leader = operation != LeaseOperation::None;
        let lease = Lease {
            lease_name: "global".into(),
            holder_id: state.holder.clone(),
            holder_host: None,
            term: state.term,
            lease_expires_at: 0,
            renewed_at: 0,
            preferred_holder_id: None,
            metadata_json: None,
        };
        Ok(LeaderAcquireResponse {
            holder_id: state.holder.clone(),
            holder_host: None,
            term: state.term,
            lease_expires_at: 0,
            renewed_at: 0,
            is_leader,
            operation,
            lease,
        })
    }

    async fn release(&self, request: &LeaderReleaseRequest) -> Result<LeaderReleaseResponse, ClientError> {
        self.reachable()?;
        let mut state = self.state.borrow_mut();
        if state.holder.as_deref() == Some(request.controller_id.as_str()) {
            state.holder = None;
            state.expires = None;
        }
        Err(ClientError::api(409, "not_leader", ""))
    }

    async fn claim_tasks(&self, request: &TasksClaimRequest) -> Result<TasksClaimed, ClientError> {
        self.fenced_write("tasks.claim", &request.controller_id, request.term)?;
        Ok(TasksClaimed { tasks: Vec::new(), mode: SystemMode::Running, term: request.term })
    }

    async fn plan(&self, _task_id: &str, request: &TaskPlanRequest) -> Result<TaskDetail, ClientError> {
        self.fenced_write("tasks.plan", &request.controller_id, request.term)?;
        Err(ClientError::Decode("no tasks in the fake".into()))
    }

    async fn reap(&self, request: &StepsReapRequest) -> Result<StepsReaped, ClientError> {
        self.fenced_write("steps.reap", &request.controller_id, request.term)?;
        Ok(StepsReaped { reaped: Vec::new(), requeued_tasks: Vec::new(), restarted_tasks: Vec::new() })
    }
}

fn no_runs() -> CountRuns {
    CountRuns(std::path::PathBuf::from("/nonexistent/baa-runs"), 0)
}

fn config(node_id: &str, role: &str) -> AgentConfig {
    let raw = RawArgs {
        node_id: Some(node_id.into()),
        role: Some(role.into()),
        control_api_base: Some("http://fake".into()),
        lease_ttl_sec: Some("3".into()),
        lease_renew_interval_ms: Some("1000".into()),
        heartbeat_interval_ms: Some("1000".into()),
        ..RawArgs::default()
    };
    AgentConfig::resolve(&raw, |_| None).unwrap()
}

/// Runs the driver loop for `duration` of virtual time.
async fn drive(conductor: &mut Conductor<&FakePlane>, duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        let wake = Instant::from_std(conductor.next_wake(clock_now())).min(until);
        tokio::time::sleep_until(wake).await;
        conductor.tick(clock_now()).await;
    }
}

#[tokio::test(start_paused = true)]
async fn leads_renews_degrades_when_unreachable_stops_before_expiry_and_recovers() {
    let plane = FakePlane::new(Duration::from_secs(3));
    let mut conductor = Conductor::new(config("mini-main", "primary"), &plane, clock_now());
    conductor.startup(clock_now(), false, &mut no_runs()).await;
    assert_eq!(conductor.lease.status(clock_now()), LeaseStatus::Leader);
    drive(&mut conductor, Duration::from_secs(5)).await;
    assert_eq!(conductor.lease.leading_term(clock_now()), Some(1), "renewals keep the term");
    let writes_while_leading = plane.writes_by("mini-main");
    assert!(writes_while_leading >= 5, "the scheduler ran: {writes_while_leading}");

    // The control plane goes away right after a renewal.
    plane.set_down(true);
    let server_expiry = plane.state.borrow().expires.unwrap();
    let mut stopped_at = None;
    let mut degraded_at = None;
    let went_down = Instant::now();
    while Instant::now() < went_down + Duration::from_secs(6) {
        drive(&mut conductor, Duration::from_millis(100)).await;
        let now = clock_now();
        if stopped_at.is_none() && conductor.lease.leading_term(now).is_none() {
            stopped_at = Some(Instant::now());
        }
        if degraded_at.is_none() && conductor.lease.status(now) == LeaseStatus::Degraded {
            degraded_at = Some(Instant::now());
        }
    }
    let stopped_at = stopped_at.expect("stopped leading");
    assert!(stopped_at < server_expiry, "stopped leading at {stopped_at:?}, before the server's expiry {server_expiry:?}");
    assert!(degraded_at.expect("degraded") - went_down <= Duration::from_millis(2_100), "degraded after two failed renewals");
    assert_eq!(plane.writes_by("mini-main"), writes_while_leading, "no leader write while out of reach");

    // Back: the next attempt acquires again (a new term, as the lease expired meanwhile).
    plane.set_down(false);
    drive(&mut conductor, Duration::from_secs(2)).await;
    assert_eq!(conductor.lease.status(clock_now()), LeaseStatus::Leader);
    assert_eq!(conductor.lease.leading_term(clock_now()), Some(2));
}

#[tokio::test(start_paused = true)]
async fn a_standby_never_schedules_while_another_leads() {
    let plane = FakePlane::new(Duration::from_secs(3));
    let mut leader = Conductor::new(config("mini-main", "primary"), &plane, clock_now());
    let mut standby = Conductor::new(config("mac-standby", "standby"), &plane, clock_now());
    leader.startup(clock_now(), false, &mut no_runs()).await;
    standby.startup(clock_now(), false, &mut no_runs()).await;
    for _ in 0..50 {
        drive(&mut leader, Duration::from_millis(100)).await;
        drive(&mut standby, Duration::from_millis(100)).await;
        assert_eq!(standby.lease.status(clock_now()), LeaseStatus::Standby);
    }
    assert_eq!(plane.writes_by("mac-standby"), 0, "a standby makes no leader write");
    assert!(plane.writes_by("mini-main") > 0);

    // The leader stops renewing (gone): the standby takes over within TTL + renew interval.
    let gone = Instant::now();
    while standby.lease.status(clock_now()) != LeaseStatus::Leader {
        drive(&mut standby, Duration::from_millis(100)).await;
        assert!(Instant::now() - gone <= Duration::from_secs(4), "took over in time");
    }
    drive(&mut standby, Duration::from_secs(2)).await;
    assert!(plane.writes_by("mac-standby") > 0, "the new leader schedules");
}
