//! Principal roles named by the auth table of the spec.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    BrowserAdmin,
    OpsAdmin,
    Readonly,
    Controller,
    Worker,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::BrowserAdmin, Role::OpsAdmin, Role::Readonly, Role::Controller, Role::Worker];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::BrowserAdmin => "browser_admin",
            Role::OpsAdmin => "ops_admin",
            Role::Readonly => "readonly",
            Role::Controller => "controller",
            Role::Worker => "worker",
        }
    }

    /// The environment variable whose value is a plain token for this role.
    pub fn token_env_var(self) -> &'static str {
        match self {
            Role::BrowserAdmin => "CONTROL_API_BROWSER_ADMIN_TOKEN",
            Role::OpsAdmin => "CONTROL_API_OPS_ADMIN_TOKEN",
            Role::Readonly => "CONTROL_API_READONLY_TOKEN",
            Role::Controller => "CONTROL_API_CONTROLLER_TOKEN",
            Role::Worker => "CONTROL_API_WORKER_TOKEN",
        }
    }
}

/// The shared service token: `controller` for controller actions, `worker` for worker actions.
pub const SHARED_TOKEN_ENV_VAR: &str = "BAA_SHARED_TOKEN";
/// The secret under which node-bound tokens are minted and verified.
pub const NODE_TOKEN_SECRET_ENV_VAR: &str = "CONTROL_API_NODE_TOKEN_SECRET";
/// Prefix of a node-bound token: `bnt2~<node_id>~<host>~<hex hmac-sha256>` (node ids and
/// hosts never hold a `~`).
pub const NODE_TOKEN_PREFIX: &str = "bnt2~";
/// Node tokens minted before they bound a host; refused, with a word on re-minting.
pub const LEGACY_NODE_TOKEN_PREFIX: &str = "bnt1.";
