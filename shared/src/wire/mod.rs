//! Request and response bodies of the Control API.
//!
//! Responses are wrapped in the envelope `{ok, request_id, data}` / `{ok, request_id, error,
//! message, details}`; the types here are what `data` holds, and the request bodies a client
//! sends. Times are integer unix seconds. One file per part of the API: `agents`, `controllers`,
//! `tasks`, `steps`, `system`; everything is re-exported here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod agents;
mod controllers;
mod steps;
mod system;
mod tasks;

pub use agents::*;
pub use controllers::*;
pub use steps::*;
pub use system::*;
pub use tasks::*;

/// An error envelope as it travels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ErrorEnvelope {
    pub ok: bool,
    pub request_id: String,
    pub error: String,
    pub message: String,
    pub details: Map<String, Value>,
}
