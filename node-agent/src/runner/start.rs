//! How a run begins: a claimed step prepared (run directory, worktree, command) and its
//! process started, or a run left by an earlier agent adopted.

use std::path::{Path, PathBuf};

use serde_json::json;
use shared::status::{CheckpointType, StepKind};
use shared::wire::{ClaimedStep, RunFailure};

use super::command::{self, CommandError, TemplateValues};
use super::machine::RunMachine;
use super::process::{self, StepCommand};
use super::run::{log_sizes, ActiveRun};
use super::run_dir::{read_json, write_json_atomic, RunDir, RunMeta, RunPhase, RunState};
use super::shipper::ShipCursor;
use super::{checkpoints, delivery, feedback, worktree};
use super::{wall_ms, RunnerShared};
use crate::clock::Now;
use crate::log::log;

/// The summary of a setup step with nothing to run.
pub const NOTHING_TO_SET_UP: &str = "nothing to set up: no executable .baa/setup in the repository and no constraints.setup";

/// The repository's own setup (SPEC §13): an executable `.baa/setup` in the worktree.
fn repository_setup(worktree: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = worktree.join(".baa/setup");
    let executable = std::fs::metadata(&path).is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0);
    executable.then(|| "./.baa/setup".to_string())
}

/// An agent step that shows no progress for this long is stopped as stalled (SPEC §13).
pub const DEFAULT_AGENT_STALL_AFTER_SEC: i64 = 600;

/// What `meta.json` says of a claimed step before its worktree is prepared.
pub fn run_meta(claimed: &ClaimedStep, worker_id: &str, host: &str, worktree: PathBuf, now_ms: i64) -> RunMeta {
    let (task, step) = (&claimed.task, &claimed.step);
    RunMeta {
        task_id: task.task_id.clone(),
        step_id: step.step_id.clone(),
        run_id: claimed.run_id.clone(),
        attempt: claimed.attempt,
        step_index: step.step_index,
        step_kind: step.step_kind,
        worker_kind: step.worker_kind.clone(),
        title: step.title.clone(),
        timeout_sec: step.timeout_sec,
        worker_id: worker_id.to_string(),
        host: host.to_string(),
        repo: task.repo.clone(),
        base_ref: task.base_ref.clone(),
        branch_name: task.branch_name.clone(),
        worktree,
        base_sha: None,
        base_commit: task.base_commit.clone(),
        base_branch: None,
        task_title: task.title.clone(),
        deliver_remote: (step.step_kind == StepKind::Deliver).then(|| delivery::remote(task).to_string()),
        shell_command: None,
        prepared_at_ms: now_ms,
        write_scope: task.write_scope.clone(),
        allow_no_change: task.constraints.get("allow_no_change").and_then(|value| value.as_bool()).unwrap_or(false),
        stall_after_sec: task
            .constraints
            .get("stall_after_sec")
            .and_then(|value| value.as_i64())
            .or((step.step_kind == StepKind::Agent).then_some(DEFAULT_AGENT_STALL_AFTER_SEC)),
    }
}

/// Prepares a claimed step (run directory, worktree, command) and starts its process.
pub(super) async fn prepare(shared: &RunnerShared, claimed: ClaimedStep) -> Option<ActiveRun> {
    let settings = &shared.settings;
    let (task, step) = (&claimed.task, &claimed.step);
    let now = wall_ms();
    let dir = RunDir::new(&settings.runs_dir, &task.task_id, &claimed.run_id);
    let worktree_path = settings.worktrees_dir.join(&task.task_id);
    let mut meta = run_meta(&claimed, &settings.worker_id, &settings.host, worktree_path.clone(), now);
    if let Err(error) = dir.create() {
        // Without a run directory nothing can be kept: say so and let the retry policy decide.
        log!("run {}: cannot create {}: {error}", claimed.run_id, dir.root.display());
        shared.outbox.borrow_mut().put_failure(RunFailure {
            step_id: step.step_id.clone(),
            run_id: claimed.run_id.clone(),
            error: format!("the runner could not create its run directory: {error}"),
            ..RunFailure::default()
        });
        shared.wake.notify_one();
        return None;
    }
    dir.event(now, "run_prepared", json!({"task_id": task.task_id, "step_id": step.step_id, "attempt": claimed.attempt, "worker_id": settings.worker_id, "host": settings.host}));
    let mut failure: Option<(RunPhase, String)> = None;
    let request = worktree::WorktreeRequest {
        repo: &task.repo,
        mirrors_dir: &settings.mirrors_dir,
        worktrees_dir: &settings.worktrees_dir,
        task_id: &task.task_id,
        branch: &task.branch_name,
        base_ref: &task.base_ref,
        base_commit: task.base_commit.as_deref(),
        first_step: step.step_index == 0,
    };
    let prepared = {
        let _git = shared.git_lock.lock().await;
        worktree::prepare(&request).await
    };
    match prepared {
        Ok(worktree) => {
            meta.base_sha = Some(worktree.start_commit);
            meta.base_commit = Some(worktree.base_commit);
            meta.base_branch = worktree.base_branch;
        }
        Err(error) => {
            failure = Some((if error.is_permanent() { RunPhase::Blocked } else { RunPhase::Failed }, format!("worktree: {error}")))
        }
    }
    if failure.is_none() {
        let (report_file, feedback_file, usage_file) = (
            dir.agent_report().to_string_lossy().into_owned(),
            dir.feedback().to_string_lossy().into_owned(),
            dir.usage().to_string_lossy().into_owned(),
        );
        let (goal_file, worktree_text, run_dir_text) = (
            dir.goal().to_string_lossy().into_owned(),
            worktree_path.to_string_lossy().into_owned(),
            dir.root.to_string_lossy().into_owned(),
        );
        let values = TemplateValues {
            goal_file: &goal_file,
            worktree: &worktree_text,
            task_id: &task.task_id,
            step_id: &step.step_id,
            run_id: &claimed.run_id,
            run_dir: &run_dir_text,
            report_file: &report_file,
            feedback_file: &feedback_file,
            usage_file: &usage_file,
        };
        let command = match step.step_kind {
            StepKind::Deliver => match delivery::command(task, &meta, &dir, settings.options.pr_command.as_deref()).await {
                Ok(command) => Some(command),
                Err(error) => {
                    failure = Some((RunPhase::Blocked, error.to_string()));
                    None
                }
            },
            StepKind::Setup => match step.command.clone().or_else(|| repository_setup(&worktree_path)) {
                Some(command) => Some(command),
                None => {
                    // Nothing to run: the step ends at once, succeeded.
                    failure = Some((RunPhase::Succeeded, NOTHING_TO_SET_UP.into()));
                    None
                }
            },
            StepKind::Merge => match super::merge::sources(&step.metadata) {
                Ok(sources) => Some(super::merge::merge_command(&sources, &settings.git_author)),
                Err(error) => {
                    failure = Some((RunPhase::Blocked, error.to_string()));
                    None
                }
            },
            _ => step.command.clone(),
        };
        // A deliver or merge step refused above keeps its reason.
        if failure.is_none() {
            match command::shell_command(step.step_kind, &step.step_id, command.as_deref(), settings.agent_template().as_deref(), &values) {
                Ok(shell_command) => meta.shell_command = Some(shell_command),
                Err(error @ CommandError::NoAgentTemplate) => failure = Some((RunPhase::Blocked, error.to_string())),
                Err(error) => failure = Some((RunPhase::Failed, error.to_string())),
            }
        }
        if step.step_kind == StepKind::Agent {
            let goal = step.prompt.clone().unwrap_or_else(|| task.goal.clone());
            if let Err(error) = super::run_dir::write_atomic(&dir.goal(), goal.as_bytes()) {
                failure = Some((RunPhase::Failed, format!("writing the goal file: {error}")));
            }
            let feedback = step.metadata.get("feedback");
            let output = feedback.and_then(|feedback| feedback["run_id"].as_str()).and_then(|run_id| {
                let failed = RunDir::new(&settings.runs_dir, &task.task_id, run_id);
                checkpoints::list(&failed.checkpoints())
                    .into_iter()
                    .find(|file| file.checkpoint_type == CheckpointType::TestOutput)
                    .and_then(|file| std::fs::read_to_string(file.path).ok())
            });
            if let Err(error) = super::run_dir::write_atomic(&dir.feedback(), feedback::text(feedback, output.as_deref()).as_bytes()) {
                failure = Some((RunPhase::Failed, format!("writing the feedback file: {error}")));
            }
        }
    }
    if let Err(error) = write_json_atomic(&dir.meta(), &meta) {
        log!("run {}: writing meta.json: {error}", meta.run_id);
    }
    // Recorded before the process starts: an agent that dies in between leaves a run that its
    // successor settles as not started.
    if let Err(error) = write_json_atomic(&dir.state(), &RunState::prepared(now)) {
        log!("run {}: writing state.json: {error}", meta.run_id);
    }
    let timing = settings.run_timing();
    if let Some(failure) = failure {
        let machine = RunMachine::started(meta, timing, Now::read(), Err(failure));
        return Some(ActiveRun { dir, machine, child: None });
    }
    let mut env = vec![
        ("BAA_TASK_ID", meta.task_id.clone()),
        ("BAA_STEP_ID", meta.step_id.clone()),
        ("BAA_RUN_ID", meta.run_id.clone()),
        ("BAA_ATTEMPT", meta.attempt.to_string()),
        ("BAA_WORKTREE", meta.worktree.to_string_lossy().into_owned()),
        ("BAA_RUN_DIR", dir.root.to_string_lossy().into_owned()),
        ("BAA_ARTIFACTS_DIR", dir.artifacts().to_string_lossy().into_owned()),
        ("BAA_FAILURE_FILE", dir.failure_reason().to_string_lossy().into_owned()),
    ];
    if meta.step_kind == StepKind::Agent {
        env.push(("BAA_GOAL_FILE", dir.goal().to_string_lossy().into_owned()));
        env.push(("BAA_REPORT_FILE", dir.agent_report().to_string_lossy().into_owned()));
        env.push(("BAA_FEEDBACK_FILE", dir.feedback().to_string_lossy().into_owned()));
        env.push(("BAA_USAGE_FILE", dir.usage().to_string_lossy().into_owned()));
    }
    let (stdout, stderr, exit_status) = (dir.stdout_log(), dir.stderr_log(), dir.exit_status());
    let shell_command = meta.shell_command.clone().unwrap_or_default();
    let sandbox = match settings.sandbox.as_ref().filter(|_| super::sandboxing::runs_repository_code(meta.step_kind)) {
        None => Ok(Vec::new()),
        Some(base) => super::sandboxing::wrap(base, &settings.agent_exec, &meta.worktree, &dir, &mut env),
    };
    let spawned = sandbox.and_then(|wrapper| {
        process::spawn(&StepCommand {
            wrapper,
            shell_command: &shell_command,
            worktree: &meta.worktree,
            stdout: &stdout,
            stderr: &stderr,
            exit_status: &exit_status,
            env,
        })
    });
    let (process, child) = match spawned {
        Ok(child) => {
            let pid = child.id().map(|pid| pid as i32);
            (Ok((pid, pid.and_then(crate::platform::process_start))), Some(child))
        }
        Err(error) => (Err((RunPhase::Failed, format!("could not start the process: {error}"))), None),
    };
    let machine = RunMachine::started(meta, timing, Now::read(), process);
    Some(ActiveRun { dir, machine, child })
}

/// Picks up a run left by an earlier agent. A live process is adopted; a run that never got
/// its process is settled as failed; everything else resumes where `state.json` says.
pub(super) fn adopt(shared: &RunnerShared, root: &Path) -> Result<ActiveRun, String> {
    let meta: RunMeta = read_json(&root.join("meta.json")).map_err(|error| format!("no readable meta.json: {error}"))?;
    if meta.worker_id != shared.settings.worker_id {
        return Err(format!("run of worker {}, not of this node ({})", meta.worker_id, shared.settings.worker_id));
    }
    let dir = RunDir { root: root.to_path_buf() };
    let state: RunState = read_json(&dir.state()).unwrap_or_else(|_| RunState::prepared(meta.prepared_at_ms));
    let cursor: ShipCursor = read_json(&dir.ship()).unwrap_or_default();
    let pid = state.pid.unwrap_or(0);
    let alive = state.status == RunPhase::Running
        && process::is_alive(pid)
        && match (&state.process_identity, crate::platform::process_start(pid)) {
            (Some(recorded), Some(now)) => *recorded == now,
            _ => true,
        };
    let timing = shared.settings.run_timing();
    let machine = RunMachine::adopted(meta, state, cursor, timing, Now::read(), log_sizes(&dir), alive);
    Ok(ActiveRun { dir, machine, child: None })
}
