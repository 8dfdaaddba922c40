//! The validated body of an `agents.sync`. Every item is checked before anything is written:
//! one bad field refuses the whole sync with a 400 that names it (`failures[1].error`).

use shared::routes::MAX_UPLOAD_CONTENT_BYTES;
use shared::status::LeaseWish;

use super::super::controllers::{controller_facts, ControllerFacts};
use super::super::db::MAX_SAFE_INTEGER;
use super::super::error::{ApiError, ApiResult};
use super::super::grants::MAX_CLAIM_CAPACITY;
use super::super::input::{Fields, MAX_SHORT_TEXT_LEN};
use super::super::lease::MAX_TTL_SEC;
use super::super::planning::{plan_input, PlanInput};
use super::super::run_reports::MAX_HEARTBEAT_TTL_SEC;
use super::super::run_reports::{self as reports, Beat, CheckpointUpload, Completion, FailureReport, LogUpload};
use super::super::Call;
use super::hold::MAX_HOLD_MS;

/// Items of one kind in one sync, at most.
pub const MAX_ITEMS_PER_KIND: usize = 64;

/// An item about one run: its step, its run, and what it says.
pub struct RunItem<T> {
    pub step_id: String,
    pub run_id: String,
    pub report: T,
}

pub struct SyncInput {
    pub facts: ControllerFacts,
    pub wish: LeaseWish,
    pub ttl_sec: i64,
    pub preferred: bool,
    pub term: Option<i64>,
    pub capacity: i64,
    pub worker_kinds: Option<Vec<String>>,
    pub disk_low: bool,
    /// The host's coding-agent account: no agent step is granted while it is parked.
    pub account: Option<String>,
    pub heartbeat_ttl_sec: i64,
    pub runs: Vec<RunItem<Beat>>,
    pub completions: Vec<RunItem<Completion>>,
    pub failures: Vec<RunItem<FailureReport>>,
    pub logs: Vec<RunItem<LogUpload>>,
    pub checkpoints: Vec<RunItem<CheckpointUpload>>,
    pub plans: Vec<(String, PlanInput)>,
    pub more_output: bool,
    /// How long the caller allows its answer to be held (see [`super::hold`]).
    pub hold_ms: i64,
    /// The leader's notifier: the events after this id, please.
    pub events_after: Option<i64>,
    /// The leader's notifier delivered every event through this id.
    pub events_delivered: Option<i64>,
}

impl SyncInput {
    /// Whether the sync reports anything about runs or plans.
    pub fn reports_anything(&self) -> bool {
        !(self.runs.is_empty()
            && self.completions.is_empty()
            && self.failures.is_empty()
            && self.logs.is_empty()
            && self.checkpoints.is_empty()
            && self.plans.is_empty())
    }
}

fn run_items<'a, T>(fields: &Fields<'a>, field: &str, read: impl Fn(&Fields<'a>) -> ApiResult<T>) -> ApiResult<Vec<RunItem<T>>> {
    fields
        .objects(field, MAX_ITEMS_PER_KIND)?
        .iter()
        .map(|item| Ok(RunItem { step_id: item.id("step_id")?, run_id: item.id("run_id")?, report: read(item)? }))
        .collect()
}

pub fn read(call: &Call<'_>, fields: &Fields<'_>, default_heartbeat_ttl_sec: i64) -> ApiResult<SyncInput> {
    let mut facts = controller_facts(call, fields, "node_id")?;
    let lease = fields.object("lease")?;
    let wish = lease.enumerated("wish", LeaseWish::parse, &LeaseWish::choices())?;
    let ttl_sec = lease.i64("ttl_sec", 1, MAX_TTL_SEC)?;
    let preferred = lease.bool_or_false("preferred")?;
    let term = lease.opt_i64("term", 1, MAX_SAFE_INTEGER)?;
    let capacity = fields.opt_i64("capacity", 0, MAX_CLAIM_CAPACITY)?.unwrap_or(0);
    let worker_kinds = fields.opt_string_list("worker_kinds", 32, 64)?;
    let disk_low = fields.bool_or_false("disk_low")?;
    let account = fields.opt_str("account", MAX_SHORT_TEXT_LEN)?;
    let agent_cli = fields.opt_str("agent_cli", MAX_SHORT_TEXT_LEN)?;
    let sandbox = fields.opt_str("sandbox", MAX_SHORT_TEXT_LEN)?;
    let heartbeat_ttl_sec = fields.opt_i64("heartbeat_ttl_sec", 1, MAX_HEARTBEAT_TTL_SEC)?.unwrap_or(default_heartbeat_ttl_sec);
    let input = SyncInput {
        runs: run_items(fields, "runs", reports::beat)?,
        completions: run_items(fields, "completions", reports::completion)?,
        failures: run_items(fields, "failures", reports::failure_report)?,
        logs: run_items(fields, "logs", reports::log_upload)?,
        checkpoints: run_items(fields, "checkpoints", reports::checkpoint_upload)?,
        plans: fields
            .objects("plans", MAX_ITEMS_PER_KIND)?
            .iter()
            .map(|plan| {
                let task_id = plan.id("task_id")?;
                let input = plan_input(plan, &task_id)?;
                Ok((task_id, input))
            })
            .collect::<ApiResult<Vec<_>>>()?,
        more_output: fields.bool_or_false("more_output")?,
        hold_ms: fields.opt_i64("hold_ms", 0, MAX_HOLD_MS)?.unwrap_or(0),
        events_after: fields.opt_i64("events_after", 0, MAX_SAFE_INTEGER)?,
        events_delivered: fields.opt_i64("events_delivered", 0, MAX_SAFE_INTEGER)?,
        facts: {
            // What the host has room for is worth seeing in the controllers list.
            facts.metadata.insert("capacity".into(), capacity.into());
            facts.metadata.insert("disk_low".into(), disk_low.into());
            if let Some(account) = &account {
                facts.metadata.insert("account".into(), account.clone().into());
            }
            if let Some(kinds) = &worker_kinds {
                facts.metadata.insert("worker_kinds".into(), kinds.clone().into());
            }
            if let Some(agent_cli) = &agent_cli {
                facts.metadata.insert("agent_cli".into(), agent_cli.clone().into());
            }
            if let Some(sandbox) = &sandbox {
                facts.metadata.insert("sandbox".into(), sandbox.clone().into());
            }
            facts
        },
        wish,
        ttl_sec,
        preferred,
        term,
        capacity,
        worker_kinds,
        disk_low,
        account,
        heartbeat_ttl_sec,
    };
    let uploaded: usize = input.logs.iter().map(|item| item.report.text_bytes).sum::<usize>()
        + input.checkpoints.iter().map(|item| item.report.content.len()).sum::<usize>();
    if uploaded > MAX_UPLOAD_CONTENT_BYTES {
        return Err(ApiError::invalid_field(
            "logs",
            &format!("log text and checkpoint content must add up to at most {MAX_UPLOAD_CONTENT_BYTES} bytes per sync"),
        ));
    }
    if !input.plans.is_empty() && (input.wish != LeaseWish::Acquire || input.term.is_none()) {
        return Err(ApiError::invalid_field("plans", "are the leader's: send them with lease.wish acquire and lease.term"));
    }
    Ok(input)
}
