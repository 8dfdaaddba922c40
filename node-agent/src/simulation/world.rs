//! One simulated fleet under one seed: the real control-plane core on SQLite in memory, and
//! `K` agents — each the real conductor (its lease machine, its planner, its sync) and the
//! real run machines, outbox and shipper of a simulated host ([`SimHost`]) — under one virtual
//! clock (tokio's, paused). The world carries every sync itself, so the seed decides each
//! request's and answer's fate: delivered after a delay, dropped, duplicated, or delivered
//! after the agent gave up on it. Everything happens in the order of the event queue, keyed by
//! time and then by sequence: the same seed is the same run, to the byte.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use control_worker::core::blobs::MemoryBlobs;
use control_worker::core::clock::{Clock, SeededRandom};
use control_worker::core::config::Config;
use control_worker::core::Core;
use control_worker::native::SqliteDb;
use shared::status::LogStream;
use shared::wire::{AgentSyncRequest, AgentSyncResponse, ClaimedStep};
use tokio::time::Instant;

use super::agents::{agent_config, Agent};
use super::checks::{Checks, Violation};
use super::schedule::{draw_script, Act, Dice, Schedule};
use crate::client::ClientError;
use crate::clock::Now;
use crate::conductor::memory_plane::{ADMIN_TOKEN, SERVICE_TOKEN, START};
use crate::runner::machine::sim_host::SimHost;
use crate::runner::run_dir::RunPhase;

/// The lease TTL of the simulated fleet: short, so failovers happen within a seed.
pub const LEASE_TTL_SEC: u32 = 10;
/// How long after the faults stop every task must have ended.
pub const SETTLE_BOUND: Duration = Duration::from_secs(300);
/// The loop's turns in one seed, at most: a seed that has not settled by then is stuck.
const MAX_TURNS: u64 = 400_000;
/// A slice of storage upkeep every this many turns: compaction racing the fleet's syncs.
const UPKEEP_EVERY_TURNS: u64 = 40;

/// What one seed did.
pub struct Outcome {
    pub violation: Option<Violation>,
    pub trace: Vec<String>,
    pub syncs: u64,
    /// How often each path of interest was taken (faults, failovers, refused late reports…).
    pub tally: BTreeMap<&'static str, u64>,
}

/// The control plane's clock: true (virtual) time from [`START`], stepped by `offset_ms`, in
/// whole seconds as in production.
pub(super) struct SimClock {
    pub(super) started: Instant,
    pub(super) offset_ms: Rc<Cell<i64>>,
}

impl Clock for SimClock {
    fn now(&self) -> i64 {
        START + ((Instant::now() - self.started).as_millis() as i64 + self.offset_ms.get()).div_euclid(1_000)
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await
    }
}

pub(super) type SimCore = Core<SqliteDb, SimClock, SeededRandom, MemoryBlobs>;

pub(super) enum Message {
    Request { agent: usize, life: u64, id: u64, request: Box<AgentSyncRequest> },
    Answer { agent: usize, life: u64, id: u64, answer: Box<Result<AgentSyncResponse, ClientError>> },
    Act(Act),
}

pub struct World {
    pub(super) dice: Rc<Dice>,
    pub(super) core: Option<SimCore>,
    pub(super) config: Config,
    pub(super) started: Instant,
    pub(super) offset_ms: Rc<Cell<i64>>,
    pub(super) plane_down_until: Instant,
    pub(super) agents: Vec<Agent>,
    pub(super) queue: BTreeMap<(Instant, u64), Message>,
    pub(super) sequence: u64,
    pub(super) schedule: Schedule,
    pub(super) task_ids: Vec<Option<String>>,
    pub(super) checks: Checks,
    pub(super) trace: Vec<String>,
    pub(super) syncs: u64,
    pub(super) tally: BTreeMap<&'static str, u64>,
    pub(super) seed: u64,
}

impl World {
    pub fn new(seed: u64, agent_count: usize) -> World {
        let dice = Rc::new(Dice::new(seed));
        let schedule = Schedule::draw(&dice, agent_count);
        let pairs = [
            ("BAA_SHARED_TOKEN", SERVICE_TOKEN),
            ("CONTROL_API_BROWSER_ADMIN_TOKEN", ADMIN_TOKEN),
            ("CONTROL_API_STEP_HEARTBEAT_TTL_SEC", "15"),
            // Compaction (SPEC §17) as soon as a run ends, racing its late output.
            ("CONTROL_API_COMPACT_AFTER_SEC", "0"),
        ];
        let (config, _) = Config::from_pairs(&pairs).expect("the simulated control plane's configuration");
        let started = Instant::now();
        let offset_ms = Rc::new(Cell::new(0));
        let db = SqliteDb::open_in_memory().expect("SQLite in memory");
        let core =
            Core::new(db, MemoryBlobs::new(), SimClock { started, offset_ms: offset_ms.clone() }, SeededRandom::new(seed), config.clone());
        let agents = (0..agent_count)
            .map(|index| {
                let dice = dice.clone();
                let host = SimHost {
                    capacity: 1 + (index % 2) as i64,
                    node_id: format!("host{index}-main"),
                    host_name: format!("host{index}"),
                    make_script: Some(Box::new(move |step: &ClaimedStep| draw_script(&dice, step))),
                    ..SimHost::default()
                };
                Agent {
                    node_id: format!("host{index}-main"),
                    config: agent_config(index),
                    host: Rc::new(RefCell::new(host)),
                    conductor: None,
                    down_until: Some(started),
                    cut_until: started,
                    stalled_until: started,
                    startup_tries: 0,
                    in_flight: None,
                    stopping: None,
                    life: 0,
                }
            })
            .collect();
        let mut world = World {
            dice,
            core: Some(core),
            config,
            started,
            offset_ms,
            plane_down_until: started,
            agents,
            queue: BTreeMap::new(),
            sequence: 0,
            task_ids: vec![None; schedule.tasks.len()],
            schedule,
            checks: Checks::default(),
            trace: Vec::new(),
            syncs: 0,
            tally: BTreeMap::new(),
            seed,
        };
        for (at, act) in world.schedule.acts.clone() {
            world.enqueue(started + at, Message::Act(act));
        }
        world
    }

    pub(super) fn core(&self) -> &SimCore {
        self.core.as_ref().expect("the control plane")
    }

    pub(super) fn elapsed(&self) -> Duration {
        Instant::now() - self.started
    }

    pub(super) fn wall(&self) -> Now {
        Now { at: Instant::now().into_std(), wall_ms: START * 1_000 + self.elapsed().as_millis() as i64 }
    }

    pub(super) fn faulty(&self) -> bool {
        self.elapsed() < self.schedule.faults_end
    }

    pub(super) fn note(&mut self, who: &str, what: String) {
        let at = self.elapsed();
        self.trace.push(format!("{:>4}.{:03} {who:<11} {what}", at.as_secs(), at.subsec_millis()));
    }

    pub(super) fn count(&mut self, what: &'static str, times: u64) {
        *self.tally.entry(what).or_default() += times;
    }

    pub(super) fn enqueue(&mut self, at: Instant, message: Message) {
        self.sequence += 1;
        self.queue.insert((at, self.sequence), message);
    }

    /// A message's delay on the wire: short, and while faults last now and then long (past
    /// the agent's patience: the request lands after it gave up).
    pub(super) fn delay(&self) -> Duration {
        if !self.faulty() {
            return self.dice.millis(1, 40);
        }
        match self.dice.below(100) {
            0..=84 => self.dice.millis(1, 40),
            85..=96 => self.dice.millis(40, 1_500),
            _ => self.dice.millis(1_500, 8_000),
        }
    }

    /// Runs the seed: until every task ended after the faults stopped, or the bound.
    pub async fn run(mut self) -> Outcome {
        let shapes: Vec<String> = self
            .schedule
            .tasks
            .iter()
            .map(|task| format!("1+{} steps, timeout {} s, {} attempts", task.acceptance, task.timeout_sec, task.max_attempts))
            .collect();
        let acts: Vec<String> = self.schedule.acts.iter().map(|(at, act)| format!("{:.3} {act:?}", at.as_secs_f64())).collect();
        self.note(
            "seed",
            format!(
                "{} agents; tasks [{}]; faults until {:.3} s",
                self.agents.len(),
                shapes.join("; "),
                self.schedule.faults_end.as_secs_f64()
            ),
        );
        for act in acts {
            self.note("schedule", act);
        }
        let end = self.started + self.schedule.faults_end + SETTLE_BOUND;
        let mut turns = 0u64;
        loop {
            turns += 1;
            let now = Instant::now();
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let message = entry.remove();
                self.handle(message).await;
                if self.checks.violation.is_some() {
                    return self.finish();
                }
            }
            for index in 0..self.agents.len() {
                self.agent_turn(index);
            }
            if turns.is_multiple_of(UPKEEP_EVERY_TURNS) {
                self.upkeep().await;
            }
            self.check_beliefs();
            if self.checks.violation.is_some() {
                return self.finish();
            }
            if !self.faulty() && self.settled() {
                break;
            }
            if now >= end || turns >= MAX_TURNS {
                break;
            }
            let next = self.next_wake().min(end).max(now + Duration::from_millis(1));
            tokio::time::advance(next - now).await;
        }
        let statuses = self.core().db.with_connection(|connection| {
            let mut statement = connection.prepare("SELECT status FROM tasks ORDER BY created_at, task_id").expect("task statuses");
            let statuses = statement.query_map([], |row| row.get::<_, String>(0)).expect("task statuses");
            statuses.collect::<Result<Vec<_>, _>>().expect("task statuses")
        });
        self.note("end", format!("tasks {}", statuses.join(", ")));
        for status in &statuses {
            match status.as_str() {
                "succeeded" => self.count("task succeeded", 1),
                "failed" => self.count("task failed", 1),
                "canceled" => self.count("task canceled", 1),
                _ => {}
            }
        }
        let phases: Vec<RunPhase> = self
            .agents
            .iter()
            .flat_map(|agent| agent.host.borrow().runs.iter().map(|run| run.machine.phase()).collect::<Vec<_>>())
            .collect();
        self.count("run timed out", phases.iter().filter(|phase| **phase == RunPhase::TimedOut).count() as u64);
        self.count("run canceled", phases.iter().filter(|phase| **phase == RunPhase::Canceled).count() as u64);
        self.note("end", format!("{turns} turns"));
        // Logs exact as they stand (rows and objects), then once every run is compacted.
        self.final_checks().await;
        for _ in 0..100 {
            if !self.upkeep().await {
                break;
            }
        }
        self.final_checks().await;
        self.finish()
    }

    fn finish(mut self) -> Outcome {
        if let Some(violation) = &self.checks.violation {
            let line = format!("{}: {}", violation.guarantee, violation.detail);
            self.note("BROKEN", line);
        }
        Outcome { violation: self.checks.violation, trace: self.trace, syncs: self.syncs, tally: self.tally }
    }

    fn next_wake(&self) -> Instant {
        let mut wakes: Vec<Instant> = self.queue.keys().next().map(|(at, _)| *at).into_iter().collect();
        let now = Instant::now();
        for agent in &self.agents {
            if let Some(until) = agent.down_until.or((agent.stalled_until > now).then_some(agent.stalled_until)) {
                wakes.push(until);
                continue;
            }
            wakes.extend(agent.host.borrow().next_wake());
            wakes.extend(agent.stopping.map(|stopping| stopping.grace_until));
            match (&agent.in_flight, &agent.conductor) {
                (Some(flight), _) => wakes.push(flight.gives_up_at),
                (None, Some(conductor)) => wakes.push(Instant::from_std(conductor.next_wake(Instant::now().into_std()))),
                (None, None) => {}
            }
        }
        wakes.into_iter().min().unwrap_or_else(Instant::now)
    }

    /// Every task ended, every agent is up with nothing to send, every run shipped its logs.
    fn settled(&self) -> bool {
        if self.task_ids.iter().any(Option::is_none) {
            return false;
        }
        let ended = self.core().db.with_connection(|connection| {
            connection
                .query_row("SELECT COUNT(*) FROM tasks WHERE status NOT IN ('succeeded', 'failed', 'blocked', 'canceled')", [], |row| {
                    row.get::<_, i64>(0)
                })
                .expect("count open tasks")
                == 0
        });
        ended
            && self.agents.iter().all(|agent| {
                let host = agent.host.borrow();
                let reports = host.outbox.take();
                agent.down_until.is_none()
                    && agent.stalled_until <= Instant::now()
                    && agent.stopping.is_none()
                    && agent.in_flight.is_none()
                    && reports.runs.is_empty()
                    && reports.completions.is_empty()
                    && reports.failures.is_empty()
                    && reports.logs.is_empty()
                    && reports.checkpoints.is_empty()
                    && host.runs.iter().all(|run| {
                        let cursor = run.machine.cursor();
                        run.machine.is_finished()
                            && cursor.in_flight.is_empty()
                            && [LogStream::Stdout, LogStream::Stderr, LogStream::Worker]
                                .into_iter()
                                .all(|stream| cursor.offset(stream) as usize == run.file(stream).len())
                    })
            })
    }

    async fn final_checks(&mut self) {
        let bound = SETTLE_BOUND.as_secs();
        let checks = &mut self.checks;
        self.core.as_ref().expect("the control plane").db.with_connection(|connection| checks.at_end(connection, bound));
        let mut runs = Vec::new();
        for agent in &self.agents {
            for run in &agent.host.borrow().runs {
                let meta = run.machine.meta();
                for stream in [LogStream::Stdout, LogStream::Stderr, LogStream::Worker] {
                    runs.push((meta.task_id.clone(), meta.run_id.clone(), stream, run.file(stream).to_vec()));
                }
            }
        }
        for (task_id, run_id, stream, written) in runs {
            let stored = self.stored_log(&task_id, &run_id, stream).await;
            self.checks.on_log(&run_id, stream.as_str(), &written, &stored);
        }
    }

    fn check_beliefs(&mut self) {
        let now = Instant::now().into_std();
        let leading: Vec<(&str, Option<i64>)> = self
            .agents
            .iter()
            .map(|agent| (agent.node_id.as_str(), agent.conductor.as_ref().and_then(|conductor| conductor.lease.leading_term(now))))
            .collect();
        self.checks.on_beliefs(&leading);
    }

    async fn handle(&mut self, message: Message) {
        match message {
            Message::Request { agent, life, id, request } => self.deliver_request(agent, life, id, *request).await,
            Message::Answer { agent, life, id, answer } => self.deliver_answer(agent, life, id, *answer),
            Message::Act(act) => self.act(act).await,
        }
    }

    pub(super) fn check_database(&mut self) {
        let core = self.core.as_ref().expect("the control plane");
        let checks = &mut self.checks;
        core.db.with_connection(|connection| checks.on_database(connection));
    }
}
