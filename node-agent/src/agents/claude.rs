//! `claude -p … --output-format stream-json --verbose`: one JSON message per line on stdout:
//! `system` (`init`: the session id, the model), `assistant` (text and `tool_use` blocks),
//! `user` (`tool_result` blocks), `rate_limit_event` (a subscription's limit: `status`
//! `rejected` with `resetsAt`), and a final `result` (usage, `total_cost_usd`, `is_error`,
//! `api_error_status`, `result`: the last message or the error).

use std::collections::HashMap;

use serde_json::Value;

use super::tally::{one_line, Tally, Transcript};
use super::EventReader;

/// Claude Code's answer when `--resume` names a session it does not have.
pub const NO_SUCH_SESSION: &str = "No conversation found with session ID";

#[derive(Debug, Default)]
pub struct ClaudeReader {
    /// Tool calls waiting for their result: id → tool name.
    pending: HashMap<String, String>,
}

impl EventReader for ClaudeReader {
    fn line(&mut self, line: &str, tally: &mut Tally, transcript: &mut Transcript) {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            if !line.trim().is_empty() {
                transcript.lines.push(line.to_string());
            }
            return;
        };
        match event["type"].as_str().unwrap_or_default() {
            "system" if event["subtype"] == "init" => {
                tally.session_id = event["session_id"].as_str().map(str::to_string);
                tally.model = event["model"].as_str().map(str::to_string);
                transcript.note(format!(
                    "claude session {}, model {}",
                    event["session_id"].as_str().unwrap_or("?"),
                    event["model"].as_str().unwrap_or("?")
                ));
            }
            "assistant" => {
                for block in event["message"]["content"].as_array().into_iter().flatten() {
                    self.assistant_block(block, transcript);
                }
            }
            "user" => {
                for block in event["message"]["content"].as_array().into_iter().flatten() {
                    if block["type"] == "tool_result" {
                        self.tool_result(block, &event["tool_use_result"], transcript);
                    }
                }
            }
            "rate_limit_event" => {
                let info = &event["rate_limit_info"];
                if info["status"] == "rejected" {
                    let resets_at = info["resetsAt"].as_i64();
                    tally.limit("usage limit reached (Claude Code rate_limit_event: rejected)", resets_at);
                    transcript
                        .error(&format!("usage limit: rejected, resets at {}", resets_at.map(|at| at.to_string()).unwrap_or("?".into())));
                }
            }
            "result" => result(&event, tally, transcript),
            _ => {}
        }
    }
}

impl ClaudeReader {
    fn assistant_block(&mut self, block: &Value, transcript: &mut Transcript) {
        let input = &block["input"];
        let field = |name: &str| input[name].as_str().unwrap_or_default();
        match block["type"].as_str().unwrap_or_default() {
            "text" => transcript.message(block["text"].as_str().unwrap_or_default()),
            "thinking" => transcript.thinking(block["thinking"].as_str().unwrap_or_default()),
            "tool_use" => {
                let name = block["name"].as_str().unwrap_or("?").to_string();
                match name.as_str() {
                    "Bash" => transcript.command(field("command")),
                    "Edit" | "MultiEdit" => transcript.edited(field("file_path"), "edit"),
                    "Write" => transcript.edited(field("file_path"), "write"),
                    "NotebookEdit" => transcript.edited(field("notebook_path"), "edit"),
                    "Read" => transcript.tool("Read", field("file_path")),
                    "Grep" | "Glob" => transcript.tool(&name, field("pattern")),
                    _ => transcript.tool(&name, &input.to_string()),
                }
                if let Some(id) = block["id"].as_str() {
                    self.pending.insert(id.to_string(), name);
                }
            }
            _ => {}
        }
    }

    fn tool_result(&mut self, block: &Value, details: &Value, transcript: &mut Transcript) {
        let name = block["tool_use_id"].as_str().and_then(|id| self.pending.remove(id)).unwrap_or_default();
        let content = match &block["content"] {
            Value::String(text) => text.clone(),
            Value::Array(parts) => parts.iter().filter_map(|part| part["text"].as_str()).collect::<Vec<_>>().join("\n"),
            _ => String::new(),
        };
        let is_error = block["is_error"].as_bool().unwrap_or(false);
        if name == "Bash" {
            // Claude Code gives no exit code for a command that succeeded, and starts a failed
            // one's content with "Exit code N".
            let output = match (details["stdout"].as_str(), details["stderr"].as_str()) {
                (Some(stdout), Some(stderr)) if !is_error => format!("{stdout}\n{stderr}"),
                _ => content.clone(),
            };
            let outcome = if is_error {
                content
                    .lines()
                    .next()
                    .and_then(|line| line.strip_prefix("Exit code "))
                    .map(|code| format!("exit {}", code.trim()))
                    .unwrap_or_else(|| "failed".into())
            } else {
                "exit 0".into()
            };
            transcript.command_end(&outcome, &output);
        } else if is_error {
            transcript.error(&format!("{name}: {}", one_line(&content, 300)));
        }
    }
}

fn result(event: &Value, tally: &mut Tally, transcript: &mut Transcript) {
    let usage = &event["usage"];
    let input = ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
        .iter()
        .filter_map(|name| usage[*name].as_i64())
        .reduce(|sum, tokens| sum + tokens);
    tally.add_tokens(input, usage["output_tokens"].as_i64());
    if let Some(cost) = event["total_cost_usd"].as_f64() {
        tally.cost_usd = Some(tally.cost_usd.unwrap_or(0.0) + cost);
    }
    if let Some(session) = event["session_id"].as_str() {
        tally.session_id.get_or_insert_with(|| session.to_string());
    }
    let text = event["result"].as_str().unwrap_or_default();
    if event["is_error"].as_bool().unwrap_or(false) {
        let message = if text.is_empty() {
            event["errors"].as_array().and_then(|errors| errors.first()).and_then(Value::as_str).unwrap_or("error").to_string()
        } else {
            text.to_string()
        };
        transcript.error(&message);
        tally.failed = Some(message.clone());
        if event["api_error_status"].as_i64() == Some(429) || super::tally::is_limit_message(&message) {
            tally.limit(&message, None);
        }
    } else if !text.is_empty() {
        tally.final_message = Some(text.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Claude Code 2.1.332 printed, driven by the project's scripted model server (lines
    /// shortened to the fields read).
    const FIX: &str = r#"{"type":"system","subtype":"init","cwd":"/tmp/explore/repo","session_id":"41f40567-fd6c-4a25-a6dc-ddaf47432e04","tools":["Bash","Edit"],"model":"claude-opus-5-5"}
{"type":"assistant","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-opus-5-5","content":[{"type":"text","text":"I will fix it."}]},"session_id":"41f40567-fd6c-4a25-a6dc-ddaf47432e04"}
{"type":"assistant","message":{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"printf 'hello\\n' > a.txt","description":"fix"}}]}}
{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"(Bash completed with no output)","is_error":false}]},"tool_use_result":{"stdout":"","stderr":"","interrupted":false,"isImage":false}}
{"type":"assistant","message":{"id":"msg_2","content":[{"type":"tool_use","id":"toolu_2","name":"Edit","input":{"file_path":"/w/a.txt","old_string":"hi","new_string":"hello"}}]}}
{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_2","type":"tool_result","content":"The file has been updated.","is_error":false}]}}
{"type":"assistant","message":{"id":"msg_3","content":[{"type":"tool_use","id":"toolu_3","name":"Bash","input":{"command":"make test"}}]}}
{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_3","type":"tool_result","content":"Exit code 2\nmake: *** No rule to make target 'test'.","is_error":true}]}}
{"type":"assistant","message":{"id":"msg_4","content":[{"type":"text","text":"done 2"}]}}
{"type":"result","subtype":"success","is_error":false,"api_error_status":null,"duration_ms":386,"num_turns":2,"result":"done 2","session_id":"41f40567-fd6c-4a25-a6dc-ddaf47432e04","total_cost_usd":0.00088,"usage":{"input_tokens":100,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":24}}"#;

    /// A subscription's limit: Claude Code 2.1.332 answered HTTP 429 with
    /// `anthropic-ratelimit-unified-status: rejected` and `-reset: 1796313215`.
    const LIMIT: &str = r#"{"type":"system","subtype":"init","session_id":"88e03ba4-42d6-41fa-9174-f70efbc01b72","model":"claude-sonnet-5-5"}
{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1796313215,"isUsingOverage":false},"session_id":"88e03ba4-42d6-41fa-9174-f70efbc01b72"}
{"type":"assistant","message":{"model":"<synthetic>","content":[{"type":"text","text":"API Error: Server is temporarily limiting requests (not your usage limit) · This request would exceed your account's rate limit. Please try again later."}]},"error":"rate_limit"}
{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"API Error: Server is temporarily limiting requests (not your usage limit) · This request would exceed your account's rate limit. Please try again later.","session_id":"88e03ba4-42d6-41fa-9174-f70efbc01b72","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0}}"#;

    fn read(output: &str) -> (Tally, Vec<String>) {
        crate::agents::read_all(crate::agents::Preset::Claude, output)
    }

    #[test]
    fn a_fix_reads_as_a_transcript_with_its_usage_cost_and_session() {
        let (tally, lines) = read(FIX);
        assert_eq!(tally.session_id.as_deref(), Some("41f40567-fd6c-4a25-a6dc-ddaf47432e04"));
        assert_eq!((tally.input_tokens, tally.output_tokens, tally.cost_usd), (Some(100), Some(24), Some(0.00088)));
        assert_eq!(tally.model.as_deref(), Some("claude-opus-5-5"));
        assert_eq!(tally.final_message.as_deref(), Some("done 2"));
        assert_eq!(
            lines[1..],
            [
                "agent: I will fix it.",
                "$ printf 'hello\\n' > a.txt",
                "  → exit 0",
                "edited /w/a.txt (edit)",
                "$ make test",
                "  | Exit code 2",
                "  | make: *** No rule to make target 'test'.",
                "  → exit 2",
                "agent: done 2",
            ]
        );
    }

    #[test]
    fn a_rejected_rate_limit_gives_its_reset() {
        let (tally, _) = read(LIMIT);
        let limit = tally.limit.expect("a limit");
        assert_eq!(limit.resets_at, Some(1_796_313_215));
        assert!(tally.failed.unwrap().starts_with("API Error"));
    }

    #[test]
    fn an_unknown_session_is_an_error_result() {
        let (tally, _) = read(
            r#"{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":0,"session_id":"00000000-0000-0000-0000-000000000000","errors":["No conversation found with session ID: 00000000-0000-0000-0000-000000000000"]}"#,
        );
        assert!(tally.failed.unwrap().contains(NO_SUCH_SESSION));
        assert_eq!(tally.limit, None);
    }
}
