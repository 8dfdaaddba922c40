//! The MCP server (rmcp's `ServerHandler`): lists the tools the token may use, checks a call's
//! arguments, runs it, and answers text with structured content — a failure as a tool error
//! (`isError`), never a protocol error, so the model reads what went wrong.
//!
//! The control plane is found as the people's CLI finds it, at the first call (and again
//! after it stopped answering: an embedded host may have restarted on another address).
//! Whether the token is read-only is asked of the control plane once: `tasks.create` with an
//! empty body, which an admin token is answered 400 for (nothing is created: the body is
//! checked before anything is written) and a read-only token 403 before the body is read.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ServerCapabilities, ServerConfig, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::answers::{self, Answer};
use super::tools::{self, Tool};
use super::{arguments, calls};
use crate::people::api::{Api, Failure};
use crate::people::discover::{self, Given};

pub struct Fleet {
    given: Given,
    api: Mutex<Option<Arc<Api>>>,
    read_only: Mutex<Option<bool>>,
}

const INSTRUCTIONS: &str = "baa-conductor runs coding-agent tasks on a fleet of hosts. Create tasks (cards) with tasks_create or \
cards_import; cards that depend on others wait for them, and an integrate task merges a wave's branches. Follow them with \
tasks_list, tasks_show and tasks_logs, wait for a task or wave with wait_for, then read tasks_report and tasks_diff, and \
approve or reject (with line comments) tasks that wait in review.";

impl Fleet {
    pub fn new(given: Given) -> Fleet {
        Fleet { given, api: Mutex::new(None), read_only: Mutex::new(None) }
    }

    async fn api(&self) -> Result<Arc<Api>, Failure> {
        let mut slot = self.api.lock().await;
        if let Some(api) = slot.as_ref() {
            return Ok(api.clone());
        }
        let connection = discover::connection(&self.given).map_err(|error| Failure::new("no_control_plane", error))?;
        let api = Api::new(&connection.base, &connection.token).map_err(|error| Failure::new("no_control_plane", error))?;
        let api = Arc::new(api.with_source(&connection.source));
        *slot = Some(api.clone());
        Ok(api)
    }

    /// Whether the token may only read; `None` while the control plane cannot be asked.
    async fn read_only(&self) -> Option<bool> {
        let mut known = self.read_only.lock().await;
        if known.is_none() {
            let api = self.api().await.ok()?;
            *known = match api.create(&json!({})).await {
                Err(failure) if failure.status == Some(403) => Some(true),
                Err(failure) if failure.status.is_some() => Some(false),
                Ok(_) => Some(false),
                Err(_) => None,
            };
        }
        *known
    }

    /// The tools offered: the reading ones alone to a read-only token.
    pub async fn offered(&self) -> Vec<Tool> {
        let read_only = self.read_only().await == Some(true);
        tools::ALL.into_iter().filter(|tool| !read_only || tool.reads_only()).collect()
    }

    async fn run(
        &self,
        tool: Tool,
        arguments: &serde_json::Map<String, Value>,
        context: &RequestContext<RoleServer>,
    ) -> Result<Answer, Failure> {
        if tool != Tool::TasksCreate {
            // tasks.create's body is held to its fields by the API itself, which names a
            // misplaced field where it belongs.
            arguments::check_object(&tool.input_schema(), arguments, "")?;
        }
        if !tool.reads_only() && self.read_only().await == Some(true) {
            return Err(Failure::new(
                "forbidden",
                format!("this token is read-only: {} changes the fleet and is not offered to it", tool.name()),
            ));
        }
        let api = self.api().await?;
        let (sender, forwarder) = match context.meta.get_progress_token() {
            Some(token) => {
                let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<super::wait::Progress>();
                let peer = context.peer.clone();
                let forwarder = tokio::spawn(async move {
                    while let Some(progress) = receiver.recv().await {
                        let param = ProgressNotificationParam::new(token.clone(), progress.done)
                            .with_total(progress.total)
                            .with_message(progress.message);
                        let _ = peer.notify_progress(param).await;
                    }
                });
                (Some(sender), Some(forwarder))
            }
            None => (None, None),
        };
        let answer = tokio::select! {
            answer = calls::call(&api, tool, arguments, sender) => answer,
            () = context.ct.cancelled() => Err(Failure::new("canceled", "the client canceled the call")),
        };
        // Every progress notification goes out before the answer.
        if let Some(forwarder) = forwarder {
            let _ = forwarder.await;
        }
        if answer.as_ref().is_err_and(|failure| failure.code == "unreachable") {
            *self.api.lock().await = None;
        }
        answer
    }
}

/// The MCP tool of one of ours.
pub fn describe(tool: Tool) -> rmcp::model::Tool {
    let annotations = ToolAnnotations::new()
        .read_only(tool.reads_only())
        .destructive(matches!(tool, Tool::TasksCancel | Tool::TasksReject))
        .idempotent(tool.reads_only() || matches!(tool, Tool::CardsImport))
        .open_world(false);
    rmcp::model::Tool::new(tool.name(), tool.description(), tools::schema_object(tool)).with_annotations(annotations)
}

/// The text as content, and as structured content the same text (`answer`) beside the full
/// JSON (`data`): some clients hand the model the structured content instead of the text
/// (Claude Code does when it is small enough), and then the model still reads the short
/// answer first (keys are in order).
fn result(answer: Answer, is_error: bool) -> CallToolResult {
    let structured = json!({"answer": answer.text, "data": answer.data});
    let mut result = if is_error {
        CallToolResult::error(vec![ContentBlock::text(answer.text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(answer.text)])
    };
    result.structured_content = Some(structured);
    result
}

impl ServerHandler for Fleet {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("baa-conductor", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.offered().await.into_iter().map(describe).collect()))
    }

    async fn call_tool(&self, request: CallToolRequestParams, context: RequestContext<RoleServer>) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = Tool::named(&request.name) else {
            let names: Vec<&str> = tools::ALL.iter().map(|tool| tool.name()).collect();
            let failure =
                Failure::new("unknown_tool", format!("no tool {}; the tools are {}", request.name, names.join(", "))).with_field("name");
            return Ok(result(answers::failure(&failure), true).into());
        };
        let arguments = request.arguments.unwrap_or_default();
        let answer = match self.run(tool, &arguments, &context).await {
            Ok(answer) => result(answer, false),
            Err(failure) => result(answers::failure(&failure), true),
        };
        Ok(answer.into())
    }
}
