//! The agents of a simulated fleet: each the real conductor around a simulated host, its syncs
//! carried by the world. An agent's turn: it comes back from a crash and adopts its runs, its
//! runs move on, a sync it gave up on fails, a sync that is due goes out; an answer that comes
//! back feeds the conductor.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use shared::wire::{AgentSyncRequest, AgentSyncResponse};
use tokio::time::Instant;

use super::control_plane::describe_request;
use super::world::{Message, World, LEASE_TTL_SEC};
use crate::client::{ClientError, ControlPlane};
use crate::conductor::{Conductor, SyncKind, SyncSent};
use crate::runner::machine::sim_host::{SimHost, SimSeats};

/// The conductors' plane: never called, the world carries their syncs.
pub(super) struct Carried;

impl ControlPlane for Carried {
    async fn sync(&self, _request: &AgentSyncRequest) -> Result<AgentSyncResponse, ClientError> {
        Err(ClientError::Unreachable("the simulation carries every sync".into()))
    }
}

pub(super) struct InFlight {
    pub(super) id: u64,
    pub(super) sync: SyncSent,
    pub(super) gives_up_at: Instant,
    /// The release of the lease on shutdown, not a sync.
    pub(super) release: bool,
}

/// An agent told to stop (SIGTERM): it releases the lease, drains its runs' reports for at
/// most the shutdown grace, then is down for `down_for`.
#[derive(Clone, Copy)]
pub(super) struct Stopping {
    pub(super) grace_until: Instant,
    pub(super) down_for: Duration,
}

pub(super) struct Agent {
    pub(super) node_id: String,
    pub(super) config: crate::config::AgentConfig,
    pub(super) host: Rc<RefCell<SimHost>>,
    /// `None` while the agent is down.
    pub(super) conductor: Option<Conductor<Carried>>,
    pub(super) down_until: Option<Instant>,
    pub(super) cut_until: Instant,
    /// Stopped until then: no turn, answers wait.
    pub(super) stalled_until: Instant,
    /// Startup syncs left before ticking (the checklist's registration).
    pub(super) startup_tries: u32,
    pub(super) in_flight: Option<InFlight>,
    pub(super) stopping: Option<Stopping>,
    /// Which life of the agent a message belongs to: answers to an earlier one are lost.
    pub(super) life: u64,
}

pub(super) fn agent_config(index: usize) -> crate::config::AgentConfig {
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

impl World {
    /// One agent's turn: it comes back if its downtime is over, its runs move on, a sync it
    /// gave up on fails, and a sync that is due goes out.
    pub(super) fn agent_turn(&mut self, index: usize) {
        let now = Instant::now();
        let wall = self.wall();
        let node = self.agents[index].node_id.clone();
        if now < self.agents[index].stalled_until {
            return;
        }
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
            let timed_out = Err(ClientError::Unreachable("timed out".into()));
            if flight.release {
                conductor.end_release(flight.sync, timed_out);
            } else {
                conductor.end_sync(flight.sync, timed_out);
                agent.startup_tries = agent.startup_tries.saturating_sub(1);
            }
            agent.host.borrow_mut().turn(wall);
            self.note(&node, format!("sync#{} gave up: no answer", flight.id));
            self.count("sync given up", 1);
        }
        let agent = &mut self.agents[index];
        let conductor = agent.conductor.as_mut().expect("a running agent");
        if let (Some(stopping), None) = (agent.stopping, &agent.in_flight) {
            // Drained, or out of grace: the process exits; runs still going are adopted by
            // the next life.
            if !conductor.seats.busy() || now >= stopping.grace_until {
                agent.conductor = None;
                agent.stopping = None;
                agent.down_until = Some(now + stopping.down_for);
                self.drain_log(index);
                self.note(&node, format!("stopped; back in {:.3} s", stopping.down_for.as_secs_f64()));
                return;
            }
        }
        if agent.in_flight.is_none() && conductor.lease.attempt_due(now.into_std()) {
            let kind = match (agent.stopping, agent.startup_tries) {
                (Some(_), _) => SyncKind::Draining,
                (None, 0) => SyncKind::Tick,
                (None, _) => SyncKind::Startup,
            };
            let mut sync = conductor.begin_sync(now.into_std(), kind);
            // A held answer is a long delay: the world's delays stand for it.
            sync.request.hold_ms = 0;
            self.sequence += 1;
            let id = self.sequence;
            let request = sync.request.clone();
            let gives_up_at = now + agent.config.sync_timeout();
            let cut = now < agent.cut_until;
            let life = agent.life;
            agent.in_flight = Some(InFlight { id, sync, gives_up_at, release: false });
            self.note(&node, format!("sync#{id} sent: {}", describe_request(&request, kind)));
            self.send(index, life, id, request, cut);
        }
        let agent = &mut self.agents[index];
        if let Some(conductor) = agent.conductor.as_mut() {
            conductor.log_transition(now.into_std());
        }
        self.drain_log(index);
    }

    /// The agent is told to stop (SIGTERM): the sync in flight is given up (what it carried
    /// stays in the outbox), the lease is released if held, then the runs drain.
    pub(super) fn stop_agent(&mut self, index: usize, down_for: Duration) {
        let now = Instant::now();
        let agent = &mut self.agents[index];
        let node = agent.node_id.clone();
        if agent.down_until.is_some() || agent.stopping.is_some() || now < agent.stalled_until {
            return;
        }
        agent.stopping = Some(Stopping { grace_until: now + agent.config.runner.shutdown_grace, down_for });
        agent.in_flight = None;
        let conductor = agent.conductor.as_mut().expect("a running agent");
        let release = conductor.begin_release(now.into_std());
        self.note(&node, "told to stop".into());
        if let Some(release) = release {
            self.sequence += 1;
            let id = self.sequence;
            let agent = &mut self.agents[index];
            let request = release.request.clone();
            let (cut, life) = (now < agent.cut_until, agent.life);
            agent.in_flight = Some(InFlight { id, sync: release, gives_up_at: now + agent.config.sync_timeout(), release: true });
            self.note(&node, format!("sync#{id} sent: release of term {}", request.lease.term.unwrap_or_default()));
            self.send(index, life, id, request, cut);
        }
        self.drain_log(index);
    }

    fn send(&mut self, agent: usize, life: u64, id: u64, request: AgentSyncRequest, cut: bool) {
        let now = Instant::now();
        let faulty = self.faulty();
        if cut || (faulty && self.dice.chance(40)) {
            self.note("net", format!("sync#{id} lost on the way"));
            self.count("request lost", 1);
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
    pub(super) fn start_agent(&mut self, index: usize) {
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
        self.count("run adopted", runs as u64);
    }

    pub(super) fn deliver_answer(&mut self, index: usize, life: u64, id: u64, answer: Result<AgentSyncResponse, ClientError>) {
        let wall = self.wall();
        let agent = &mut self.agents[index];
        if Instant::now() < agent.stalled_until {
            // Read once the agent runs again.
            let at = agent.stalled_until;
            self.enqueue(at, Message::Answer { agent: index, life, id, answer: Box::new(answer) });
            return;
        }
        let node = agent.node_id.clone();
        let current = agent.life == life && agent.in_flight.as_ref().is_some_and(|flight| flight.id == id);
        if !current {
            self.note(&node, format!("answer to sync#{id} came too late: dropped"));
            self.count("answer too late", 1);
            return;
        }
        let flight = agent.in_flight.take().expect("the sync in flight");
        let conductor = agent.conductor.as_mut().expect("a running agent");
        if flight.release {
            conductor.end_release(flight.sync, answer);
            self.note(&node, format!("sync#{id} (release) answered"));
            self.drain_log(index);
            return;
        }
        let answered = conductor.end_sync(flight.sync, answer);
        agent.startup_tries = if answered { 0 } else { agent.startup_tries.saturating_sub(1) };
        agent.host.borrow_mut().turn(wall);
        self.note(&node, format!("sync#{id} {}", if answered { "answered" } else { "failed" }));
        self.drain_log(index);
    }
}
