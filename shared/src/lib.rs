//! The wire contract of baa-conductor, shared by the control plane and the node agent.
//!
//! - [`routes`]: the one route table (action id, method, path, allowed roles, body limit) and
//!   path matching. The router, the auth matrix test, the client and `docs/api.md` follow it.
//! - [`auth`]: principal roles.
//! - [`errors`]: error codes and their HTTP statuses.
//! - [`status`]: lifecycle enums (system mode, task, step, run) with their wire spellings.
//! - [`wire`]: request and response bodies.
//! - [`body_fields`]: the fields each request body may carry; unknown ones are named and refused.
//! - [`ids`]: identifier rules (which strings may name a node, a task, a step).
//! - [`scope`]: write-scope globs: matching, overlap, what a change did outside its scope.
//! - [`percent`]: percent-decoding of query values and path parameters.
//!
//! No I/O, no async, no clock: this crate builds unchanged for wasm32 and native.

pub mod auth;
pub mod body_fields;
pub mod errors;
pub mod ids;
pub mod percent;
pub mod routes;
pub mod scope;
pub mod status;
pub mod wire;

pub use auth::Role;
pub use errors::ErrorCode;
pub use routes::{Action, Method, Route, ROUTES};
