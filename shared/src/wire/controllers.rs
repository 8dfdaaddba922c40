//! Controllers and the leader lease: heartbeats, acquire, release.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::status::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ControllerHeartbeatRequest {
    pub controller_id: String,
    pub host: String,
    pub role: ControllerRole,
    pub priority: i64,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Controller {
    pub controller_id: String,
    pub host: String,
    pub role: ControllerRole,
    pub priority: i64,
    pub status: String,
    pub version: Option<String>,
    pub started_at: Option<i64>,
    pub metadata: Map<String, Value>,
    pub first_seen_at: i64,
    pub last_heartbeat_at: i64,
    /// Whether the last heartbeat is recent enough (within the control plane's liveness window).
    pub alive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ControllerHeartbeatResponse {
    pub controller: Controller,
    /// The fleet mode at the time of the heartbeat, so agents learn of pause and drain.
    pub mode: SystemMode,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ControllersList {
    pub controllers: Vec<Controller>,
    pub liveness_window_sec: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LeaderAcquireRequest {
    pub controller_id: String,
    pub host: String,
    pub ttl_sec: i64,
    #[serde(default)]
    pub preferred: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct Lease {
    pub lease_name: String,
    pub holder_id: Option<String>,
    pub holder_host: Option<String>,
    pub term: i64,
    pub lease_expires_at: i64,
    pub renewed_at: i64,
    pub preferred_holder_id: Option<String>,
    pub metadata_json: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LeaderAcquireResponse {
    pub holder_id: Option<String>,
    pub holder_host: Option<String>,
    pub term: i64,
    pub lease_expires_at: i64,
    pub renewed_at: i64,
    pub is_leader: bool,
    pub operation: LeaseOperation,
    pub lease: Lease,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LeaderReleaseRequest {
    pub controller_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LeaderReleaseResponse {
    pub released: bool,
    pub term: i64,
    pub lease: Lease,
}
