//! What a seed decides before the simulation starts: the tasks and when they are created, and
//! the faults — agents crashing, partitions, the control plane restarting, clock steps, mode
//! changes, cancels — at their times. Per-message faults (a request or an answer dropped,
//! delayed, duplicated) and the steps' processes are drawn as they happen, from the same seeded
//! source, so one seed is one schedule.

use std::time::Duration;

use control_worker::core::clock::{Random, SeededRandom};
use shared::status::SystemMode;
use shared::wire::ClaimedStep;

use crate::runner::machine::sim_host::Script;

/// The seeded source of every choice in one simulation.
pub struct Dice(SeededRandom);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(SeededRandom::new(seed))
    }

    /// A number in `0..n`.
    pub fn below(&self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }

    /// True `per_mille` times in a thousand.
    pub fn chance(&self, per_mille: u64) -> bool {
        self.below(1_000) < per_mille
    }

    /// A duration in `low..high` milliseconds.
    pub fn millis(&self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high.saturating_sub(low).max(1)))
    }
}

/// A fault or an operator's act, at its time.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    /// An operator creates the task with this index (see [`TaskShape`]).
    CreateTask(usize),
    /// An operator cancels the task with this index, if it was created.
    CancelTask(usize),
    SetMode(SystemMode),
    /// The agent process dies (its steps' processes go on) and comes back after `down_for`.
    Crash {
        agent: usize,
        down_for: Duration,
    },
    /// The agent is told to stop (SIGTERM, as launchd does on an upgrade): it releases the
    /// lease, drains, exits, and is started again after `down_for`.
    Restart {
        agent: usize,
        down_for: Duration,
    },
    /// The agent process is stopped (SIGSTOP) for `lasting`: it keeps its memory, its steps'
    /// processes go on, answers wait in its socket.
    Stall {
        agent: usize,
        lasting: Duration,
    },
    /// Nothing passes between the agent and the control plane for `lasting`.
    Partition {
        agent: usize,
        lasting: Duration,
    },
    /// The control plane restarts: unreachable for `down_for`, its database kept.
    RestartControlPlane {
        down_for: Duration,
    },
    /// The control plane's clock steps to `offset_ms` from true time.
    StepClock {
        offset_ms: i64,
    },
}

/// A task of the simulation: shell steps, each a simulated process.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskShape {
    /// Acceptance entries: each one more step after the goal's.
    pub acceptance: usize,
    pub timeout_sec: i64,
    /// Each step's attempts.
    pub max_attempts: i64,
}

/// The seed's plan.
pub struct Schedule {
    pub tasks: Vec<TaskShape>,
    pub acts: Vec<(Duration, Act)>,
    /// After this no fault happens: no drop, no delay beyond the usual, no crash.
    pub faults_end: Duration,
}

/// The bound on the control plane's clock offset from true time. It is below a tenth of the
/// lease TTL minus the whole-second rounding the agent's lease margin already covers, so the
/// lease's own margin absorbs any step (SPEC §5: the local deadline falls before the server's
/// expiry): two agents may never believe they lead at the same instant.
pub const MAX_CLOCK_OFFSET_MS: i64 = 400;

impl Schedule {
    pub fn draw(dice: &Dice, agents: usize) -> Schedule {
        let faults_end = dice.millis(30_000, 90_000);
        let window = faults_end.as_millis() as u64;
        let task_count = 2 + dice.below(3) as usize;
        let tasks = (0..task_count)
            .map(|_| TaskShape {
                acceptance: dice.below(2) as usize,
                timeout_sec: 4 + dice.below(27) as i64,
                max_attempts: 1 + dice.below(3) as i64,
            })
            .collect::<Vec<_>>();
        let mut acts = Vec::new();
        for task in 0..task_count {
            acts.push((dice.millis(0, window * 2 / 3), Act::CreateTask(task)));
        }
        let faults = dice.below(12);
        for _ in 0..faults {
            let at = dice.millis(0, window);
            let act = match dice.below(100) {
                0..=14 => Act::Crash { agent: dice.below(agents as u64) as usize, down_for: dice.millis(0, 25_000) },
                15..=19 => Act::Restart { agent: dice.below(agents as u64) as usize, down_for: dice.millis(0, 15_000) },
                20..=29 => Act::Stall { agent: dice.below(agents as u64) as usize, lasting: dice.millis(100, 20_000) },
                30..=54 => Act::Partition { agent: dice.below(agents as u64) as usize, lasting: dice.millis(500, 30_000) },
                55..=64 => Act::RestartControlPlane { down_for: dice.millis(100, 5_000) },
                65..=79 => Act::StepClock { offset_ms: dice.below(2 * MAX_CLOCK_OFFSET_MS as u64 + 1) as i64 - MAX_CLOCK_OFFSET_MS },
                80..=89 => Act::SetMode(if dice.chance(500) { SystemMode::Paused } else { SystemMode::Draining }),
                90..=94 => Act::SetMode(SystemMode::Running),
                _ => Act::CancelTask(dice.below(task_count as u64) as usize),
            };
            acts.push((at, act));
        }
        // Operators end what they paused or drained once the faults are over.
        acts.push((faults_end, Act::SetMode(SystemMode::Running)));
        acts.sort_by_key(|(at, _)| *at);
        Schedule { tasks, acts, faults_end }
    }
}

/// A step's simulated process, drawn by the seed: lines at intervals, then an exit (mostly 0),
/// now and then a process that ignores SIGTERM or never exits by itself.
pub fn draw_script(dice: &Dice, _step: &ClaimedStep) -> Script {
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
