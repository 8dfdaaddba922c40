//! The run machine on a simulated host ([`super::sim_host`]): the real conductor, outbox and
//! control plane in memory, under tokio's paused clock. Each test is a whole run — its
//! output, its stop ladder, its verdicts — in virtual time.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::sim_host::{run_for, sim_now, Script, SimHost, SimSeats};
use crate::conductor::memory_plane::{config, no_runs, MemoryPlane, ADMIN_TOKEN};
use crate::conductor::{clock_now, Conductor};
use crate::runner::ladder::Signal;
use crate::runner::run_dir::RunPhase;

const SECOND: Duration = Duration::from_secs(1);

fn lines(count: u64, every: Duration) -> Vec<(Duration, String)> {
    (0..count).map(|index| (every * index as u32, format!("line {index}: {}\n", "x".repeat(40)))).collect()
}

/// The task's step among the simulated host's runs: its setup step's run comes first (the
/// simulated repository has nothing to set up).
const STEP: usize = 1;

struct Fleet<'a> {
    plane: &'a MemoryPlane,
    conductor: Conductor<&'a MemoryPlane>,
    host: Rc<RefCell<SimHost>>,
    answering: bool,
}

impl<'a> Fleet<'a> {
    async fn start(plane: &'a MemoryPlane, scripts: Vec<Script>) -> Fleet<'a> {
        let host = Rc::new(RefCell::new(SimHost { capacity: 1, scripts: scripts.into(), ..SimHost::default() }));
        let mut conductor = Conductor::new(config("mini-main", "primary", 30), plane, clock_now());
        conductor.seats = Box::new(SimSeats(host.clone(), plane.started));
        conductor.startup(clock_now(), false, &mut no_runs()).await;
        Fleet { plane, conductor, host, answering: true }
    }

    async fn run_for(&mut self, duration: Duration) {
        run_for(&mut self.conductor, &self.host, self.plane, duration, self.answering).await;
    }

    /// Runs until the task's step exists (the run after its setup's); returns when its process
    /// started.
    async fn until_started(&mut self) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.host.borrow().runs.len() < 2 {
            assert!(Instant::now() < deadline, "a step was granted within 30 s");
            self.run_for(Duration::from_millis(100)).await;
        }
        self.host.borrow().runs[STEP].started
    }

    fn phase(&self) -> RunPhase {
        self.host.borrow().runs[STEP].machine.phase()
    }

    fn signals(&self) -> Vec<(Duration, Signal)> {
        self.host.borrow().runs[STEP].signals.clone()
    }

    /// Every byte of stdout the control plane stored for the task, in order.
    async fn stored_stdout(&self, task_id: &str) -> String {
        let logs: Value =
            self.plane.call("GET", &format!("/v1/tasks/{task_id}/logs?stream=stdout&limit=1000"), ADMIN_TOKEN, None).await.unwrap();
        logs["chunks"].as_array().unwrap().iter().map(|chunk| chunk["text"].as_str().unwrap().to_string()).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_step_that_prints_and_exits_zero_succeeds_with_all_its_output() {
    let plane = MemoryPlane::new(&[]);
    let script = Script { prints: lines(20, SECOND / 4), exits: Some((6 * SECOND, 0)), ignores_sigterm: false };
    let mut fleet = Fleet::start(&plane, vec![script]).await;
    let task = plane.create_task("prints").await;
    fleet.until_started().await;
    fleet.run_for(20 * SECOND).await;
    assert_eq!(fleet.phase(), RunPhase::Succeeded);
    assert_eq!(plane.task(&task).await["status"], "succeeded");
    let written = fleet.host.borrow().runs[STEP].stdout();
    assert_eq!(written.lines().count(), 20);
    assert_eq!(fleet.stored_stdout(&task).await, written, "every byte, once, in order");
    assert!(fleet.signals().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_step_that_exits_non_zero_fails_its_task() {
    let plane = MemoryPlane::new(&[]);
    let script = Script { prints: lines(1, SECOND), exits: Some((2 * SECOND, 3)), ignores_sigterm: false };
    let mut fleet = Fleet::start(&plane, vec![script]).await;
    let task = plane.create_task("fails").await;
    fleet.until_started().await;
    fleet.run_for(15 * SECOND).await;
    assert_eq!(fleet.phase(), RunPhase::Failed);
    let read = plane.task(&task).await;
    assert_eq!(read["status"], "failed");
    assert!(
        read["steps"][1]["last_error"].as_str().unwrap_or_default().contains("exit code 3") || read.to_string().contains("exit code 3")
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_past_its_timeout_gets_sigterm_then_sigkill_after_the_grace() {
    let plane = MemoryPlane::new(&[]);
    let script = Script { prints: lines(3, SECOND), exits: None, ignores_sigterm: true };
    let mut fleet = Fleet::start(&plane, vec![script]).await;
    let task = plane.create_task_with(json!({"constraints": {"timeout_sec": 3}})).await;
    fleet.until_started().await;
    fleet.run_for(20 * SECOND).await;
    let signals = fleet.signals();
    assert_eq!(signals.iter().map(|(_, signal)| *signal).collect::<Vec<_>>(), [Signal::Terminate, Signal::Kill]);
    assert!(signals[0].0 >= 3 * SECOND && signals[0].0 < 3 * SECOND + SECOND / 10, "SIGTERM at the deadline: {signals:?}");
    assert!(signals[1].0 - signals[0].0 >= 5 * SECOND && signals[1].0 < 9 * SECOND, "SIGKILL after the 5 s grace: {signals:?}");
    assert_eq!(fleet.phase(), RunPhase::TimedOut);
    assert_eq!(plane.task(&task).await["status"], "failed");
}

#[tokio::test(start_paused = true)]
async fn a_canceled_task_stops_its_step_within_the_running_pace() {
    let plane = MemoryPlane::new(&[]);
    let script = Script { prints: lines(100, SECOND), exits: None, ignores_sigterm: false };
    let mut fleet = Fleet::start(&plane, vec![script]).await;
    let task = plane.create_task("runs until canceled").await;
    let started = fleet.until_started().await;
    fleet.run_for(3 * SECOND).await;
    let canceled_at = Instant::now() - started;
    let _: Value = plane.call("POST", &format!("/v1/tasks/{task}/cancel"), ADMIN_TOKEN, Some(json!({}))).await.unwrap();
    fleet.run_for(15 * SECOND).await;
    let signals = fleet.signals();
    assert_eq!(signals.len(), 1, "SIGTERM was heeded: {signals:?}");
    assert!(signals[0].0 - canceled_at <= 5 * SECOND + SECOND / 2, "heard within the 5 s pace of a busy host: {signals:?}");
    assert_eq!(fleet.phase(), RunPhase::Canceled);
    assert_eq!(plane.task(&task).await["status"], "canceled");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_adopts_a_run_mid_ladder_and_finishes_it_without_losing_output() {
    let plane = MemoryPlane::new(&[]);
    let script = Script { prints: lines(40, SECOND / 10), exits: None, ignores_sigterm: true };
    let mut fleet = Fleet::start(&plane, vec![script]).await;
    let task = plane.create_task_with(json!({"constraints": {"timeout_sec": 3}})).await;
    let started = fleet.until_started().await;
    fleet.run_for(4 * SECOND).await;
    assert_eq!(fleet.signals().len(), 1, "SIGTERM sent at the deadline, ignored");

    // The agent dies; a new one adopts the run from state.json and ship.json: the ladder goes
    // on from the recorded SIGTERM, and the batch that was in flight is sent again.
    fleet.host.borrow_mut().restart(sim_now(&plane));
    fleet.run_for(20 * SECOND).await;
    let signals = fleet.signals();
    assert_eq!(signals.iter().map(|(_, signal)| *signal).collect::<Vec<_>>(), [Signal::Terminate, Signal::Kill]);
    assert!(signals[1].0 <= 8 * SECOND + SECOND / 10, "SIGKILL 5 s after the recorded SIGTERM: {signals:?}");
    assert!(started + signals[1].0 > started + 4 * SECOND);
    assert_eq!(fleet.phase(), RunPhase::TimedOut);
    assert_eq!(plane.task(&task).await["status"], "failed");
    let written = fleet.host.borrow().runs[STEP].stdout();
    assert_eq!(fleet.stored_stdout(&task).await, written, "every byte once, across the restart");
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_process_ended_while_no_agent_watched_reports_its_recorded_exit() {
    let plane = MemoryPlane::new(&[]);
    let script = Script { prints: lines(5, SECOND / 2), exits: Some((3 * SECOND, 0)), ignores_sigterm: false };
    let mut fleet = Fleet::start(&plane, vec![script]).await;
    let task = plane.create_task("ends while the agent is down").await;
    fleet.until_started().await;
    fleet.run_for(SECOND).await;
    // The agent is down from 1 s to 5 s (no turn, no sync); the process exits at 3 s.
    tokio::time::sleep(4 * SECOND).await;
    fleet.host.borrow_mut().restart(sim_now(&plane));
    fleet.run_for(15 * SECOND).await;
    assert_eq!(fleet.phase(), RunPhase::Succeeded);
    assert_eq!(plane.task(&task).await["status"], "succeeded");
    assert_eq!(fleet.stored_stdout(&task).await, fleet.host.borrow().runs[STEP].stdout());
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_control_plane_holds_nothing_up_and_loses_nothing() {
    let plane = MemoryPlane::new(&[]);
    let script = Script { prints: lines(200, SECOND / 10), exits: Some((25 * SECOND, 0)), ignores_sigterm: false };
    let mut fleet = Fleet::start(&plane, vec![script]).await;
    let task = plane.create_task("prints through an outage").await;
    fleet.until_started().await;
    fleet.run_for(2 * SECOND).await;
    plane.set_down(true);
    fleet.run_for(38 * SECOND).await;
    {
        let host = fleet.host.borrow();
        let run = &host.runs[STEP];
        assert_eq!(run.machine.phase(), RunPhase::Exited, "the step ran to its end; its report waits");
        assert_eq!(run.stdout().lines().count(), 200, "output went on into the spool");
        assert!(!run.machine.cursor().in_flight.is_empty(), "a batch waits for its verdict");
    }
    plane.set_down(false);
    fleet.run_for(30 * SECOND).await;
    assert_eq!(fleet.phase(), RunPhase::Succeeded);
    assert_eq!(plane.task(&task).await["status"], "succeeded");
    let written = fleet.host.borrow().runs[STEP].stdout();
    assert_eq!(fleet.stored_stdout(&task).await, written, "nothing lost, nothing twice");
}

#[tokio::test(start_paused = true)]
async fn a_control_plane_that_never_answers_does_not_hold_up_a_timed_out_steps_kill() {
    let plane = MemoryPlane::new(&[]);
    let script = Script { prints: lines(10, SECOND), exits: None, ignores_sigterm: true };
    let mut fleet = Fleet::start(&plane, vec![script]).await;
    plane.create_task_with(json!({"constraints": {"timeout_sec": 2}})).await;
    fleet.until_started().await;
    // From here the conductor is stuck in a request that never comes back.
    fleet.answering = false;
    fleet.run_for(15 * SECOND).await;
    let signals = fleet.signals();
    assert_eq!(signals.iter().map(|(_, signal)| *signal).collect::<Vec<_>>(), [Signal::Terminate, Signal::Kill]);
    assert!(signals[1].0 <= 2 * SECOND + 5 * SECOND + SECOND, "killed within timeout + kill_grace + 1 s: {signals:?}");
    assert_eq!(fleet.phase(), RunPhase::Exited, "the outcome waits in the outbox for an answer");
}

#[tokio::test(start_paused = true)]
async fn a_steadily_printing_step_costs_about_a_third_of_a_request_a_second() {
    let plane = MemoryPlane::new(&[]);
    let script = Script { prints: lines(200, SECOND / 10), exits: Some((20 * SECOND, 0)), ignores_sigterm: false };
    let mut fleet = Fleet::start(&plane, vec![script]).await;
    let task = plane.create_task("prints steadily").await;
    fleet.until_started().await;
    let before = plane.syncs.get();
    fleet.run_for(20 * SECOND).await;
    let syncs = plane.syncs.get() - before;
    // The output pace is 3 s: with an idle second host (0.1 a second) the fleet stays under
    // half a request a second.
    assert!(syncs <= 8, "{syncs} syncs in 20 s of steady output");
    fleet.run_for(10 * SECOND).await;
    assert_eq!(fleet.stored_stdout(&task).await, fleet.host.borrow().runs[STEP].stdout());
}
