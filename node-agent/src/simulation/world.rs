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

use control_worker::core::clock::{Clock, SeededRandom};
use control_worker::core::config::Config;
use control_worker::core::http::ApiRequest;
use control_worker::core::Core;
use control_worker::native::SqliteDb;
use serde_json::{json, Value};
use shared::status::{LogStream, SystemMode};
use shared::wire::{AgentSyncRequest, AgentSyncResponse, ClaimedStep};
use tokio::time::Instant;

use super::checks::{stored_log, Checks, Violation};
use super::schedule::{Act, Dice, Schedule};
use crate::client::{ClientError, ControlPlane};
use crate::clock::Now;
use crate::conductor::memory_plane::{decode, ADMIN_TOKEN, SERVICE_TOKEN, START};
use crate::conductor::{Conductor, SyncKind, SyncSent};
use crate::runner::machine::sim_host::{Script, SimHost, SimSeats};

/// The lease TTL of the simulated fleet: short, so failovers happen within a seed.
pub const LEASE_TTL_SEC: u32 = 10;
/// How long after the faults stop every task must have ended.
pub const SETTLE_BOUND: Duration = Duration::from_secs(300);
/// The loop's turns in one seed, at most: a seed that has not settled by then is stuck.
const MAX_TURNS: u64 = 400_000;

/// What one seed did.
pub struct Outcome {
    pub violation: Option<Violation>,
    pub trace: Vec<String>,
    pub syncs: u64,
}

/// The control plane's clock: true (virtual) time from [`START`], stepped by `offset_ms`, in
/// whole seconds as in production.
struct SimClock {
    started: Instant,
    offset_ms: Rc<Cell<i64>>,
}

impl Clock for SimClock {
    fn now(&self) -> i64 {
        START + ((Instant::now() - self.started).as_millis() as i64 + self.offset_ms.get()).div_euclid(1_000)
    }

    async fn sleep_ms(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await
    }
}

type SimCore = Core<SqliteDb, SimClock, SeededRandom>;

/// The conductors' plane: never called, the world carries their syncs.
struct Carried;

impl ControlPlane for Carried {
    async fn sync(&self, _request: &AgentSyncRequest) -> Result<AgentSyncResponse, ClientError> {
        Err(ClientError::Unreachable("the simulation carries every sync".into()))
    }
}

struct InFlight {
    id: u64,
    sync: SyncSent,
    gives_up_at: Instant,
}

struct Agent {
    node_id: String,
    config: crate::config::AgentConfig,
    host: Rc<RefCell<SimHost>>,
    /// `None` while the agent is down.
    conductor: Option<Conductor<Carried>>,
    down_until: Option<Instant>,
    cut_until: Instant,
    /// Startup syncs left before ticking (the checklist's registration).
    startup_tries: u32,
    in_flight: Option<InFlight>,
    /// Which life of the agent a message belongs to: answers to an earlier one are lost.
    life: u64,
}

enum Message {
    Request { agent: usize, life: u64, id: u64, request: Box<AgentSyncRequest> },
    Answer { agent: usize, life: u64, id: u64, answer: Box<Result<AgentSyncResponse, ClientError>> },
    Act(Act),
}

pub struct World {
    dice: Rc<Dice>,
    core: Option<SimCore>,
    config: Config,
    started: Instant,
    offset_ms: Rc<Cell<i64>>,
    plane_down_until: Instant,
    agents: Vec<Agent>,
    queue: BTreeMap<(Instant, u64), Message>,
    sequence: u64,
    schedule: Schedule,
    task_ids: Vec<Option<String>>,
    checks: Checks,
    trace: Vec<String>,
    syncs: u64,
    seed: u64,
}

fn agent_config(index: usize) -> crate::config::AgentConfig {
    let raw = crate::cli::RawArgs {
        node_id: Some(format!("host{index}-main")),
        role: Some(if index == 0 { "primary" } else { "standby" }.into()),
        host: Some(format!("host{index}")),
        control_api_base: Some("http://simulated".into()),
        lease_ttl_sec: Some(LEASE_TTL_SEC.to_string()),
        lease_renew_interval_ms: Some("1000".into()),
        ..crate::cli::RawArgs::default()
    };
    crate::config::AgentConfig::resolve(&raw, |_| None).expect("the simulated agent's configuration")
}

/// A step's simulated process, drawn by the seed: lines at intervals, then an exit (mostly 0),
/// now and then a process that ignores SIGTERM or never exits by itself.
fn draw_script(dice: &Dice, _step: &ClaimedStep) -> Script {
    let lines = dice.below(9);
    let mut at = Duration::ZERO;
    let mut prints = Vec::new();
    for line in 0..lines {
        at += dice.millis(0, 3_000);
        prints.push((at, format!("line {line} {}\n", "x".repeat(dice.below(60) as usize))));
    }
    let exits = match dice.below(100) {
        0..=4 => None,
        code => Some((at + dice.millis(0, 4_000), if code < 85 { 0 } else { 1 + (code % 3) as i64 })),
    };
    Script { prints, exits, ignores_sigterm: dice.chance(150) }
}

impl World {
    pub fn new(seed: u64, agent_count: usize) -> World {
        let dice = Rc::new(Dice::new(seed));
        let schedule = Schedule::draw(&dice, agent_count);
        let pairs = [
            ("BAA_SHARED_TOKEN", SERVICE_TOKEN),
            ("CONTROL_API_BROWSER_ADMIN_TOKEN", ADMIN_TOKEN),
            ("CONTROL_API_STEP_HEARTBEAT_TTL_SEC", "15"),
        ];
        let (config, _) = Config::from_pairs(&pairs).expect("the simulated control plane's configuration");
        let started = Instant::now();
        let offset_ms = Rc::new(Cell::new(0));
        let db = SqliteDb::open_in_memory().expect("SQLite in memory");
        let core = Core::new(db, SimClock { started, offset_ms: offset_ms.clone() }, SeededRandom::new(seed), config.clone());
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
                    startup_tries: 0,
                    in_flight: None,
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
            seed,
        };
        for (at, act) in world.schedule.acts.clone() {
            world.enqueue(started + at, Message::Act(act));
        }
        world
    }

    fn core(&self) -> &SimCore {
        self.core.as_ref().expect("the control plane")
    }

    fn elapsed(&self) -> Duration {
        Instant::now() - self.started
    }

    fn wall(&self) -> Now {
        Now { at: Instant::now().into_std(), wall_ms: START * 1_000 + self.elapsed().as_millis() as i64 }
    }

    fn faulty(&self) -> bool {
        self.elapsed() < self.schedule.faults_end
    }

    fn note(&mut self, who: &str, what: String) {
        let at = self.elapsed();
        self.trace.push(format!("{:>4}.{:03} {who:<11} {what}", at.as_secs(), at.subsec_millis()));
    }

    fn enqueue(&mut self, at: Instant, message: Message) {
        self.sequence += 1;
        self.queue.insert((at, self.sequence), message);
    }

    /// A message's delay on the wire: short, and while faults last now and then long (past
    /// the agent's patience: the request lands after it gave up).
    fn delay(&self) -> Duration {
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
        self.note("end", format!("{turns} turns"));
        self.final_checks();
        self.finish()
    }

    fn finish(mut self) -> Outcome {
        if let Some(violation) = &self.checks.violation {
            let line = format!("{}: {}", violation.guarantee, violation.detail);
            self.note("BROKEN", line);
        }
        Outcome { violation: self.checks.violation, trace: self.trace, syncs: self.syncs }
    }

    fn next_wake(&self) -> Instant {
        let mut wakes: Vec<Instant> = self.queue.keys().next().map(|(at, _)| *at).into_iter().collect();
        for agent in &self.agents {
            if let Some(until) = agent.down_until {
                wakes.push(until);
                continue;
            }
            wakes.extend(agent.host.borrow().next_wake());
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

    fn final_checks(&mut self) {
        let bound = SETTLE_BOUND.as_secs();
        let core = self.core.as_ref().expect("the control plane");
        let checks = &mut self.checks;
        core.db.with_connection(|connection| {
            checks.at_end(connection, bound);
            for agent in &self.agents {
                for run in &agent.host.borrow().runs {
                    let run_id = &run.machine.meta().run_id;
                    for stream in [LogStream::Stdout, LogStream::Stderr, LogStream::Worker] {
                        let stored = stored_log(connection, run_id, stream.as_str());
                        checks.on_log(run_id, stream.as_str(), run.file(stream), &stored);
                    }
                }
            }
        });
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

    /// One agent's turn: it comes back if its downtime is over, its runs move on, a sync it
    /// gave up on fails, and a sync that is due goes out.
    fn agent_turn(&mut self, index: usize) {
        let now = Instant::now();
        let wall = self.wall();
        let node = self.agents[index].node_id.clone();
        match self.agents[index].down_until {
            Some(until) if now < until => return,
            Some(_) => self.start_agent(index),
            None => {}
        }
        let agent = &mut self.agents[index];
        agent.host.borrow_mut().turn(wall);
        let conductor = agent.conductor.as_mut().expect("a running agent");
        if std::mem::take(&mut agent.host.borrow_mut().wake) {
            conductor.sync_soon();
        }
        if agent.in_flight.as_ref().is_some_and(|flight| now >= flight.gives_up_at) {
            let flight = agent.in_flight.take().expect("a sync in flight");
            conductor.end_sync(flight.sync, Err(ClientError::Unreachable("timed out".into())));
            agent.startup_tries = agent.startup_tries.saturating_sub(1);
            agent.host.borrow_mut().turn(wall);
            self.note(&node, format!("sync#{} gave up: no answer", flight.id));
        }
        let agent = &mut self.agents[index];
        let conductor = agent.conductor.as_mut().expect("a running agent");
        if agent.in_flight.is_none() && conductor.lease.attempt_due(now.into_std()) {
            let kind = if agent.startup_tries > 0 { SyncKind::Startup } else { SyncKind::Tick };
            let mut sync = conductor.begin_sync(now.into_std(), kind);
            // A held answer is a long delay: the world's delays stand for it.
            sync.request.hold_ms = 0;
            self.sequence += 1;
            let id = self.sequence;
            let request = sync.request.clone();
            let gives_up_at = now + agent.config.sync_timeout();
            let cut = now < agent.cut_until;
            let life = agent.life;
            agent.in_flight = Some(InFlight { id, sync, gives_up_at });
            self.note(&node, format!("sync#{id} sent: {}", describe_request(&request, kind)));
            self.send(index, life, id, request, cut);
        }
        let agent = &mut self.agents[index];
        if let Some(conductor) = agent.conductor.as_mut() {
            conductor.log_transition(now.into_std());
        }
        self.drain_log(index);
    }

    fn send(&mut self, agent: usize, life: u64, id: u64, request: AgentSyncRequest, cut: bool) {
        let now = Instant::now();
        let faulty = self.faulty();
        if cut || (faulty && self.dice.chance(40)) {
            self.note("net", format!("sync#{id} lost on the way"));
            return;
        }
        let at = now + self.delay();
        if faulty && self.dice.chance(30) {
            let again = at + self.dice.millis(1, 6_000);
            self.enqueue(again, Message::Request { agent, life, id, request: Box::new(request.clone()) });
        }
        self.enqueue(at, Message::Request { agent, life, id, request: Box::new(request) });
    }

    fn drain_log(&mut self, index: usize) {
        let node = self.agents[index].node_id.clone();
        for line in crate::log::take_lines() {
            self.note(&node, format!("| {line}"));
        }
    }

    /// The agent (re)starts: a new conductor, and its runs adopted from what its last life
    /// wrote to disk.
    fn start_agent(&mut self, index: usize) {
        let now = Instant::now();
        let wall = self.wall();
        let started = self.started;
        let agent = &mut self.agents[index];
        agent.down_until = None;
        agent.life += 1;
        agent.in_flight = None;
        agent.startup_tries = agent.config.renew_failure_threshold;
        agent.host.borrow_mut().restart(wall);
        let mut conductor = Conductor::new(agent.config.clone(), Carried, now.into_std());
        conductor.seats = Box::new(SimSeats(agent.host.clone(), started));
        agent.conductor = Some(conductor);
        let (node, runs) = (agent.node_id.clone(), agent.host.borrow().runs.len());
        self.drain_log(index);
        self.note(&node, format!("started (life {}), {runs} run(s) on disk", self.agents[index].life));
    }

    async fn handle(&mut self, message: Message) {
        match message {
            Message::Request { agent, life, id, request } => self.deliver_request(agent, life, id, *request).await,
            Message::Answer { agent, life, id, answer } => self.deliver_answer(agent, life, id, *answer),
            Message::Act(act) => self.act(act).await,
        }
    }

    async fn deliver_request(&mut self, agent: usize, life: u64, id: u64, request: AgentSyncRequest) {
        let node = self.agents[agent].node_id.clone();
        let now = Instant::now();
        let answer = if now < self.plane_down_until {
            self.note("plane", format!("sync#{id} from {node} refused: restarting"));
            Err(ClientError::Unreachable("connection refused".into()))
        } else {
            let body = serde_json::to_value(&request).expect("a request serialises");
            let response = self.core().handle(ApiRequest::json("POST", "/v1/agents/sync", SERVICE_TOKEN, Some(&body))).await;
            self.syncs += 1;
            if response.status >= 500 {
                self.checks.violation.get_or_insert(Violation {
                    guarantee: "no 500",
                    detail: format!("sync#{id} from {node}: {} {}", response.status, String::from_utf8_lossy(&response.body)),
                });
            }
            let answer = decode::<AgentSyncResponse>(&response);
            match &answer {
                Ok(answer) => {
                    self.note("plane", format!("sync#{id} from {node}: {}", describe_answer(answer)));
                    self.checks.on_sync(&request, answer);
                }
                Err(error) => self.note("plane", format!("sync#{id} from {node}: {error}")),
            }
            self.check_database();
            answer
        };
        let cut = now < self.agents[agent].cut_until;
        if cut || (self.faulty() && self.dice.chance(40)) {
            self.note("net", format!("answer to sync#{id} lost on the way"));
            return;
        }
        let at = now + self.delay();
        self.enqueue(at, Message::Answer { agent, life, id, answer: Box::new(answer) });
    }

    fn deliver_answer(&mut self, index: usize, life: u64, id: u64, answer: Result<AgentSyncResponse, ClientError>) {
        let wall = self.wall();
        let agent = &mut self.agents[index];
        let node = agent.node_id.clone();
        let current = agent.life == life && agent.in_flight.as_ref().is_some_and(|flight| flight.id == id);
        if !current {
            self.note(&node, format!("answer to sync#{id} came too late: dropped"));
            return;
        }
        let flight = agent.in_flight.take().expect("the sync in flight");
        let conductor = agent.conductor.as_mut().expect("a running agent");
        let answered = conductor.end_sync(flight.sync, answer);
        agent.startup_tries = if answered { 0 } else { agent.startup_tries.saturating_sub(1) };
        agent.host.borrow_mut().turn(wall);
        self.note(&node, format!("sync#{id} {}", if answered { "answered" } else { "failed" }));
        self.drain_log(index);
    }

    fn check_database(&mut self) {
        let core = self.core.as_ref().expect("the control plane");
        let checks = &mut self.checks;
        core.db.with_connection(|connection| checks.on_database(connection));
    }

    /// An operator's call, as a browser would make it.
    async fn admin(&mut self, method: &str, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        let response = self.core().handle(ApiRequest::json(method, path, ADMIN_TOKEN, body.as_ref())).await;
        if response.status >= 500 {
            self.checks.violation.get_or_insert(Violation {
                guarantee: "no 500",
                detail: format!("{method} {path}: {} {}", response.status, String::from_utf8_lossy(&response.body)),
            });
        }
        let answer = decode::<Value>(&response);
        self.check_database();
        answer
    }

    async fn act(&mut self, act: Act) {
        let now = Instant::now();
        let operator_call = matches!(act, Act::CreateTask(_) | Act::CancelTask(_) | Act::SetMode(_));
        if operator_call && now < self.plane_down_until {
            // The operator tries again once it is back, in the order they acted.
            self.enqueue(self.plane_down_until, Message::Act(act));
            return;
        }
        match act {
            Act::CreateTask(index) => {
                let shape = self.schedule.tasks[index].clone();
                let acceptance: Vec<String> = (0..shape.acceptance).map(|n| format!("test {n}")).collect();
                let body = json!({
                    "repo": "/srv/repo", "task_type": "shell", "title": format!("task {index}"), "goal": format!("work {index}"),
                    "acceptance": acceptance,
                    "constraints": {"timeout_sec": shape.timeout_sec, "max_attempts": shape.max_attempts},
                });
                match self.admin("POST", "/v1/tasks", Some(body)).await {
                    Ok(created) => {
                        let task_id = created["task_id"].as_str().unwrap_or_default().to_string();
                        self.note("operator", format!("created task {index}: {task_id}"));
                        self.task_ids[index] = Some(task_id);
                    }
                    Err(error) => {
                        self.checks.violation.get_or_insert(Violation { guarantee: "tasks accepted", detail: error.to_string() });
                    }
                }
            }
            Act::CancelTask(index) => {
                let Some(task_id) = self.task_ids[index].clone() else { return };
                let answer = self.admin("POST", &format!("/v1/tasks/{task_id}/cancel"), Some(json!({}))).await;
                self.note(
                    "operator",
                    format!("cancel task {index}: {}", answer.map(|_| "done".to_string()).unwrap_or_else(|error| error.to_string())),
                );
            }
            Act::SetMode(mode) => {
                let path = match mode {
                    SystemMode::Paused => "/v1/system/pause",
                    SystemMode::Draining => "/v1/system/drain",
                    SystemMode::Running => "/v1/system/resume",
                };
                let answer = self.admin("POST", path, Some(json!({}))).await;
                self.note(
                    "operator",
                    format!("mode {mode}: {}", answer.map(|_| "done".to_string()).unwrap_or_else(|error| error.to_string())),
                );
            }
            Act::Crash { agent, down_for } => {
                let target = &mut self.agents[agent];
                let until = now + down_for;
                target.down_until = Some(target.down_until.map_or(until, |earlier| earlier.max(until)));
                target.conductor = None;
                target.in_flight = None;
                let node = target.node_id.clone();
                self.note(&node, format!("crashed; back in {:.3} s", down_for.as_secs_f64()));
            }
            Act::Partition { agent, lasting } => {
                let target = &mut self.agents[agent];
                target.cut_until = target.cut_until.max(now + lasting);
                let node = target.node_id.clone();
                self.note("net", format!("{node} cut off for {:.3} s", lasting.as_secs_f64()));
            }
            Act::RestartControlPlane { down_for } => {
                let old = self.core.take().expect("the control plane");
                let clock = SimClock { started: self.started, offset_ms: self.offset_ms.clone() };
                let random = SeededRandom::new(self.seed ^ self.sequence);
                self.core = Some(Core::new(old.db, clock, random, self.config.clone()));
                self.plane_down_until = self.plane_down_until.max(now + down_for);
                self.note("plane", format!("restarting; back in {:.3} s", down_for.as_secs_f64()));
            }
            Act::StepClock { offset_ms } => {
                self.offset_ms.set(offset_ms);
                self.note("plane", format!("clock stepped to {offset_ms:+} ms"));
            }
        }
    }
}

fn describe_request(request: &AgentSyncRequest, kind: SyncKind) -> String {
    let term = request.lease.term.map(|term| format!(" term {term}")).unwrap_or_default();
    let chunks: usize = request.logs.iter().map(|logs| logs.chunks.len()).sum();
    format!(
        "{kind:?}{term}, {} run(s), {} completion(s), {} failure(s), {chunks} chunk(s), {} plan(s), room {}",
        request.runs.len(),
        request.completions.len(),
        request.failures.len(),
        request.plans.len(),
        request.capacity
    )
}

fn describe_answer(answer: &AgentSyncResponse) -> String {
    let lease = &answer.lease;
    let mut text = format!(
        "lease {} term {} ({:?}{}), mode {}",
        lease.holder_id.as_deref().unwrap_or("free"),
        lease.term,
        lease.operation,
        if lease.is_leader { ", leads" } else { "" },
        answer.mode
    );
    for grant in &answer.granted {
        text.push_str(&format!("; granted {} attempt {} as {}", grant.step.step_id, grant.attempt, grant.run_id));
    }
    if !answer.claimed_tasks.is_empty() {
        text.push_str(&format!(
            "; claimed {}",
            answer.claimed_tasks.iter().map(|task| task.task_id.as_str()).collect::<Vec<_>>().join(",")
        ));
    }
    for (kind, verdicts) in [("completion", &answer.completions), ("failure", &answer.failures), ("plan", &answer.plans)] {
        for verdict in verdicts {
            text.push_str(&format!("; {kind} {} {:?}", verdict.id, verdict.verdict));
        }
    }
    if let Some(reaped) = &answer.reaped {
        for step in &reaped.reaped {
            text.push_str(&format!("; reaped {step:?}"));
        }
    }
    text
}
