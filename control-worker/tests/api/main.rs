//! The black-box API suite: every route of the contract through real HTTP on 127.0.0.1, each
//! case against a fresh database with a clock it moves. By default the target is the native
//! server on SQLite; `BAA_API_TARGET=worker` runs the same cases against the Worker under
//! `wrangler dev` on a local D1 (see `support` and `worker`).
//!
//! - `edge`: with the Worker only: the schema wrangler creates equals the native one.
//! - `cards`: SPEC §12: task cards: keys, dependencies, blocking, write scopes.
//! - `conventions`: envelope, request ids, error codes, 404/405/413/415, CORS, healthz.
//! - `auth`: the auth matrix generated from the route table, ownership, secure default.
//! - `hostile`: slow headers and bodies, idle and flooding connections, unauthenticated bodies, bad framing.
//! - `lease`: the leader lease table, hand-over, fencing, concurrent acquirers.
//! - `diff`: SPEC §18: `tasks.diff`, the newest branch diff, across compaction.
//! - `crowding`: SPEC §19: lingering close after an early answer; eviction at the connection cap.
//! - `deliverable`: SPEC §11: repo and deliver validation, one host per task, result, read shape, lost host.
//! - `lifecycle`: the whole chain, retries, failures, cancel, pause and drain, idempotency.
//! - `openapi`: docs/openapi.json, generated from the route table and the wire types.
//! - `races`: concurrent step claimers, late completion from a reaped attempt.
//! - `process`: the `control-local` binary: restart on an existing database, signals, logs.
//! - `round_trips`: database round trips per route (hot routes: exactly one).
//! - `storage`: SPEC §17: compaction into objects, pages across the boundary, retention, races.
//! - `storage_process`: SPEC §17 with `control-local`: the timer, a compaction killed with SIGKILL.
//! - `strict`: SPEC §18: unknown and misplaced fields refused on every route with a body.
//! - `sync`: SPEC §14: `agents.sync`, one batch per agent tick: fencing, stale runs, the budget.
//! - `timeline`: SPEC §18: `runs.list` for the fleet timeline, the round on listed tasks.
//! - `tidy`: invariants of the source tree (no BEGIN/COMMIT, core free of I/O, migrations).
//! - `unattended`: SPEC §13: unattended waves: creation warnings, `allow_no_change`.

mod client;
mod support;
mod worker;

mod auth;
mod cards;
mod conventions;
mod crowding;
mod deliverable;
mod diff;
mod edge;
mod hostile;
mod lease;
mod lifecycle;
mod openapi;
mod process;
mod races;
mod round_trips;
mod storage;
mod storage_process;
mod strict;
mod sync;
mod sync_pace;
mod tidy;
mod timeline;
mod unattended;
