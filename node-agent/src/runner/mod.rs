//! The worker runner: claims ready steps for this host and runs each as a real process in
//! the task's git worktree, keeping everything in a durable run directory and shipping logs
//! and checkpoints to the control plane. Runs on every host, leader or not.
//!
//! - [`settings`]: the runner's settings, from the agent's configuration.
//! - [`run_dir`]: the run directory, atomic writes, `meta.json` / `state.json` types.
//! - [`mirror`]: the host's copy of a repository: the path itself, or a mirror of a URL.
//! - [`worktree`]: the task's git worktree, reset to its branch, and a diff against a commit.
//! - [`branch`]: a commit per step on the task's branch; the task's result from the branch.
//! - [`delivery`]: a deliver step's command and report; a run's reading of the task's result.
//! - [`merge`]: an `integrate` task's merge step as one shell command. Pure.
//! - [`housekeeping`]: worktree and run-directory retention, the free-disk guard. Pure rules.
//! - [`command`]: what a step runs (goal, acceptance command, coding-agent template). Pure.
//! - [`sandboxing`]: which steps run sandboxed, and the launcher and policy of one.
//! - [`feedback`]: what a coding agent's next round is told of the last one. Pure.
//! - [`process`]: the step's process group, signals, liveness.
//! - [`ladder`]: timeout and cancellation as SIGTERM, grace, SIGKILL. Pure.
//! - [`outcome`]: how a run ended. Pure.
//! - [`limits`]: usage-limit messages in a coding agent's output and their reset times. Pure.
//! - [`stall`]: a step's progress (output, worktree, CPU time) and when it counts as stalled. Pure.
//! - [`shipper`]: log files → ordered, idempotent chunks. Pure planning.
//! - [`checkpoints`]: summary, git diff, log tail, test output.
//! - [`outbox`]: what the runs tell the control plane, waiting for the next sync, and the
//!   verdicts that came back. No I/O.
//! - [`start`]: a claimed step prepared and started, or a run adopted after a restart.
//! - [`machine`]: one run as a state machine, from start or adoption to its terminal state:
//!   the stop ladder, heartbeats, shipping, the ending, the verdicts. No I/O, no clock.
//! - [`run`]: one run's driver: the I/O around its machine.
//! - [`report`]: the ending's work on the host: the commit, the checkpoints, the report.
//! - this file: the runner's room and the start of granted steps (the conductor's syncs bring
//!   them), startup reconciliation, housekeeping, the board of runs for the snapshot.

pub mod branch;
pub mod checkpoints;
pub mod command;
pub mod delivery;
pub mod feedback;
pub mod housekeeping;
pub mod ladder;
pub mod limits;
pub mod machine;
pub mod merge;
pub mod mirror;
pub mod outbox;
pub mod outcome;
pub mod process;
pub mod report;
pub mod run;
pub mod run_dir;
pub mod sandboxing;
pub mod settings;
pub mod shipper;
pub mod stall;
pub mod start;
pub mod worktree;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Serialize;
use shared::status::StepKind;
use shared::wire::ClaimedStep;
use tokio::sync::Notify;

use crate::log::log;
use crate::status::snapshot::{RunInFlight, RunnerStatus};
use run_dir::{read_json, RunPhase, RunState};
pub use settings::RunnerSettings;

/// Finished runs kept on the board for the status page.
const RECENT_RUNS: usize = 20;

pub use crate::clock::wall_ms;

/// What the status page shows of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub task_id: String,
    pub step_id: String,
    pub title: String,
    pub step_kind: StepKind,
    pub phase: RunPhase,
    pub pid: Option<i32>,
    pub started_at_ms: Option<i64>,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub last_output_age_ms: i64,
    pub shipped_chunks: i64,
    pub outcome: Option<String>,
    pub finished_at_ms: Option<i64>,
}

pub struct RunnerShared {
    pub settings: RunnerSettings,
    pub board: RefCell<BTreeMap<String, RunView>>,
    /// What the runs have to tell the control plane, and what came back.
    pub outbox: RefCell<outbox::Outbox>,
    /// Told when a run's process ends or a run has something to report: the conductor syncs at
    /// once (the host has room, and the task's next step may be waiting).
    pub wake: Rc<Notify>,
    /// Told when verdicts came back: every run looks at its news.
    pub news: Notify,
    /// One git operation at a time on the host's repositories: fetches and `worktree add`
    /// take locks that concurrent runs of the same repository would trip over.
    pub git_lock: tokio::sync::Mutex<()>,
    active: Cell<usize>,
    /// Runs whose process has ended and that are only settling: they hold no slot.
    exited: Cell<usize>,
    /// `Some(free bytes)` while the disk is below `min_free_disk`.
    disk_low: Cell<Option<u64>>,
    claimed_total: Cell<u64>,
}

#[derive(Clone)]
pub struct Runner {
    shared: Rc<RunnerShared>,
}

/// What startup found in the runs directory.
#[derive(Debug, Default)]
pub struct Reconciled {
    pub adopted: usize,
    pub settling: usize,
    pub skipped: Vec<String>,
}

impl Runner {
    pub fn new(settings: RunnerSettings) -> Runner {
        Runner {
            shared: Rc::new(RunnerShared {
                settings,
                board: RefCell::default(),
                outbox: RefCell::default(),
                wake: Rc::new(Notify::new()),
                news: Notify::new(),
                git_lock: tokio::sync::Mutex::new(()),
                active: Cell::new(0),
                exited: Cell::new(0),
                disk_low: Cell::new(None),
                claimed_total: Cell::new(0),
            }),
        }
    }

    pub fn wake_handle(&self) -> Rc<Notify> {
        self.shared.wake.clone()
    }

    /// Run directories whose run has not reached a terminal state (or whose state cannot be
    /// read), in path order.
    pub fn load_runs(&self) -> Vec<PathBuf> {
        unfinished_runs(&self.shared.settings.runs_dir)
    }

    /// Adopts or resumes each unfinished run on the local task set; their drivers settle them
    /// with the control plane.
    pub fn reconcile(&self, unfinished: &[PathBuf]) -> Reconciled {
        let mut reconciled = Reconciled::default();
        for root in unfinished {
            match start::adopt(&self.shared, root) {
                Ok(active) => {
                    if active.machine.phase() == RunPhase::Running {
                        reconciled.adopted += 1;
                    } else {
                        reconciled.settling += 1;
                    }
                    self.start_driver(async move { Some(active) });
                }
                Err(reason) => {
                    log!("run {}: left alone: {reason}", root.display());
                    reconciled.skipped.push(format!("{}: {reason}", root.display()));
                }
            }
        }
        reconciled
    }

    fn start_driver(&self, active: impl std::future::Future<Output = Option<run::ActiveRun>> + 'static) {
        let shared = self.shared.clone();
        shared.active.set(shared.active.get() + 1);
        tokio::task::spawn_local(async move {
            if let Some(active) = active.await {
                run::drive(shared.clone(), active).await;
            }
            shared.active.set(shared.active.get().saturating_sub(1));
            let mut board = shared.board.borrow_mut();
            let finished: Vec<String> = board.values().filter(|view| view.phase.is_terminal()).map(|view| view.run_id.clone()).collect();
            for run_id in finished.iter().take(finished.len().saturating_sub(RECENT_RUNS)) {
                board.remove(run_id);
            }
            drop(board);
            shared.wake.notify_one();
        });
    }

    /// Sweeps old worktrees and run directories until shutdown (steps come from the conductor's
    /// syncs, through [`Seats::start`]); then waits up to the shutdown grace for running steps
    /// to finish. Steps still running then are left running: their output goes on into the run
    /// directory and the next agent adopts them.
    pub async fn run(&self, shutdown: crate::shutdown::Shutdown) {
        let settings = &self.shared.settings;
        if settings.options.capacity == 0 {
            log!("runner: off (capacity 0)");
        }
        let sweep_every = housekeeping::sweep_interval(settings.options.worktree_retention, settings.options.runs_retention);
        while !shutdown.is_triggered() {
            self.sweep().await;
            tokio::select! {
                _ = tokio::time::sleep(sweep_every) => {}
                _ = shutdown.clone().wait() => {}
            }
        }
        let deadline = crate::clock::now() + settings.options.shutdown_grace;
        while self.shared.active.get() > 0 && crate::clock::now() < deadline {
            let _ = tokio::time::timeout_at(deadline.into(), self.shared.wake.notified()).await;
        }
        if self.shared.active.get() > 0 {
            log!(
                "runner: {} run(s) still going after the shutdown grace; left running for the next agent to adopt",
                self.shared.active.get()
            );
        }
    }

    /// Measures the free disk where the worktrees are; below `min_free_disk` no claims, said
    /// once in the log and for as long as it lasts in the status.
    fn disk_allows_claims(&self) -> bool {
        let settings = &self.shared.settings;
        let free = crate::platform::free_disk_bytes(&settings.worktrees_dir);
        let allows = housekeeping::disk_allows_claims(free, settings.options.min_free_disk_bytes);
        let was_low = self.shared.disk_low.get().is_some();
        if !allows && !was_low {
            log!(
                "runner: free disk {} bytes is below min_free_disk {} bytes: not claiming steps",
                free.unwrap_or(0),
                settings.options.min_free_disk_bytes
            );
        } else if allows && was_low {
            log!("runner: free disk is back above min_free_disk: claiming again");
        }
        self.shared.disk_low.set(if allows { None } else { free });
        allows
    }

    async fn sweep(&self) {
        let settings = &self.shared.settings;
        let active: std::collections::BTreeSet<String> =
            self.shared.board.borrow().values().filter(|view| !view.phase.is_terminal()).map(|view| view.task_id.clone()).collect();
        let swept = {
            let _git = self.shared.git_lock.lock().await;
            housekeeping::sweep(
                &settings.worktrees_dir,
                &settings.runs_dir,
                &active,
                wall_ms(),
                settings.options.worktree_retention,
                settings.options.runs_retention,
            )
            .await
        };
        for path in &swept.worktrees {
            log!("housekeeping: removed worktree {} (past worktree_retention; its branch stays)", path.display());
        }
        if !swept.run_dirs.is_empty() {
            log!("housekeeping: removed {} run director(ies) past runs_retention", swept.run_dirs.len());
        }
    }

    pub fn snapshot(&self) -> RunnerStatus {
        let board = self.shared.board.borrow();
        let (finished, in_flight): (Vec<&RunView>, Vec<&RunView>) = board.values().partition(|view| view.phase.is_terminal());
        let mut recent: Vec<RunView> = finished.into_iter().cloned().collect();
        recent.sort_by_key(|view| std::cmp::Reverse(view.finished_at_ms));
        let settings = &self.shared.settings;
        let warnings: Vec<String> = self
            .shared
            .disk_low
            .get()
            .into_iter()
            .map(|free| {
                format!(
                    "free disk {free} bytes is below min_free_disk {} bytes: this host claims no steps",
                    settings.options.min_free_disk_bytes
                )
            })
            .chain(settings.agent_cli.as_ref().and_then(|cli| cli.warning.clone()))
            .collect();
        RunnerStatus {
            warnings,
            disk_low: self.shared.disk_low.get().is_some(),
            min_free_disk_bytes: settings.options.min_free_disk_bytes,
            capacity: settings.options.capacity,
            active: self.shared.active.get(),
            claimed_total: self.shared.claimed_total.get(),
            worker_kinds: settings.worker_kinds(),
            agent_command_set: settings.options.agent_command.is_some(),
            agent_cli: settings.agent_cli_line(),
            sandbox: settings.sandbox_line.clone(),
            runs: in_flight.into_iter().map(with_cpu).collect(),
            recent,
        }
    }
}

/// The conductor asks the runner for its room before each sync and hands it the steps the
/// control plane granted.
impl crate::conductor::Seats for Runner {
    fn room(&self) -> crate::conductor::Room {
        let settings = &self.shared.settings;
        // A run whose process has ended holds no slot while it settles: the next step (of its
        // own task, often) can be granted in the very sync that carries its outcome.
        let holding = self.shared.active.get().saturating_sub(self.shared.exited.get());
        let free = settings.options.capacity.saturating_sub(holding);
        // The disk is measured only when there is room to fill.
        let disk_low = free > 0 && !self.disk_allows_claims();
        crate::conductor::Room {
            capacity: if disk_low { 0 } else { free as i64 },
            worker_kinds: settings.worker_kinds(),
            disk_low,
            step_heartbeat_ttl_sec: Some(settings.step_heartbeat_ttl_sec),
            account: Some(settings.options.agent_account.clone()),
            agent_cli: settings.agent_cli_line(),
            sandbox: Some(settings.sandbox_line.clone()),
        }
    }

    fn reports(&self) -> outbox::RunReports {
        self.shared.outbox.borrow().take()
    }

    fn settle(&self, sent: &outbox::RunReports, answer: &shared::wire::AgentSyncResponse) {
        self.shared.outbox.borrow_mut().settle(sent, answer);
        self.shared.news.notify_waiters();
    }

    fn busy(&self) -> bool {
        self.shared.active.get() > 0
    }

    fn start(&self, step: ClaimedStep) {
        log!("runner: claimed {} (run {}, attempt {})", step.step.step_id, step.run_id, step.attempt);
        self.shared.claimed_total.set(self.shared.claimed_total.get() + 1);
        let shared = self.shared.clone();
        self.start_driver(async move { start::prepare(&shared, step).await });
    }
}

/// A run in flight as the snapshot shows it, with the CPU time its process group has spent
/// so far: measured when asked (the status page, `/v1/status`), never on the run's own loop.
fn with_cpu(view: &RunView) -> RunInFlight {
    let cpu_ms = view.pid.filter(|_| view.phase == RunPhase::Running).and_then(crate::platform::group_cpu_ms);
    RunInFlight { view: view.clone(), cpu_ms }
}

/// Run directories (`<runs>/<task_id>/<run_id>/`) whose `state.json` is not terminal or cannot
/// be read.
pub fn unfinished_runs(runs_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(runs_dir) else { return found };
    for task in tasks.flatten().filter(|entry| entry.path().is_dir()) {
        let Ok(runs) = std::fs::read_dir(task.path()) else { continue };
        for run in runs.flatten().filter(|entry| entry.path().is_dir()) {
            let finished = read_json::<RunState>(&run.path().join("state.json")).is_ok_and(|state| state.status.is_terminal());
            if !finished {
                found.push(run.path());
            }
        }
    }
    found.sort();
    found
}
