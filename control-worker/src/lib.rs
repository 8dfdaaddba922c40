//! baa-conductor control plane.
//!
//! - [`core`]: the platform-free control plane — routing, auth, handlers, lease and retry
//!   rules and all SQL — generic over the `Db`, `Clock` and `Random` traits. No I/O of its own.
//! - [`native`] (not on wasm32): the rusqlite adapter, the migration runner, a system clock
//!   and the HTTP server behind `control-local`, the tests and the node agent's embedded mode.
//!
//! The edge adapter (D1, `worker::Date`, `#[event(fetch)]`) compiles only for wasm32.

pub mod core;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
