//! `controllers.heartbeat` (upsert + liveness) and `controllers.list`.

use super::blobs::Blobs;
use shared::status::ControllerRole;
use shared::wire::{ControllerHeartbeatResponse, ControllersList};

use super::clock::{Clock, Random};
use super::db::{Db, Statement, MAX_SAFE_INTEGER};
use super::error::{ApiError, ApiResult};
use super::input::{Fields, MAX_SHORT_TEXT_LEN};
use super::records::{self, controller_columns};
use super::system::SELECT_MODE_SQL;
use super::{Call, Core, Reply};

// ?1 id, ?2 host, ?3 role, ?4 priority, ?5 status, ?6 version, ?7 started at, ?8 metadata, ?9 now.
macro_rules! upsert_controller {
    () => {
        "INSERT INTO controllers (controller_id, host, role, priority, status, version, started_at, metadata_json, first_seen_at, last_heartbeat_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9) \
         ON CONFLICT (controller_id) DO UPDATE SET host = excluded.host, role = excluded.role, priority = excluded.priority, \
           status = excluded.status, version = excluded.version, started_at = excluded.started_at, \
           metadata_json = excluded.metadata_json, last_heartbeat_at = excluded.last_heartbeat_at"
    };
}

const UPSERT_SQL: &str = concat!(upsert_controller!(), " RETURNING ", controller_columns!());

// The same, from `agents.sync` (?10 refresh seconds): the row is written when a fact changed
// or its heartbeat is older than the refresh interval, not on every sync. Liveness and the
// host-lost rule need a heartbeat every few tens of seconds, not every few seconds, and each
// write is a row on the bill (two on D1: the row and its index entry).
const SYNC_UPSERT_SQL: &str = concat!(
    upsert_controller!(),
    " WHERE controllers.last_heartbeat_at <= ?9 - ?10 OR controllers.host IS NOT excluded.host \
       OR controllers.role IS NOT excluded.role OR controllers.priority IS NOT excluded.priority \
       OR controllers.status IS NOT excluded.status OR controllers.version IS NOT excluded.version \
       OR controllers.started_at IS NOT excluded.started_at OR controllers.metadata_json IS NOT excluded.metadata_json"
);

/// A controller's facts, as a heartbeat or a sync reports them.
pub(super) struct ControllerFacts {
    pub controller_id: String,
    pub host: String,
    pub role: ControllerRole,
    pub priority: i64,
    pub status: String,
    pub version: Option<String>,
    pub started_at: Option<i64>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl ControllerFacts {
    fn params(&self, now: i64) -> Vec<super::db::Value> {
        vec![
            self.controller_id.clone().into(),
            self.host.clone().into(),
            self.role.as_str().into(),
            self.priority.into(),
            self.status.clone().into(),
            self.version.clone().into(),
            self.started_at.into(),
            serde_json::Value::Object(self.metadata.clone()).to_string().into(),
            now.into(),
        ]
    }
}

/// The sync's heartbeat: written only when something changed or `refresh_sec` passed.
pub(super) fn sync_upsert(facts: &ControllerFacts, refresh_sec: i64, now: i64) -> Statement {
    let mut params = facts.params(now);
    params.push(refresh_sec.into());
    Statement::new(SYNC_UPSERT_SQL, params)
}

/// Reads a heartbeat's facts; `controller_id` through the principal.
pub(super) fn controller_facts(call: &Call<'_>, fields: &Fields<'_>, id_field: &'static str) -> ApiResult<ControllerFacts> {
    Ok(ControllerFacts {
        controller_id: call.principal.acting_node(id_field, fields.opt_node_id(id_field)?)?,
        host: call.principal.acting_host(fields.str("host", MAX_SHORT_TEXT_LEN)?)?,
        role: fields.enumerated("role", ControllerRole::parse, &ControllerRole::choices())?,
        priority: fields.i64("priority", 0, 1_000_000)?,
        status: fields.str("status", 64)?,
        version: fields.opt_str("version", 128)?,
        started_at: fields.opt_i64("started_at", 0, MAX_SAFE_INTEGER)?,
        metadata: fields.opt_object("metadata")?.unwrap_or_default(),
    })
}

pub const SELECT_CONTROLLERS_SQL: &str = concat!("SELECT ", controller_columns!(), " FROM controllers ORDER BY controller_id");

pub async fn heartbeat<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let body = call.body(false)?;
    let fields = Fields::new(&body);
    let facts = controller_facts(call, &fields, "controller_id")?;
    let results = core.db.batch(vec![Statement::new(UPSERT_SQL, facts.params(call.now)), Statement::new(SELECT_MODE_SQL, vec![])]).await?;
    let liveness = core.config.controller_liveness_sec;
    let controller = results[0]
        .first()
        .map(|row| records::controller(row, call.now, liveness))
        .transpose()?
        .ok_or_else(|| ApiError::internal("controller upsert returned no row"))?;
    let mode = records::first(&results[1], records::mode)?.ok_or_else(|| ApiError::internal("system_state row missing"))?;
    Reply::ok(&ControllerHeartbeatResponse { controller, mode })
}

pub async fn list<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let rows = core.db.query(Statement::new(SELECT_CONTROLLERS_SQL, vec![])).await?;
    let liveness = core.config.controller_liveness_sec;
    let controllers = rows.iter().map(|row| records::controller(row, call.now, liveness)).collect::<Result<Vec<_>, _>>()?;
    Reply::ok(&ControllersList { controllers, liveness_window_sec: liveness })
}
