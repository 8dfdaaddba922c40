//! The conductor driver against the real control plane in memory ([`super::memory_plane`]),
//! under tokio's paused clock: time is virtual, so minutes of lease and pacing behaviour run in
//! milliseconds and exactly.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;
use shared::wire::{AgentSyncResponse, ClaimedStep};
use tokio::time::Instant;

use super::lease::LeaseStatus;
use super::memory_plane::{config, no_runs, MemoryPlane};
use super::{clock_now, Conductor, Room, Seats};
use crate::runner::outbox::RunReports;

/// A runner with room for `capacity` steps that records what it was given and never finishes.
#[derive(Clone, Default)]
struct RecordingSeats {
    capacity: i64,
    started: Rc<RefCell<Vec<ClaimedStep>>>,
}

impl Seats for RecordingSeats {
    fn room(&self) -> Room {
        let free = self.capacity - self.started.borrow().len() as i64;
        Room {
            capacity: free.max(0),
            worker_kinds: vec!["shell".into()],
            disk_low: false,
            step_heartbeat_ttl_sec: None,
            account: None,
            agent_cli: None,
            sandbox: None,
        }
    }
    fn start(&self, step: ClaimedStep) {
        self.started.borrow_mut().push(step);
    }
    fn reports(&self) -> RunReports {
        RunReports::default()
    }
    fn settle(&self, _sent: &RunReports, _answer: &AgentSyncResponse) {}
    fn busy(&self) -> bool {
        false
    }
}

/// Runs the driver loop for `duration` of virtual time.
async fn drive(conductor: &mut Conductor<&MemoryPlane>, duration: Duration) {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        let wake = Instant::from_std(conductor.next_wake(clock_now())).min(until);
        tokio::time::sleep_until(wake).await;
        conductor.tick(clock_now()).await;
    }
}

fn claimed(conductor: &Conductor<&MemoryPlane>) -> u64 {
    conductor.snapshot(clock_now()).loops.scheduler.claimed
}

#[tokio::test(start_paused = true)]
async fn leads_claims_degrades_when_unreachable_stops_before_expiry_and_recovers() {
    let plane = MemoryPlane::new(&[]);
    let mut conductor = Conductor::new(config("mini-main", "primary", 3), &plane, clock_now());
    conductor.startup(clock_now(), false, &mut no_runs()).await;
    assert_eq!(conductor.lease.status(clock_now()), LeaseStatus::Leader);
    let task = plane.create_task("first").await;
    drive(&mut conductor, Duration::from_secs(5)).await;
    assert_eq!(conductor.lease.leading_term(clock_now()), Some(1), "renewals keep the term");
    assert_eq!(plane.task(&task).await["status"], "running", "claimed and planned while leading");

    // The control plane goes away right after a sync.
    plane.set_down(true);
    let went_down = Instant::now();
    let server_expiry_at =
        plane.started + Duration::from_secs((conductor.lease.lease_expires_at.unwrap() - super::memory_plane::START) as u64);
    let queued = plane.create_task("while out of reach").await;
    let mut stopped_at = None;
    let mut degraded_at = None;
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
    assert!(stopped_at < server_expiry_at, "stopped leading at {stopped_at:?}, before the server's expiry {server_expiry_at:?}");
    assert!(degraded_at.expect("degraded") - went_down <= Duration::from_millis(2_100), "degraded after two failed syncs");
    assert_eq!(plane.task(&queued).await["status"], "queued", "no leader write while out of reach");

    // Back: the next sync acquires again (a new term, as the lease expired meanwhile) and the
    // waiting task is claimed.
    plane.set_down(false);
    drive(&mut conductor, Duration::from_secs(3)).await;
    assert_eq!(conductor.lease.status(clock_now()), LeaseStatus::Leader);
    assert_eq!(conductor.lease.leading_term(clock_now()), Some(2));
    assert_eq!(plane.task(&queued).await["status"], "running");
}

#[tokio::test(start_paused = true)]
async fn a_standby_never_schedules_and_takes_over_within_ttl_and_a_second() {
    let plane = MemoryPlane::new(&[]);
    let mut leader = Conductor::new(config("mini-main", "primary", 3), &plane, clock_now());
    let mut standby = Conductor::new(config("mac-standby", "standby", 3), &plane, clock_now());
    leader.startup(clock_now(), false, &mut no_runs()).await;
    standby.startup(clock_now(), false, &mut no_runs()).await;
    for index in 0..5 {
        plane.create_task(&format!("task {index}")).await;
        drive(&mut leader, Duration::from_millis(500)).await;
        drive(&mut standby, Duration::from_millis(500)).await;
        assert_eq!(standby.lease.status(clock_now()), LeaseStatus::Standby);
    }
    assert_eq!(claimed(&standby), 0, "a standby makes no leader write");
    assert_eq!(claimed(&leader), 5);

    // The leader stops syncing (gone): the standby takes over within TTL + 1 s of the last
    // renewal, paced by the control plane to just after the lease's expiry.
    let gone = Instant::now();
    let new_task = plane.create_task("after the failover").await;
    while standby.lease.status(clock_now()) != LeaseStatus::Leader {
        drive(&mut standby, Duration::from_millis(50)).await;
        assert!(Instant::now() - gone <= Duration::from_secs(4) + Duration::from_millis(100), "took over in time");
    }
    drive(&mut standby, Duration::from_secs(1)).await;
    assert_eq!(plane.task(&new_task).await["claimed_by"], "mac-standby", "the new leader schedules");
}

#[tokio::test(start_paused = true)]
async fn a_new_task_reaches_the_runner_through_syncs_and_the_idle_pace_is_the_control_planes() {
    let plane = MemoryPlane::new(&[]);
    let mut leader = Conductor::new(config("mini-main", "primary", 30), &plane, clock_now());
    let seats = RecordingSeats { capacity: 1, ..RecordingSeats::default() };
    leader.seats = Box::new(seats.clone());
    leader.startup(clock_now(), false, &mut no_runs()).await;
    drive(&mut leader, Duration::from_secs(30)).await;

    // Idle: one sync per idle interval (10 s), whatever the agent's own settings.
    let before = plane.syncs.get();
    drive(&mut leader, Duration::from_secs(600)).await;
    let idle_syncs = plane.syncs.get() - before;
    assert!((58..=62).contains(&idle_syncs), "{idle_syncs} syncs in 10 idle minutes");

    // A task: claimed at the next sync, planned and granted within a second after.
    let created = Instant::now();
    let task_id = plane.create_task("work").await;
    while seats.started.borrow().is_empty() {
        drive(&mut leader, Duration::from_millis(50)).await;
        assert!(Instant::now() - created <= Duration::from_secs(11), "task to first step within the idle interval and a second");
    }
    let started: Value = serde_json::to_value(&seats.started.borrow()[0]).unwrap();
    assert_eq!(started["task"]["task_id"], task_id.as_str());
    assert_eq!(started["step"]["step_index"], 0);
    assert_eq!(plane.task(&task_id).await["assigned_host"], "mini");
}

#[tokio::test(start_paused = true)]
async fn a_released_lease_is_taken_by_a_quiet_standby_within_a_second_at_the_idle_cost() {
    let plane = MemoryPlane::new(&[]);
    let mut leader = Conductor::new(config("mini-main", "primary", 30), &plane, clock_now());
    let mut standby = Conductor::new(config("mac-standby", "standby", 30), &plane, clock_now());
    leader.startup(clock_now(), false, &mut no_runs()).await;
    standby.startup(clock_now(), false, &mut no_runs()).await;
    let start = Instant::now();
    // Half-way between two of the standby's idle syncs.
    let released_at = start + Duration::from_millis(125_300);
    let standby_syncs = Rc::new(RefCell::new(0u64));
    let took_over = Rc::new(RefCell::new(None::<Instant>));
    let (syncs, took) = (standby_syncs.clone(), took_over.clone());
    let wake = || Rc::new(tokio::sync::Notify::new());
    tokio::join!(
        super::run(&mut leader, tokio::time::sleep_until(released_at), wake(), |_| {}),
        super::run(&mut standby, tokio::time::sleep_until(released_at + Duration::from_secs(10)), wake(), move |conductor| {
            if Instant::now() < released_at {
                *syncs.borrow_mut() = conductor.sync.syncs;
            }
            if took.borrow().is_none() && conductor.lease.status(clock_now()) == LeaseStatus::Leader {
                *took.borrow_mut() = Some(Instant::now());
            }
        }),
    );
    let took_over = took_over.borrow().expect("the standby took the released lease");
    assert!(took_over >= released_at, "never two leaders: {:?}", took_over - start);
    assert!(took_over - released_at <= Duration::from_secs(1), "taken {:?} after the release", took_over - released_at);
    // Held or not, a quiet standby syncs about once per idle interval (10 s).
    let idle_syncs = *standby_syncs.borrow();
    assert!((10..=14).contains(&idle_syncs), "{idle_syncs} standby syncs in the 125 s before the release");
}

#[tokio::test(start_paused = true)]
async fn right_after_a_hand_back_a_released_lease_is_still_taken_within_a_second() {
    let plane = MemoryPlane::new(&[]);
    let mut standby = Conductor::new(config("mac-standby", "standby", 30), &plane, clock_now());
    standby.startup(clock_now(), false, &mut no_runs()).await;
    assert_eq!(standby.lease.status(clock_now()), LeaseStatus::Leader, "alone, the standby leads");
    let start = Instant::now();
    let primary_led = Rc::new(RefCell::new(None::<Instant>));
    let standby_led_again = Rc::new(RefCell::new(None::<Instant>));
    let stop_primary = Rc::new(tokio::sync::Notify::new());
    let wake = || Rc::new(tokio::sync::Notify::new());
    let primary_run = async {
        // The primary comes back after 35 s, takes the lease back, and is stopped (SIGTERM) the
        // moment it leads.
        tokio::time::sleep(Duration::from_secs(35)).await;
        let mut primary = Conductor::new(config("mini-main", "primary", 30), &plane, clock_now());
        primary.startup(clock_now(), false, &mut no_runs()).await;
        let (led, stop) = (primary_led.clone(), stop_primary.clone());
        super::run(&mut primary, stop_primary.notified(), wake(), move |conductor| {
            if led.borrow().is_none() && conductor.lease.status(clock_now()) == LeaseStatus::Leader {
                *led.borrow_mut() = Some(Instant::now());
                stop.notify_one();
            }
        })
        .await;
    };
    let (primary_at, again) = (primary_led.clone(), standby_led_again.clone());
    let standby_run = super::run(&mut standby, tokio::time::sleep_until(start + Duration::from_secs(120)), wake(), move |conductor| {
        let leads = conductor.lease.status(clock_now()) == LeaseStatus::Leader;
        if leads && primary_at.borrow().is_some() && again.borrow().is_none() {
            *again.borrow_mut() = Some(Instant::now());
        }
    });
    tokio::join!(primary_run, standby_run);
    let primary_led = primary_led.borrow().expect("the primary took the lease back");
    let again = standby_led_again.borrow().expect("the standby took the released lease");
    assert!(again - primary_led <= Duration::from_secs(1), "taken {:?} after the primary's release", again - primary_led);
}
