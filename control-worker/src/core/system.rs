//! Fleet mode (`system.pause` / `resume` / `drain`, each recorded) and `system.state`.

use super::blobs::Blobs;
use serde_json::{Map, Value};
use shared::status::{StepStatus, SystemMode, TaskStatus};
use shared::wire::{SystemChanged, SystemState};

use super::clock::{Clock, Random};
use super::controllers::SELECT_CONTROLLERS_SQL;
use super::db::{Db, Row, Statement};
use super::error::{ApiError, ApiResult};
use super::input::{Fields, MAX_SHORT_TEXT_LEN};
use super::lease::SELECT_LEASE_SQL;
use super::records::{self, mode_change_columns};
use super::{Call, Core, Reply};

pub const SELECT_MODE_SQL: &str = "SELECT mode FROM system_state WHERE state_key = 'global'";

// The audit row reads the previous mode before the update of the same batch changes it.
const RECORD_CHANGE_SQL: &str = concat!(
    "INSERT INTO mode_changes (mode, previous_mode, requested_by, reason, principal, request_id, changed_at) \
     SELECT ?1, mode, ?2, ?3, ?4, ?5, ?6 FROM system_state WHERE state_key = 'global' \
     RETURNING ",
    mode_change_columns!()
);

const SET_MODE_SQL: &str = "UPDATE system_state SET mode = ?1, updated_at = ?2 WHERE state_key = 'global'";

const COUNT_TASKS_SQL: &str = "SELECT status, COUNT(*) AS n FROM tasks GROUP BY status";
const COUNT_STEPS_SQL: &str = "SELECT status, COUNT(*) AS n FROM steps GROUP BY status";
const RECENT_CHANGES_SQL: &str = concat!("SELECT ", mode_change_columns!(), " FROM mode_changes ORDER BY change_id DESC LIMIT 20");

pub async fn change_mode<D: Db, C: Clock, R: Random, B: Blobs>(
    core: &Core<D, C, R, B>,
    call: &Call<'_>,
    mode: SystemMode,
) -> ApiResult<Reply> {
    let body = call.body(true)?;
    let fields = Fields::new(&body);
    let reason = fields.opt_str("reason", MAX_SHORT_TEXT_LEN)?;
    let requested_by = fields.opt_str("requested_by", 256)?.unwrap_or_else(|| call.principal.label.to_string());
    let results = core
        .db
        .batch(vec![
            Statement::new(
                RECORD_CHANGE_SQL,
                vec![
                    mode.as_str().into(),
                    requested_by.into(),
                    reason.clone().into(),
                    call.principal.label.into(),
                    call.request_id.clone().into(),
                    call.now.into(),
                ],
            ),
            Statement::new(SET_MODE_SQL, vec![mode.as_str().into(), call.now.into()]),
        ])
        .await?;
    let change = records::first(&results[0], records::mode_change)?.ok_or_else(|| ApiError::internal("system_state row missing"))?;
    let mut summary = if change.previous_mode == mode {
        format!("mode was already {mode}")
    } else {
        format!("mode changed from {} to {mode}", change.previous_mode)
    };
    if let Some(reason) = &reason {
        summary.push_str(&format!(" (reason: {reason})"));
    }
    Reply::ok(&SystemChanged { accepted: true, status: "applied".into(), summary, mode, change })
}

fn counts(rows: &[Row], statuses: &[&'static str]) -> Result<Map<String, Value>, ApiError> {
    let mut counts: Map<String, Value> = statuses.iter().map(|status| (status.to_string(), Value::from(0))).collect();
    for row in rows {
        counts.insert(row.text("status")?, Value::from(row.i64("n")?));
    }
    Ok(counts)
}

fn count_of(counts: &Map<String, Value>, status: &str) -> i64 {
    counts.get(status).and_then(Value::as_i64).unwrap_or(0)
}

pub async fn state<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let results = core
        .db
        .batch(vec![
            Statement::new(SELECT_MODE_SQL, vec![]),
            Statement::new(SELECT_LEASE_SQL, vec![]),
            Statement::new(SELECT_CONTROLLERS_SQL, vec![]),
            Statement::new(COUNT_TASKS_SQL, vec![]),
            Statement::new(COUNT_STEPS_SQL, vec![]),
            Statement::new(RECENT_CHANGES_SQL, vec![]),
            Statement::new(super::quota::PARKED_ACCOUNTS_SQL, vec![call.now.into()]),
        ])
        .await?;
    let mode = records::first(&results[0], records::mode)?.ok_or_else(|| ApiError::internal("system_state row missing"))?;
    let lease = records::first(&results[1], records::lease)?;
    let liveness = core.config.controller_liveness_sec;
    let controllers = results[2].iter().map(|row| records::controller(row, call.now, liveness)).collect::<Result<Vec<_>, _>>()?;
    let task_statuses: Vec<&str> = TaskStatus::ALL.iter().map(|status| status.as_str()).collect();
    let step_statuses: Vec<&str> = StepStatus::ALL.iter().map(|status| status.as_str()).collect();
    let task_counts = counts(&results[3], &task_statuses)?;
    let step_counts = counts(&results[4], &step_statuses)?;
    let in_flight = count_of(&task_counts, "planning")
        + count_of(&task_counts, "running")
        + count_of(&step_counts, "claimed")
        + count_of(&step_counts, "running");
    let leader_live = lease.as_ref().is_some_and(|lease| lease.holder_id.is_some() && lease.lease_expires_at > call.now);
    Reply::ok(&SystemState {
        mode,
        holder_id: lease.as_ref().and_then(|lease| lease.holder_id.clone()),
        holder_host: lease.as_ref().and_then(|lease| lease.holder_host.clone()),
        term: lease.as_ref().map_or(0, |lease| lease.term),
        lease_expires_at: lease.as_ref().map(|lease| lease.lease_expires_at),
        leader_live,
        live_controllers: controllers.iter().filter(|c| c.alive).map(|c| c.controller_id.clone()).collect(),
        controllers,
        task_counts,
        step_counts,
        drained: mode == SystemMode::Draining && in_flight == 0,
        recent_mode_changes: records::all(&results[5], records::mode_change)?,
        version: core.config.version.clone(),
        now: call.now,
        parked_accounts: records::all(&results[6], records::parked_account)?,
    })
}
