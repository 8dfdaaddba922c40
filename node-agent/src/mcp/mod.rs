//! `node-agent mcp`: the fleet as tools over the Model Context Protocol, on stdin and stdout,
//! for the coding agents people plan in (Claude Code, Codex, Gemini CLI …; SPEC §20). The same
//! client and the same zero-setup discovery as the people's CLI: on a host that runs the
//! embedded control plane no flags are needed; a fleet takes the CLI's login, or
//! `BAA_CONTROL_API_BASE` and `BAA_ADMIN_TOKEN`.
//!
//! - [`tools`]: the tools: names, descriptions for a model, input schemas, which only read.
//! - [`arguments`]: a call's arguments held to its tool's schema, errors naming the field.
//! - [`calls`]: each tool as calls of the control plane.
//! - [`wait`]: `wait_for`: a task or a wave until it ends, with progress notifications.
//! - [`answers`]: short text for the model, the JSON beside it, failures as tool errors.
//! - [`server`]: rmcp's server handler: the tools a token may use, calls, progress.

pub mod answers;
pub mod arguments;
pub mod calls;
pub mod server;
pub mod tools;
pub mod wait;

use rmcp::ServiceExt;

use crate::people::discover::Given;

/// Serves until the client closes stdin. Nothing but the protocol goes to stdout.
pub async fn serve(given: Given) -> Result<(), String> {
    let running = server::Fleet::new(given)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|error| format!("the MCP client did not start a session: {error}"))?;
    running.waiting().await.map_err(|error| format!("the MCP session ended badly: {error}"))?;
    Ok(())
}
