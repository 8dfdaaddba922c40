//! A simulated host for the run machine's tests: the real conductor and the real control plane
//! in memory ([`crate::conductor::memory_plane`]) under tokio's paused clock, with runs that are
//! real [`RunMachine`]s around scripted processes (output at given times, an exit code, whether
//! SIGTERM is heeded) and log files held in memory. This plays the driver's part — files,
//! signals, the outbox — with nothing real but the machine, the outbox, the conductor and the
//! control plane, so a whole run (timeouts, cancels, outages, restarts) runs in virtual time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use shared::status::LogStream;
use shared::wire::{AgentSyncResponse, ClaimedStep, LogChunkUpload, RunCompletion, RunFailure, RunLogs};
use tokio::time::Instant;

use super::{LogSizes, RunAction, RunMachine, RunTiming};
use crate::clock::Now;
use crate::conductor::memory_plane::{MemoryPlane, START};
use crate::conductor::{clock_now, Conductor, Room, Seats};
use crate::runner::ladder::Signal;
use crate::runner::outbox::{Outbox, RunReports};
use crate::runner::outcome::ProcessEnd;
use crate::runner::run_dir::{RunPhase, RunState};
use crate::runner::shipper::{plan_batch, ShipCursor, StreamInput, MAX_BATCH_TEXT_BYTES};

pub const TIMING: RunTiming = RunTiming {
    heartbeat_interval: Duration::from_secs(10),
    ship_interval: Duration::from_secs(1),
    kill_grace: Duration::from_secs(5),
    log_ship_limit_bytes: 50 * 1024 * 1024,
};

/// What a simulated step's process does, in time since it started.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub prints: Vec<(Duration, String)>,
    /// When it exits by itself, and with which code; never, if `None`.
    pub exits: Option<(Duration, i64)>,
    pub ignores_sigterm: bool,
}

/// One run on the simulated host: its machine, its process, and what its driver would keep
/// on disk (the three log files, `state.json`, `ship.json`).
pub struct SimRun {
    pub machine: RunMachine,
    pub started: Instant,
    pub script: Script,
    pub printed: usize,
    pub files: [Vec<u8>; 3],
    /// The process ended (a signal, or by itself), not yet told to the machine.
    pub ended: Option<ProcessEnd>,
    pub signals: Vec<(Duration, Signal)>,
    pub saved_state: Option<RunState>,
    pub saved_cursor: ShipCursor,
}

impl SimRun {
    pub fn file(&self, stream: LogStream) -> &[u8] {
        match stream {
            LogStream::Stdout => &self.files[0],
            LogStream::Stderr => &self.files[1],
            LogStream::Worker => &self.files[2],
        }
    }

    fn sizes(&self) -> LogSizes {
        LogSizes { stdout: self.files[0].len() as u64, stderr: self.files[1].len() as u64, worker: self.files[2].len() as u64 }
    }

    /// What stdout holds: everything the process printed.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.files[0]).into_owned()
    }

    /// The process's output and exit up to now.
    fn advance_process(&mut self) {
        let elapsed = Instant::now() - self.started;
        while self.ended.is_none() && self.printed < self.script.prints.len() && self.script.prints[self.printed].0 <= elapsed {
            self.files[0].extend_from_slice(self.script.prints[self.printed].1.as_bytes());
            self.printed += 1;
        }
        if let (true, Some((at, code))) = (self.ended.is_none(), self.script.exits) {
            if at <= elapsed {
                self.ended = Some(ProcessEnd { recorded_exit: Some(code), ..ProcessEnd::default() });
            }
        }
    }

    pub fn process_alive(&self) -> bool {
        self.ended.is_none() && self.machine.watching_process()
    }
}

/// Draws the script of a step granted.
pub type ScriptMaker = Box<dyn FnMut(&ClaimedStep) -> Script>;

#[derive(Default)]
pub struct SimHost {
    pub runs: Vec<SimRun>,
    pub outbox: Outbox,
    /// Scripts for the next steps granted, in order.
    pub scripts: VecDeque<Script>,
    /// The script of a step granted when `scripts` has none left (the simulation's, chosen by
    /// its seed).
    pub make_script: Option<ScriptMaker>,
    pub capacity: i64,
    pub wake: bool,
    /// The node and host the runs are started by (`mini-main` on `mini` when empty).
    pub node_id: String,
    pub host_name: String,
}

/// Both clocks of the simulation: tokio's virtual instant, and a wall clock that follows it
/// from the control plane's start.
pub fn sim_now(plane: &MemoryPlane) -> Now {
    wall_from(plane.started)
}

fn wall_from(started: Instant) -> Now {
    Now { at: clock_now(), wall_ms: START * 1_000 + (Instant::now() - started).as_millis() as i64 }
}

/// The simulated host as the conductor's runner; the instant is the control plane's start.
#[derive(Clone)]
pub struct SimSeats(pub Rc<RefCell<SimHost>>, pub Instant);

impl Seats for SimSeats {
    fn room(&self) -> Room {
        let host = self.0.borrow();
        let holding = host.runs.iter().filter(|run| !run.machine.holds_no_slot()).count() as i64;
        Room {
            capacity: (host.capacity - holding).max(0),
            worker_kinds: vec!["shell".into()],
            disk_low: false,
            step_heartbeat_ttl_sec: None,
            account: None,
            agent_cli: None,
            sandbox: None,
        }
    }

    fn reports(&self) -> RunReports {
        self.0.borrow().outbox.take()
    }

    fn settle(&self, sent: &RunReports, answer: &AgentSyncResponse) {
        self.0.borrow_mut().outbox.settle(sent, answer);
    }

    fn busy(&self) -> bool {
        self.0.borrow().runs.iter().any(|run| !run.machine.is_finished())
    }

    fn start(&self, step: ClaimedStep) {
        let mut host = self.0.borrow_mut();
        let now = wall_from(self.1);
        let (node_id, host_name) = match host.node_id.is_empty() {
            true => ("mini-main".to_string(), "mini".to_string()),
            false => (host.node_id.clone(), host.host_name.clone()),
        };
        let meta = crate::runner::start::run_meta(&step, &node_id, &host_name, "/sim/worktree".into(), now.wall_ms);
        // The simulated repository has no `.baa/setup`: a setup step ends at once, as the
        // runner's does, and takes no script.
        let (script, process) = if step.step.step_kind == shared::status::StepKind::Setup {
            (Script::default(), Err((RunPhase::Succeeded, crate::runner::start::NOTHING_TO_SET_UP.to_string())))
        } else {
            let script = match (host.scripts.pop_front(), host.make_script.as_mut()) {
                (Some(script), _) => script,
                (None, Some(make)) => make(&step),
                (None, None) => Script::default(),
            };
            (script, Ok((Some(4_000 + host.runs.len() as i32), None)))
        };
        let machine = RunMachine::started(meta, TIMING, now, process);
        let run = SimRun {
            machine,
            started: Instant::now(),
            script,
            printed: 0,
            files: Default::default(),
            ended: None,
            signals: Vec::new(),
            saved_state: None,
            saved_cursor: ShipCursor::default(),
        };
        host.runs.push(run);
    }
}

impl SimHost {
    /// One driver turn for every run: the processes move on to `now`, then each machine hears
    /// the sizes, the exit, the news and the time, and its actions are performed.
    pub fn turn(&mut self, now: Now) {
        for index in 0..self.runs.len() {
            let news = {
                let run_id = self.runs[index].machine.meta().run_id.clone();
                self.outbox.take_news(&run_id)
            };
            let run = &mut self.runs[index];
            run.advance_process();
            run.machine.handle_sizes(now, run.sizes());
            if let (Some(end), true) = (run.ended.clone(), run.machine.watching_process()) {
                run.machine.handle_exit(now, end);
            }
            run.machine.handle_news(now, news);
            run.machine.handle_timeout(now);
            self.wake |= perform(run, &mut self.outbox, now);
        }
    }

    /// The earliest instant a run or a process has something to do.
    pub fn next_wake(&self) -> Option<Instant> {
        let mut wakes = Vec::new();
        for run in &self.runs {
            wakes.extend(run.machine.poll_timeout().map(Instant::from_std));
            if run.process_alive() {
                wakes.extend(run.script.prints.get(run.printed).map(|(at, _)| run.started + *at));
                wakes.extend(run.script.exits.map(|(at, _)| run.started + at));
                if run.ended.is_some() {
                    wakes.push(Instant::now());
                }
            }
        }
        wakes.into_iter().min()
    }

    /// The agent crashed (or was down) and a new one adopts its runs from what was on disk; the
    /// processes went on meanwhile.
    pub fn restart(&mut self, now: Now) {
        self.outbox = Outbox::default();
        // A run whose `state.json` was never written is no run to adopt (its process was
        // never started).
        self.runs.retain(|run| run.saved_state.is_some());
        for run in &mut self.runs {
            run.advance_process();
            let state = run.saved_state.clone().expect("state.json was written");
            let alive = run.ended.is_none();
            run.machine = RunMachine::adopted(run.machine.meta().clone(), state, run.saved_cursor.clone(), TIMING, now, run.sizes(), alive);
        }
    }
}

/// Performs a run's actions as its driver would; whether the conductor should sync soon.
fn perform(run: &mut SimRun, outbox: &mut Outbox, now: Now) -> bool {
    let mut wake = false;
    let run_id = run.machine.meta().run_id.clone();
    while let Some(action) = run.machine.poll_action() {
        match action {
            RunAction::SaveState => run.saved_state = Some(run.machine.state().clone()),
            RunAction::SaveCursor => run.saved_cursor = run.machine.cursor().clone(),
            RunAction::Event { name, detail, .. } => run.files[2].extend_from_slice(format!("{name} {detail}\n").as_bytes()),
            RunAction::Log(_) | RunAction::KillLeftovers => {}
            RunAction::Signal(signal) => {
                run.signals.push((Instant::now() - run.started, signal));
                if run.ended.is_none() && (signal == Signal::Kill || !run.script.ignores_sigterm) {
                    let number = if signal == Signal::Kill { 9 } else { 15 };
                    run.ended = Some(ProcessEnd { wrapper_signal: Some(number), ..ProcessEnd::default() });
                }
            }
            RunAction::Beat(beat) => outbox.put_beat(beat),
            RunAction::EndBeat => outbox.end_beat(&run_id),
            RunAction::MoreOutput(more) => outbox.set_more_output(&run_id, more),
            RunAction::TakeOutput { flush, allowance } => {
                let cursor = run.machine.cursor().clone();
                let inputs: Vec<StreamInput<'_>> = [LogStream::Stdout, LogStream::Stderr, LogStream::Worker]
                    .into_iter()
                    .map(|stream| {
                        let from = cursor.offset(stream) as usize;
                        let bytes = &run.file(stream)[from..run.file(stream).len().min(from + MAX_BATCH_TEXT_BYTES)];
                        StreamInput { stream, offset: from as u64, bytes, flush_partial: flush }
                    })
                    .collect();
                let (batch, limited) = plan_batch(cursor.next_seq, &inputs, allowance);
                run.machine.handle_output_taken(now, batch, limited);
            }
            RunAction::SendOutput => {
                let chunks = run
                    .machine
                    .cursor()
                    .in_flight
                    .iter()
                    .map(|range| LogChunkUpload {
                        seq: range.seq,
                        stream: range.stream,
                        text: String::from_utf8_lossy(&run.file(range.stream)[range.from as usize..range.to as usize]).into_owned(),
                    })
                    .collect();
                outbox.put_logs(RunLogs { step_id: run.machine.meta().step_id.clone(), run_id: run_id.clone(), chunks });
            }
            RunAction::CheckScope => run.machine.handle_scope_checked(now, Ok(Vec::new())),
            RunAction::Commit => run.machine.handle_committed(now, Ok(None), false),
            RunAction::SampleActivity => run.machine.handle_activity(now, Default::default()),
            RunAction::WriteCheckpoints => run.machine.handle_checkpoints_written(now, Ok((0, 0))),
            RunAction::QueueReport => {
                let (meta, outcome) = (run.machine.meta(), run.machine.state().outcome.clone().expect("an outcome"));
                let (step_id, run_id) = (meta.step_id.clone(), meta.run_id.clone());
                if outcome.phase == RunPhase::Succeeded {
                    let summary = outcome.message.clone();
                    outbox.put_completion(RunCompletion {
                        step_id,
                        run_id,
                        summary,
                        exit_code: 0,
                        result: None,
                        task_result: None,
                        report: None,
                        usage: None,
                    });
                } else {
                    outbox.put_failure(RunFailure {
                        step_id,
                        run_id,
                        error: outcome.message.clone(),
                        exit_code: outcome.exit_code,
                        timed_out: outcome.phase == RunPhase::TimedOut,
                        ..RunFailure::default()
                    });
                }
                run.machine.handle_report_queued(now);
            }
            RunAction::Wake => wake = true,
        }
    }
    wake
}

/// Runs the conductor and the simulated host together for `duration` of virtual time. With
/// `answering` false the control plane accepts the conductor's syncs and never answers: the
/// conductor is stuck in its request, the runs go on.
pub async fn run_for(
    conductor: &mut Conductor<&MemoryPlane>,
    host: &Rc<RefCell<SimHost>>,
    plane: &MemoryPlane,
    duration: Duration,
    answering: bool,
) {
    let until = Instant::now() + duration;
    loop {
        let mut next = host.borrow().next_wake().unwrap_or(until).min(until);
        if answering {
            next = next.min(Instant::from_std(conductor.next_wake(clock_now())));
        }
        tokio::time::sleep_until(next.max(Instant::now())).await;
        host.borrow_mut().turn(sim_now(plane));
        if answering {
            if std::mem::take(&mut host.borrow_mut().wake) {
                conductor.sync_soon();
            }
            conductor.tick(clock_now()).await;
            host.borrow_mut().turn(sim_now(plane));
        }
        if Instant::now() >= until {
            break;
        }
    }
}
