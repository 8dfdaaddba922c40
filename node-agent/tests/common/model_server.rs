//! A scripted model server on 127.0.0.1 for the real coding CLIs (SPEC §16): the OpenAI
//! Responses API over SSE (`POST /v1/responses`, what codex speaks with a custom provider of
//! `wire_api = "responses"`) and the Anthropic Messages API over SSE (`POST /v1/messages`,
//! what Claude Code speaks to `ANTHROPIC_BASE_URL`) and the Gemini API's
//! `streamGenerateContent` over SSE (what Gemini CLI speaks to `GOOGLE_GEMINI_BASE_URL`) and the
//! Chat Completions API without streaming (what aider speaks to `OPENAI_API_BASE`). Each turn of the conversation takes the
//! next reply of the script: a shell command through the CLI's own tool, a patch, a final
//! message, a usage limit (HTTP 429 as each vendor sends it), or an answer that never comes.
//! Every request is recorded, for tests to read what the CLI sent.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// What the model does next.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Runs a shell command through the CLI's tool (codex `exec_command`, Claude Code `Bash`).
    Shell(String),
    /// Edits a file through codex's `apply_patch` (replaces the line `from` with `to`).
    Patch { file: String, from: String, to: String },
    /// Ends the turn with a message.
    Say(String),
    /// Calls a tool of the client's by name with this input (Claude Code: an MCP server's
    /// tool is `mcp__<server>__<tool>`).
    Tool { name: String, input: Value },
    /// HTTP 429: codex's `usage_limit_reached` with `resets_at`; for Claude Code a
    /// subscription's unified limit `rejected` with its reset.
    Limit { resets_at: i64 },
    /// Takes the request and never answers.
    Hang,
}

/// Tokens each answer reports: (input, output).
pub const CODEX_TOKENS: (i64, i64) = (100, 7);
pub const CLAUDE_TOKENS: (i64, i64) = (50, 12);
pub const GEMINI_TOKENS: (i64, i64) = (120, 9);
pub const CHAT_TOKENS: (i64, i64) = (1500, 40);

#[derive(Default)]
struct State {
    replies: VecDeque<Reply>,
    /// `(path, body)` of every request, in order.
    requests: Vec<(String, Value)>,
    /// Connections held open by `Hang`.
    held: Vec<TcpStream>,
}

pub struct ModelServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl ModelServer {
    pub fn start(replies: Vec<Reply>) -> ModelServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State { replies: replies.into(), ..State::default() }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        ModelServer { addr, state }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bodies of the conversation requests (`/v1/responses`, `/v1/messages`), in order.
    pub fn requests(&self) -> Vec<Value> {
        self.state.lock().unwrap().requests.iter().map(|(_, body)| body.clone()).collect()
    }

    pub fn replies_left(&self) -> usize {
        self.state.lock().unwrap().replies.len()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let method = request_line.split_whitespace().next().unwrap_or("GET").to_string();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut out = stream.try_clone().unwrap();
        if method != "POST" {
            respond(&mut out, 404, "application/json", &[], b"{}");
            continue;
        }
        let api = if path.starts_with("/v1/responses") {
            Api::Responses
        } else if path.starts_with("/v1/messages") && !path.contains("count_tokens") {
            Api::Messages
        } else if path.contains(":streamGenerateContent") || path.contains(":generateContent") {
            Api::GenerateContent
        } else if path.starts_with("/v1/chat/completions") {
            Api::ChatCompletions
        } else {
            respond(&mut out, 404, "application/json", &[], b"{\"error\":{\"type\":\"not_found\"}}");
            continue;
        };
        // Claude Code's side requests (titles, topics) carry no tools: they do not take a reply.
        let has_tools = body["tools"].as_array().is_some_and(|tools| !tools.is_empty());
        let conversation = match api {
            Api::Responses => true,
            Api::Messages => body["stream"] == true && has_tools,
            // Gemini CLI's side calls (routing, next speaker, loop checks) are plain generateContent.
            Api::GenerateContent => path.contains(":streamGenerateContent") && has_tools,
            Api::ChatCompletions => true,
        };
        let reply = {
            let mut state = state.lock().unwrap();
            if conversation {
                state.requests.push((path.clone(), body.clone()));
                state.replies.pop_front().unwrap_or(Reply::Say("done".into()))
            } else {
                Reply::Say("ok".into())
            }
        };
        match (api, reply) {
            (_, Reply::Hang) => {
                state.lock().unwrap().held.push(stream);
                return;
            }
            (Api::Responses, Reply::Limit { resets_at }) => {
                let body = json!({"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached", "resets_at": resets_at}});
                respond(&mut out, 429, "application/json", &[], body.to_string().as_bytes());
            }
            (Api::Messages, Reply::Limit { resets_at }) => {
                let body = json!({"type": "error", "error": {"type": "rate_limit_error", "message": "This request would exceed your account's rate limit. Please try again later."}});
                let reset = resets_at.to_string();
                let headers = [
                    ("anthropic-ratelimit-unified-status", "rejected"),
                    ("anthropic-ratelimit-unified-reset", reset.as_str()),
                    ("x-should-retry", "false"),
                ];
                respond(&mut out, 429, "application/json", &headers, body.to_string().as_bytes());
            }
            (Api::Responses, reply) => respond(&mut out, 200, "text/event-stream", &[], responses_stream(&reply).as_bytes()),
            (Api::Messages, reply) if body["stream"] == true => respond(
                &mut out,
                200,
                "text/event-stream",
                &[],
                messages_stream(&reply, body["model"].as_str().unwrap_or("claude")).as_bytes(),
            ),
            (Api::GenerateContent, Reply::Limit { .. }) => {
                let body = json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}});
                respond(&mut out, 429, "application/json", &[], body.to_string().as_bytes());
            }
            (Api::GenerateContent, reply) if path.contains(":streamGenerateContent") => {
                respond(&mut out, 200, "text/event-stream", &[], format!("data: {}\r\n\r\n", generate_content(&reply)).as_bytes())
            }
            (Api::GenerateContent, reply) => {
                respond(&mut out, 200, "application/json", &[], generate_content(&reply).to_string().as_bytes())
            }
            (Api::ChatCompletions, Reply::Say(text)) => {
                let (input, output) = CHAT_TOKENS;
                let answer = json!({"id": format!("chatcmpl-{}", next_id()), "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}});
                respond(&mut out, 200, "application/json", &[], answer.to_string().as_bytes());
            }
            (Api::ChatCompletions, _) => unreachable!("the Chat Completions API answers with messages only here"),
            (Api::Messages, _) => {
                let answer = json!({"id": "msg_side", "type": "message", "role": "assistant", "model": body["model"], "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}});
                respond(&mut out, 200, "application/json", &[], answer.to_string().as_bytes());
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
    Responses,
    Messages,
    GenerateContent,
    ChatCompletions,
}

fn respond(out: &mut TcpStream, status: u16, content_type: &str, headers: &[(&str, &str)], body: &[u8]) {
    let reason = if status == 200 {
        "OK"
    } else if status == 429 {
        "Too Many Requests"
    } else {
        "Not Found"
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes()).and_then(|()| out.write_all(body)).and_then(|()| out.flush());
}

fn sse(events: &[Value]) -> String {
    events.iter().map(|event| format!("event: {}\ndata: {event}\n\n", event["type"].as_str().unwrap_or("message"))).collect()
}

static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_id() -> u64 {
    SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// One answer of the Responses API: `response.created`, the output item, `response.completed`
/// with its usage.
fn responses_stream(reply: &Reply) -> String {
    let id = next_id();
    let item = match reply {
        Reply::Shell(command) => {
            json!({"type": "function_call", "id": format!("fc_{id}"), "call_id": format!("call_{id}"), "name": "exec_command", "arguments": json!({"cmd": command}).to_string()})
        }
        Reply::Patch { file, from, to } => {
            let patch = format!("apply_patch <<'EOF'\n*** Begin Patch\n*** Update File: {file}\n@@\n-{from}\n+{to}\n*** End Patch\nEOF\n");
            json!({"type": "function_call", "id": format!("fc_{id}"), "call_id": format!("call_{id}"), "name": "exec_command", "arguments": json!({"cmd": patch}).to_string()})
        }
        Reply::Say(text) => {
            json!({"type": "message", "role": "assistant", "id": format!("msg_{id}"), "content": [{"type": "output_text", "text": text}]})
        }
        Reply::Limit { .. } | Reply::Hang | Reply::Tool { .. } => unreachable!("answered before, or not a Responses API answer here"),
    };
    let (input, output) = CODEX_TOKENS;
    sse(&[
        json!({"type": "response.created", "response": {"id": format!("resp_{id}")}}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        json!({"type": "response.completed", "response": {"id": format!("resp_{id}"), "usage": {
            "input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": input + output}}}),
    ])
}

/// One answer of the Messages API: `message_start`, the content blocks, `message_delta` with
/// the stop reason and usage, `message_stop`.
fn messages_stream(reply: &Reply, model: &str) -> String {
    let id = next_id();
    let (input, output) = CLAUDE_TOKENS;
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1}}}),
    ];
    let stop_reason = match reply {
        Reply::Shell(command) => {
            events.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": format!("toolu_{id}"), "name": "Bash", "input": {}}}));
            events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": json!({"command": command, "description": "run it"}).to_string()}}));
            events.push(json!({"type": "content_block_stop", "index": 0}));
            "tool_use"
        }
        Reply::Tool { name, input } => {
            events.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": format!("toolu_{id}"), "name": name, "input": {}}}));
            events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}));
            events.push(json!({"type": "content_block_stop", "index": 0}));
            "tool_use"
        }
        Reply::Say(text) => {
            events.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
            events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}));
            events.push(json!({"type": "content_block_stop", "index": 0}));
            "end_turn"
        }
        Reply::Patch { .. } | Reply::Limit { .. } | Reply::Hang => unreachable!("not a Messages API answer"),
    };
    events.push(
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output}}),
    );
    events.push(json!({"type": "message_stop"}));
    sse(&events)
}

/// One answer of the Gemini API: a candidate with a function call or text, and its usage.
fn generate_content(reply: &Reply) -> Value {
    let part = match reply {
        Reply::Shell(command) => {
            json!({"functionCall": {"name": "run_shell_command", "args": {"command": command, "description": "run it"}}})
        }
        Reply::Say(text) => json!({"text": text}),
        Reply::Patch { .. } | Reply::Limit { .. } | Reply::Hang | Reply::Tool { .. } => unreachable!("not a Gemini API answer here"),
    };
    let (input, output) = GEMINI_TOKENS;
    json!({
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": input, "candidatesTokenCount": output, "totalTokenCount": input + output},
        "modelVersion": "gemini-2.5-pro"
    })
}
