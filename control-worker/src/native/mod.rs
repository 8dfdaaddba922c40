//! Native adapters around the core.
//!
//! - [`sqlite`]: the `Db` trait on rusqlite (bundled SQLite); a batch is one transaction.
//! - [`migrate`]: applies `migrations/` into the `d1_migrations` ledger the way wrangler does.
//! - [`system`]: the wall clock and OS-seeded randomness.
//! - [`server`]: the HTTP/1.1 server (hyper): the accept loop, its connection cap (idle
//!   connections evicted to make room) and back-off.
//! - [`connection`]: one connection within the limits; requests screened before their body.
//! - [`linger`]: lingering close after an answer that left its body unread.
//! - [`limits`]: header, body and idle timeouts, the connection cap; defaults and overrides.
//! - [`meter`]: requests per route and rows written, for the budget benchmark.
//! - [`files`]: the core's `Blobs` on files beside the database (temp file + rename).
//! - [`upkeep`]: the timer that runs storage upkeep (compaction, retention) beside the server.

pub mod connection;
pub mod files;
pub mod limits;
pub mod linger;
pub mod meter;
pub mod migrate;
pub mod server;
pub mod sqlite;
pub mod system;
pub mod upkeep;

pub use files::FileBlobs;
pub use limits::ServerLimits;
pub use meter::Meter;
pub use server::{serve, serve_with, start_in_thread, RunningServer, ServerOptions};
pub use sqlite::SqliteDb;
pub use system::{os_random, shutdown_signal, SystemClock};
