//! The event feed (SPEC §13): `events.list`, and the feed's part in `agents.sync` — the
//! leader's notifier gets the events after its cursor with its sync and says how far it has
//! delivered, so the next leader goes on from there. The events themselves are written by the
//! triggers of migration 0007, in the same transaction as what they tell.

use super::blobs::Blobs;
use shared::wire::EventPage;

use super::clock::{Clock, Random};
use super::db::{Db, Statement, MAX_SAFE_INTEGER};
use super::error::ApiResult;
use super::input::{parse_query, query_i64};
use super::records::{self, fence};
use super::{Call, Core, Reply};

/// At most this many events go with one sync.
pub const EVENTS_PER_SYNC: i64 = 20;

// ?1 after, ?2 limit.
const EVENTS_AFTER_SQL: &str = "SELECT event_id, kind, task_id, subject, message, created_at FROM events \
     WHERE event_id > ?1 ORDER BY event_id LIMIT ?2";
// ?1 controller, ?2 term, ?3 now, ?4 after, ?5 limit: only for the leader in that term.
const EVENTS_FOR_LEADER_SQL: &str = concat!(
    "SELECT event_id, kind, task_id, subject, message, created_at FROM events WHERE event_id > ?4 AND ",
    fence!("1", "2", "3"),
    " ORDER BY event_id LIMIT ?5"
);

/// The next events for the notifier of the leader of `term`; none for anyone else.
pub fn for_leader(controller_id: &str, term: i64, now: i64, after: i64) -> Statement {
    Statement::new(EVENTS_FOR_LEADER_SQL, vec![controller_id.into(), term.into(), now.into(), after.into(), EVENTS_PER_SYNC.into()])
}

pub const NOTIFIED_THROUGH_SQL: &str = "SELECT notified_through FROM system_state WHERE state_key = 'global'";
// ?1 controller, ?2 term, ?3 now, ?4 delivered through. Only forward, and only by the leader.
const RECORD_DELIVERED_SQL: &str = concat!(
    "UPDATE system_state SET notified_through = ?4 WHERE state_key = 'global' AND notified_through < ?4 AND ",
    fence!("1", "2", "3")
);

// ?1 host, ?2 now, ?3 host_lost_after_sec. Before a sync's heartbeat is written: a host none of
// whose controllers was heard from for that long is back.
const HOST_BACK_SQL: &str = "INSERT INTO events (kind, task_id, subject, message, created_at) \
     SELECT 'host_back', NULL, ?1, 'back after ' || (?2 - MAX(last_heartbeat_at)) || ' s without a word', ?2 \
     FROM controllers WHERE host = ?1 GROUP BY host HAVING MAX(last_heartbeat_at) < ?2 - ?3";

/// The feed's `host_back` for a host that syncs again after being lost.
pub fn host_back(host: &str, now: i64, host_lost_after_sec: i64) -> Statement {
    Statement::new(HOST_BACK_SQL, vec![host.into(), now.into(), host_lost_after_sec.into()])
}

/// The leader's record that its notifier delivered every event through `delivered`.
pub fn record_delivered(controller_id: &str, term: i64, now: i64, delivered: i64) -> Statement {
    Statement::new(RECORD_DELIVERED_SQL, vec![controller_id.into(), term.into(), now.into(), delivered.into()])
}

// ?1 how many: the newest events.
const LAST_EVENTS_SQL: &str = "SELECT event_id, kind, task_id, subject, message, created_at FROM events \
     ORDER BY event_id DESC LIMIT ?1";

/// `?after=N&limit=L`: the events after `N`, oldest first; `?last=L`: the newest `L`, oldest
/// first (where a watcher starts).
pub async fn list<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let params = parse_query(&call.request.query);
    let after = query_i64(&params, "after", 0, 0, MAX_SAFE_INTEGER)?;
    let limit = query_i64(&params, "limit", 100, 1, 500)?;
    let last = query_i64(&params, "last", 0, 0, 500)?;
    let statement = if last > 0 {
        Statement::new(LAST_EVENTS_SQL, vec![last.into()])
    } else {
        Statement::new(EVENTS_AFTER_SQL, vec![after.into(), limit.into()])
    };
    let rows = core.db.query(statement).await?;
    let mut events = rows.iter().map(records::event).collect::<Result<Vec<_>, _>>()?;
    events.sort_by_key(|event| event.event_id);
    let next_after = events.last().map_or(after, |event| event.event_id);
    Reply::ok(&EventPage { events, next_after })
}
