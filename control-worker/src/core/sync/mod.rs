//! `agents.sync` (SPEC §14): everything one agent tick has to say and to hear, in one batch of
//! at most [`MAX_SYNC_STATEMENTS`] statements (D1 allows 50 queries in one request).
//!
//! - [`input`]: the validated body.
//! - [`pace`]: `next_sync_ms`, a pure function of what the sync found.
//! - `batch`: the sync's statements, and the placement of items while they fit.
//! - [`hold`]: a quiet standby's answer held until the lease changes hands.
//! - this file: what goes into the batch, in order, and the answer read from its rows.
//!
//! The batch, in order: the heartbeat (written only when a fact changed or the row is getting
//! old), the lease (acquire or renew, release, or a look), the mode; then what the host reports
//! about its runs — the checkpoints of runs that end in this sync, then completions and
//! failures (they free the host and ready the next steps; each only with all its run's
//! checkpoints), heartbeats of the runs it holds, other checkpoints, logs; then, when the caller sent the
//! term it believes it leads in, the leader's writes — plans of tasks it claimed, reaping,
//! claiming queued tasks — each fenced in SQL by that term *as renewed a few statements
//! earlier in the same batch*; last, the steps granted to this host, which can include a step
//! readied or planned by this very batch. Items that do not fit are answered `deferred` and
//! nothing of them is written. Every statement is one of the single-purpose routes' own: the
//! sync adds no SQL of its own but the heartbeat's write-if-changed.

mod batch;
pub mod hold;
mod input;
pub mod pace;

use super::blobs::Blobs;
use shared::status::{LeaderWrites, LeaseOperation, LeaseWish, RunStatus, StepStatus, SystemMode, Verdict};
use shared::wire::{AgentSyncResponse, ItemVerdict, Lease, LeaseDecision, StepsReaped};
use shared::ErrorCode;

use super::clock::{Clock, Random};
use super::controllers::sync_upsert;
use super::db::{Db, Row, Statement};
use super::error::{ApiError, ApiResult};
use super::events;
use super::grants::{self, ClaimAsk};
use super::input::Fields;
use super::lease::{acquire_statements, acquired, empty_lease, release_statements, SELECT_LEASE_SQL};
use super::planning::{claim_tasks_statements, plan_statements, CLAIM_TASKS_STATEMENTS};
use super::reap::{reap_statements, reaped, ReapStatements};
use super::records;
use super::run_reports::{self as reports, CheckpointOutcome};
use super::system::SELECT_MODE_SQL;
use super::{Call, Core, Reply};
use batch::{place, place_where, Batch, Placed};
use input::RunItem;
use pace::{next_sync_ms, PaceFacts};

pub const MAX_SYNC_STATEMENTS: usize = 50;
/// Tasks the leader claims for planning in one sync.
pub const CLAIM_TASKS_PER_SYNC: i64 = 5;

// A run's step and run statuses after the batch, for the verdicts of completions and failures.
const RUN_STANDING_SQL: &str = "SELECT r.run_id, r.worker_id, r.status AS run_status, s.status AS step_status, \
       s.current_run_id FROM runs r JOIN steps s ON s.step_id = r.step_id WHERE r.run_id = ?1 AND r.step_id = ?2";

fn deferred(id: &str) -> ItemVerdict {
    let mut verdict = ItemVerdict::new(id, Verdict::Deferred);
    verdict.message = Some("this sync's batch had no room left; send it again".into());
    verdict
}

fn stale(id: &str, why: String) -> ItemVerdict {
    let mut verdict = ItemVerdict::new(id, Verdict::Stale);
    verdict.code = Some(ErrorCode::Conflict);
    verdict.message = Some(why);
    verdict
}

/// How a run stands after the batch.
struct Standing {
    worker_id: String,
    run_status: RunStatus,
    step_status: StepStatus,
    current_run_id: Option<String>,
}

fn standing(rows: &[Row]) -> ApiResult<Option<Standing>> {
    let Some(row) = rows.first() else { return Ok(None) };
    Ok(Some(Standing {
        worker_id: row.text("worker_id")?,
        run_status: RunStatus::parse(&row.text("run_status")?).ok_or_else(|| ApiError::internal("unknown run status"))?,
        step_status: StepStatus::parse(&row.text("step_status")?).ok_or_else(|| ApiError::internal("unknown step status"))?,
        current_run_id: row.opt_text("current_run_id")?,
    }))
}

/// The verdict on a completion or failure of `id` by `node_id`, from how its run stands.
fn settled_verdict(id: &str, node_id: &str, standing: Option<Standing>, stands: impl Fn(&Standing) -> bool) -> ItemVerdict {
    match standing {
        Some(standing) if standing.worker_id == node_id => {
            if stands(&standing) {
                let mut verdict = ItemVerdict::new(id, Verdict::Accepted);
                verdict.step_status = Some(standing.step_status);
                verdict
            } else {
                stale(
                    id,
                    format!("run {id} is no longer the current attempt (run is {}, step is {})", standing.run_status, standing.step_status),
                )
            }
        }
        _ => stale(id, format!("run {id} is not a run of this node")),
    }
}

pub async fn sync<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let input = input::read(call, &fields, core.config.default_step_heartbeat_ttl_sec)?;
    let node_id = input.facts.controller_id.clone();
    let host = input.facts.host.clone();
    let now = call.now;
    let leading_term = input.term.filter(|_| input.wish == LeaseWish::Acquire);

    let mut batch = Batch { statements: Vec::new() };
    batch.push([
        events::host_back(&host, now, core.config.host_lost_after_sec),
        sync_upsert(&input.facts, (core.config.controller_liveness_sec / 2).max(1), now),
    ]);
    let lease_at = match input.wish {
        LeaseWish::Acquire => batch.push(acquire_statements(&node_id, &host, input.ttl_sec, input.preferred, Some(leading_term), now)),
        LeaseWish::Release => batch.push(release_statements(&node_id, input.term, now)),
        LeaseWish::Keep => batch.push([Statement::new(SELECT_LEASE_SQL, vec![])]),
    };
    let mode_at = batch.push([
        Statement::new(SELECT_MODE_SQL, vec![]),
        Statement::new(super::quota::PARKED_ACCOUNTS_SQL, vec![now.into()]),
        Statement::new(events::NOTIFIED_THROUGH_SQL, vec![]),
    ]);
    // The leader's notifier: what it delivered (a fenced write), then what comes next.
    let events_at = match (leading_term, input.events_after) {
        (Some(term), Some(after)) => {
            let mut statements = Vec::new();
            if let Some(delivered) = input.events_delivered {
                statements.push(events::record_delivered(&node_id, term, now, delivered));
            }
            let rows_at = statements.len();
            statements.push(events::for_leader(&node_id, term, now, after));
            Some(batch.push(statements) + rows_at)
        }
        _ => None,
    };

    // The leader's reaping and claim, and the grant, are built first: the room they need is
    // kept free while the items are placed, and they go in last.
    let reap_marker = core.new_id("reap");
    let reap = leading_term.map(|term| reap_statements(&node_id, term, now, &reap_marker, &core.config));
    let grant = (input.capacity > 0 && !input.disk_low).then(|| {
        let ask = ClaimAsk {
            worker_id: &node_id,
            host: &host,
            capacity: input.capacity,
            worker_kinds: input.worker_kinds.clone(),
            heartbeat_ttl_sec: input.heartbeat_ttl_sec,
            account: input.account.as_deref(),
        };
        grants::claim_statements(&ask, &core.new_id("claim"), now)
    });
    // The leader's part is its reaping and one claim of queued tasks.
    let reserved = reap.as_ref().map_or(0, |reap| reap.statements.len() + CLAIM_TASKS_STATEMENTS) + grant.as_ref().map_or(0, Vec::len);

    // A run that ends in this sync has its checkpoints placed first, and its outcome only if
    // all of them were: a finished step always has its checkpoints (an outcome left out goes
    // again with them). Then the outcomes (they free the host and ready the next steps), the
    // heartbeats, the other checkpoints, the logs.
    let ending: std::collections::HashSet<&str> =
        input.completions.iter().map(|item| item.run_id.as_str()).chain(input.failures.iter().map(|item| item.run_id.as_str())).collect();
    let checkpoint_statements =
        |item: &RunItem<_>| reports::checkpoint_statements(&item.step_id, &item.run_id, &node_id, &item.report, now);
    let checkpoints = place_where(
        &mut batch,
        &input.checkpoints,
        reserved,
        |item| ending.contains(item.run_id.as_str()),
        checkpoint_statements,
        Vec::new(),
    );
    let left_out: std::collections::HashSet<&str> = input
        .checkpoints
        .iter()
        .zip(&checkpoints)
        .filter(|(item, at)| at.is_none() && ending.contains(item.run_id.as_str()))
        .map(|(item, _)| item.run_id.as_str())
        .collect();
    let has_its_checkpoints = |run_id: &str| !left_out.contains(run_id);
    let completions = place_where(
        &mut batch,
        &input.completions,
        reserved,
        |item| has_its_checkpoints(&item.run_id),
        |item| {
            let mut statements = reports::completion_statements(&item.step_id, &item.run_id, &node_id, &item.report, now);
            statements.push(Statement::new(RUN_STANDING_SQL, vec![item.run_id.clone().into(), item.step_id.clone().into()]));
            statements
        },
        Vec::new(),
    );
    let markers: Vec<String> = input.failures.iter().map(|_| core.new_id("settle")).collect();
    let failure_items: Vec<(&RunItem<_>, &String)> = input.failures.iter().zip(&markers).collect();
    let failures = place_where(
        &mut batch,
        &failure_items,
        reserved,
        |(item, _)| has_its_checkpoints(&item.run_id),
        |(item, marker)| {
            let mut statements = reports::failure_statements(&item.step_id, &item.run_id, &node_id, &item.report, marker.as_str(), now);
            statements.push(Statement::new(RUN_STANDING_SQL, vec![item.run_id.clone().into(), item.step_id.clone().into()]));
            statements
        },
        Vec::new(),
    );
    let runs = place(&mut batch, &input.runs, reserved, |item| {
        reports::beat_statements(&item.step_id, &item.run_id, &node_id, input.heartbeat_ttl_sec, &item.report, now)
    });
    let checkpoints = place_where(&mut batch, &input.checkpoints, reserved, |_| true, checkpoint_statements, checkpoints);
    let logs =
        place(&mut batch, &input.logs, reserved, |item| reports::log_statements(&item.step_id, &item.run_id, &node_id, &item.report, now));

    let mut plans = Vec::new();
    let mut leader_at: Option<(ReapStatements, usize, usize)> = None;
    if let (Some(term), Some(mut reap)) = (leading_term, reap) {
        let plan_ids: Vec<String> = input.plans.iter().map(|_| core.new_id("plan")).collect();
        let plan_items: Vec<(&(String, _), &String)> = input.plans.iter().zip(&plan_ids).collect();
        plans = place(&mut batch, &plan_items, reserved, |((task_id, plan), plan_id)| {
            plan_statements(&node_id, term, task_id, plan, plan_id.as_str(), now)
        });
        let reap_at = batch.push(std::mem::take(&mut reap.statements));
        let claim_at = batch.push(claim_tasks_statements(&node_id, term, CLAIM_TASKS_PER_SYNC, core.config.controller_liveness_sec, now))
            + CLAIM_TASKS_STATEMENTS
            - 1;
        leader_at = Some((reap, reap_at, claim_at));
    }
    let grant_at = grant.map(|grant| batch.push(grant));
    let statement_count = batch.statements.len();
    debug_assert!(statement_count <= MAX_SYNC_STATEMENTS);

    let results = core.db.batch(batch.statements).await?;

    let (lease, operation) = match input.wish {
        LeaseWish::Acquire => acquired(&results, lease_at)?,
        LeaseWish::Release | LeaseWish::Keep => {
            let at = if input.wish == LeaseWish::Release { lease_at + 1 } else { lease_at };
            (records::first(&results[at], records::lease)?.unwrap_or_else(empty_lease), LeaseOperation::None)
        }
    };
    let is_leader = lease.holder_id.as_deref() == Some(node_id.as_str()) && lease.lease_expires_at > now;
    let mode = records::first(&results[mode_at], records::mode)?.unwrap_or(SystemMode::Running);
    let fence_held = |term: i64| is_leader && lease.term == term;
    let leader_writes = match leading_term {
        None => LeaderWrites::Skipped,
        Some(term) if fence_held(term) => LeaderWrites::Applied,
        Some(_) => LeaderWrites::Fenced,
    };

    let any_deferred = std::cell::Cell::new(false);
    // One verdict per item, in the order sent: `judge(index, id, at)` for a placed item.
    let verdicts = |ids: Vec<&str>, placed: &[Placed], judge: &dyn Fn(usize, &str, usize) -> ApiResult<ItemVerdict>| {
        ids.into_iter()
            .zip(placed)
            .enumerate()
            .map(|(index, (id, at))| match at {
                Some(at) => judge(index, id, *at),
                None => {
                    any_deferred.set(true);
                    Ok(deferred(id))
                }
            })
            .collect::<ApiResult<Vec<ItemVerdict>>>()
    };
    let completion_verdicts = verdicts(input.completions.iter().map(|item| item.run_id.as_str()).collect(), &completions, &|_, id, at| {
        Ok(settled_verdict(id, &node_id, standing(&results[at + reports::COMPLETION_STATEMENTS])?, |run| {
            reports::completion_stands(id, run.run_status, run.step_status, run.current_run_id.as_deref())
        }))
    })?;
    let failure_verdicts = verdicts(input.failures.iter().map(|item| item.run_id.as_str()).collect(), &failures, &|index, id, at| {
        let standing_at = at + input.failures[index].report.statement_count();
        Ok(settled_verdict(id, &node_id, standing(&results[standing_at])?, |run| reports::failure_stands(run.run_status)))
    })?;
    // A deferred heartbeat is no reason to come back at once: the host sends its heartbeats
    // with every sync (at least every 5 s while it runs steps), the ones left out first.
    let deferred_before_beats = any_deferred.get();
    let run_verdicts = verdicts(input.runs.iter().map(|item| item.run_id.as_str()).collect(), &runs, &|_, id, at| {
        let Some(row) = results[at + 1].first() else {
            return Ok(stale(id, format!("run {id} is no longer this node's current attempt")));
        };
        let status = StepStatus::parse(&row.text("status")?).ok_or_else(|| ApiError::internal("unknown step status"))?;
        let mut verdict = ItemVerdict::new(id, Verdict::Accepted);
        verdict.canceled = status == StepStatus::Canceled;
        verdict.step_status = Some(status);
        Ok(verdict)
    })?;
    any_deferred.set(deferred_before_beats);
    let checkpoint_verdicts =
        verdicts(input.checkpoints.iter().map(|item| item.run_id.as_str()).collect(), &checkpoints, &|index, id, at| {
            let upload = &input.checkpoints[index].report;
            Ok(match reports::checkpoint_outcome(&results, at, upload)? {
                CheckpointOutcome::Created | CheckpointOutcome::AlreadyStored => ItemVerdict::new(id, Verdict::Accepted),
                CheckpointOutcome::Conflict => {
                    let mut verdict = ItemVerdict::new(id, Verdict::Refused);
                    verdict.code = Some(ErrorCode::Conflict);
                    verdict.message = Some(format!("checkpoint {} of run {id} was already stored with other content", upload.seq));
                    verdict
                }
                CheckpointOutcome::NotOwned => stale(id, format!("run {id} is not a run of this node")),
            })
        })?;
    let log_verdicts = verdicts(input.logs.iter().map(|item| item.run_id.as_str()).collect(), &logs, &|index, id, at| {
        if results[at + 1].is_empty() {
            return Ok(stale(id, format!("run {id} is not a run of this node")));
        }
        let accepted = results[at].len() as i64;
        let mut verdict = ItemVerdict::new(id, Verdict::Accepted);
        verdict.accepted = Some(accepted);
        verdict.duplicates = Some(input.logs[index].report.count - accepted);
        Ok(verdict)
    })?;
    let plan_verdicts = if leading_term.is_some() {
        verdicts(input.plans.iter().map(|(task_id, _)| task_id.as_str()).collect(), &plans, &|_, id, at| {
            Ok(if !results[at].is_empty() {
                ItemVerdict::new(id, Verdict::Accepted)
            } else if leader_writes == LeaderWrites::Fenced {
                fenced_plan(id, &lease)
            } else {
                let mut verdict = ItemVerdict::new(id, Verdict::Refused);
                verdict.code = Some(ErrorCode::InvalidTransition);
                verdict.message =
                    Some(format!("task {id} is not planning under this leader in this term (canceled, or claimed in another term)"));
                verdict
            })
        })?
    } else {
        Vec::new()
    };

    let (claimed_tasks, reaped_now): (Vec<shared::wire::Task>, Option<StepsReaped>) = match (&leader_at, leader_writes) {
        (Some((reap, reap_at, claim_at)), LeaderWrites::Applied) => {
            let mut tasks = records::all(&results[*claim_at], records::task)?;
            tasks.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.created_at.cmp(&b.created_at)).then(a.task_id.cmp(&b.task_id)));
            (tasks, Some(reaped(&results, *reap_at, reap)?))
        }
        _ => (Vec::new(), None),
    };
    let granted = match grant_at {
        Some(at) => grants::claimed_steps(&results, at)?,
        None => Vec::new(),
    };

    let newly_leading = is_leader && leading_term != Some(lease.term);
    // Another node holds the lease, or a standby handed it over to this one: either way it
    // can be taken only once it expired.
    let standby_until = (input.wish == LeaseWish::Acquire && !is_leader && lease.lease_expires_at > now).then_some(lease.lease_expires_at);
    let work_waiting = !granted.is_empty() || !claimed_tasks.is_empty() || any_deferred.get() || newly_leading;
    let mut next = next_sync_ms(&PaceFacts {
        idle_ms: core.config.sync_idle_ms,
        work_waiting,
        more_output: input.more_output,
        holds_runs: !input.runs.is_empty(),
        is_leader,
        ttl_sec: input.ttl_sec,
        standby_until,
        now,
    });
    let quiet = !work_waiting && !input.more_output && !input.reports_anything();
    // A standby is held whether the lease has another holder or is free but not its to take
    // (kept for the preferred node during a hand-back): either way it waits for a change.
    let standby = input.wish == LeaseWish::Acquire && !is_leader;
    let hold_for = hold::hold_ms(&hold::HoldFacts { requested_ms: input.hold_ms, next_ms: next, standby, quiet });
    if hold_for > 0 {
        next = hold::hold(core, &lease, hold_for, next).await?;
    }
    Reply::ok(&AgentSyncResponse {
        node_id,
        lease: LeaseDecision {
            is_leader,
            operation,
            term: lease.term,
            holder_id: lease.holder_id.clone(),
            holder_host: lease.holder_host.clone(),
            lease_expires_at: lease.lease_expires_at,
            renewed_at: lease.renewed_at,
        },
        mode,
        parked_accounts: records::all(&results[mode_at + 1], records::parked_account)?,
        notified_through: results[mode_at + 2].first().map(|row| row.i64("notified_through")).transpose()?.unwrap_or(0),
        events: match events_at {
            Some(at) => results[at].iter().map(records::event).collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        },
        granted,
        runs: run_verdicts,
        completions: completion_verdicts,
        failures: failure_verdicts,
        logs: log_verdicts,
        checkpoints: checkpoint_verdicts,
        plans: plan_verdicts,
        leader_writes,
        claimed_tasks,
        reaped: reaped_now,
        statements: statement_count,
        next_sync_ms: next,
    })
}

fn fenced_plan(id: &str, lease: &Lease) -> ItemVerdict {
    let mut verdict = ItemVerdict::new(id, Verdict::Refused);
    verdict.code = Some(ErrorCode::StaleTerm);
    verdict.message = Some(format!("not the leader in the term sent; the lease is in term {}", lease.term));
    verdict
}
