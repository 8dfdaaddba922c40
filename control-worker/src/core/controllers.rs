//! `controllers.heartbeat` (upsert + liveness) and `controllers.list`.

use shared::status::ControllerRole;
use shared::wire::{ControllerHeartbeatResponse, ControllersList};

use super::clock::{Clock, Random};
use super::db::{Db, Statement, MAX_SAFE_INTEGER};
use super::error::{ApiError, ApiResult};
use super::input::{Fields, MAX_SHORT_TEXT_LEN};
use super::records::{self, controller_columns};
use super::system::SELECT_MODE_SQL;
use super::{Call, Core, Reply};

const UPSERT_SQL: &str = concat!(
    "INSERT INTO controllers (controller_id, host, role, priority, status, version, started_at, metadata_json, first_seen_at, last_heartbeat_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) \
     ON CONFLICT (controller_id) DO UPDATE SET host = excluded.host, role = excluded.role, priority = excluded.priority, \
       status = excluded.status, version = excluded.version, started_at = excluded.started_at, \
       metadata_json = excluded.metadata_json, last_heartbeat_at = excluded.last_heartbeat_at \
     RETURNING ",
    controller_columns!()
);

pub const SELECT_CONTROLLERS_SQL: &str = concat!("SELECT ", controller_columns!(), " FROM controllers ORDER BY controller_id");

pub async fn heartbeat<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let controller_id = call.principal.acting_node("controller_id", fields.opt_node_id("controller_id")?)?;
    let host = call.principal.acting_host(fields.str("host", MAX_SHORT_TEXT_LEN)?)?;
    let role = fields.enumerated("role", ControllerRole::parse, &ControllerRole::choices())?;
    let priority = fields.i64("priority", 0, 1_000_000)?;
    let status = fields.str("status", 64)?;
    let version = fields.opt_str("version", 128)?;
    let started_at = fields.opt_i64("started_at", 0, MAX_SAFE_INTEGER)?;
    let metadata = fields.opt_object("metadata")?.unwrap_or_default();
    let results = core
        .db
        .batch(vec![
            Statement::new(
                UPSERT_SQL,
                vec![
                    controller_id.into(),
                    host.into(),
                    role.as_str().into(),
                    priority.into(),
                    status.into(),
                    version.into(),
                    started_at.into(),
                    serde_json::Value::Object(metadata).to_string().into(),
                    call.now.into(),
                ],
            ),
            Statement::new(SELECT_MODE_SQL, vec![]),
        ])
        .await?;
    let liveness = core.config.controller_liveness_sec;
    let controller = results[0]
        .first()
        .map(|row| records::controller(row, call.now, liveness))
        .transpose()?
        .ok_or_else(|| ApiError::internal("controller upsert returned no row"))?;
    let mode = records::first(&results[1], records::mode)?.ok_or_else(|| ApiError::internal("system_state row missing"))?;
    Reply::ok(&ControllerHeartbeatResponse { controller, mode })
}

pub async fn list<D: Db, C: Clock, R: Random>(core: &Core<D, C, R>, call: &Call<'_>) -> ApiResult<Reply> {
    let rows = core.db.query(Statement::new(SELECT_CONTROLLERS_SQL, vec![])).await?;
    let liveness = core.config.controller_liveness_sec;
    let controllers = rows.iter().map(|row| records::controller(row, call.now, liveness)).collect::<Result<Vec<_>, _>>()?;
    Reply::ok(&ControllersList { controllers, liveness_window_sec: liveness })
}
