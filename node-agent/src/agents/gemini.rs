//! `gemini --output-format stream-json` (Gemini CLI 0.61): one event per line: `init` (session id, model),
//! `message` (role, content, `delta` for streamed pieces), `tool_use` (tool_name, tool_id,
//! parameters), `tool_result` (tool_id, status, output), `error` (severity, message) and a final
//! `result` (status, `error`, `stats` with input, output and total tokens).

use std::collections::HashMap;

use serde_json::Value;

use super::tally::{Tally, Transcript};
use super::EventReader;

#[derive(Debug, Default)]
pub struct GeminiReader {
    /// The assistant's message being streamed in pieces.
    message: String,
    /// Shell calls waiting for their result: id → tool name.
    pending: HashMap<String, String>,
}

impl GeminiReader {
    fn flush(&mut self, tally: &mut Tally, transcript: &mut Transcript) {
        if !self.message.trim().is_empty() {
            transcript.message(&self.message);
            tally.final_message = Some(std::mem::take(&mut self.message));
        }
        self.message.clear();
    }
}

impl EventReader for GeminiReader {
    fn line(&mut self, line: &str, tally: &mut Tally, transcript: &mut Transcript) {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            if !line.trim().is_empty() {
                transcript.lines.push(line.to_string());
            }
            return;
        };
        let kind = event["type"].as_str().unwrap_or_default();
        if kind != "message" {
            self.flush(tally, transcript);
        }
        let text = |name: &str| event[name].as_str().unwrap_or_default().to_string();
        match kind {
            "init" => {
                tally.session_id = event["session_id"].as_str().map(str::to_string);
                tally.model = event["model"].as_str().map(str::to_string);
                transcript.note(format!("gemini session {}, model {}", text("session_id"), text("model")));
            }
            "message" if event["role"] == "assistant" => {
                if event["delta"].as_bool() != Some(true) {
                    self.flush(tally, transcript);
                }
                self.message.push_str(&text("content"));
            }
            "tool_use" => {
                let name = text("tool_name");
                let parameters = &event["parameters"];
                let field = |key: &str| parameters[key].as_str().unwrap_or_default();
                match name.as_str() {
                    "run_shell_command" => transcript.command(field("command")),
                    "replace" | "edit" => transcript.edited(field("file_path"), "edit"),
                    "write_file" => transcript.edited(field("file_path"), "write"),
                    _ => transcript.tool(&name, &parameters.to_string()),
                }
                self.pending.insert(text("tool_id"), name);
            }
            "tool_result" => {
                let name = self.pending.remove(&text("tool_id")).unwrap_or_default();
                let failed = event["status"] != "success";
                let output = match &event["output"] {
                    Value::String(output) => output.clone(),
                    _ => event["error"]["message"].as_str().unwrap_or_default().to_string(),
                };
                if name == "run_shell_command" {
                    transcript.command_end(if failed { "failed" } else { "ok" }, &output);
                } else if failed {
                    transcript.error(&format!("{name}: {output}"));
                }
            }
            "error" => {
                let message = text("message");
                transcript.error(&message);
                if super::tally::is_limit_message(&message) {
                    tally.limit(&message, None);
                }
            }
            "result" => {
                let stats = &event["stats"];
                tally.add_tokens(stats["input_tokens"].as_i64().or(stats["input"].as_i64()), stats["output_tokens"].as_i64());
                if event["status"] != "success" {
                    let message = event["error"]["message"].as_str().unwrap_or("the run failed").to_string();
                    transcript.error(&message);
                    if super::tally::is_limit_message(&message) {
                        tally.limit(&message, None);
                    }
                    tally.failed = Some(message);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Gemini CLI 0.61.0 printed, driven by the project's scripted model server.
    const RUN: &str = r#"{"type":"init","timestamp":"2026-12-03T15:18:01.505Z","session_id":"3aa70bff-3b6f-4922-81e0-aff3586a1807","model":"gemini-2.5-pro"}
{"type":"message","timestamp":"2026-12-03T15:18:01.511Z","role":"user","content":"fix a.txt"}
{"type":"message","timestamp":"2026-12-03T15:18:01.600Z","role":"assistant","content":"Looking at ","delta":true}
{"type":"message","timestamp":"2026-12-03T15:18:01.601Z","role":"assistant","content":"a.txt.","delta":true}
{"type":"tool_use","timestamp":"2026-12-03T15:18:01.728Z","tool_name":"run_shell_command","tool_id":"run_shell_command__run_shell_command_1796311081606_0","parameters":{"command":"printf 'hello\\n' > a.txt","description":"fix"}}
{"type":"tool_result","timestamp":"2026-12-03T15:18:01.910Z","tool_id":"run_shell_command__run_shell_command_1796311081606_0","status":"success","output":""}
{"type":"tool_use","timestamp":"2026-12-03T15:18:02.000Z","tool_name":"replace","tool_id":"replace_1","parameters":{"file_path":"/w/b.txt","old_string":"a","new_string":"b"}}
{"type":"tool_result","timestamp":"2026-12-03T15:18:02.100Z","tool_id":"replace_1","status":"success","output":""}
{"type":"message","timestamp":"2026-12-03T15:18:01.937Z","role":"assistant","content":"done: fixed","delta":true}
{"type":"result","timestamp":"2026-12-03T15:18:01.948Z","status":"success","stats":{"total_tokens":258,"input_tokens":240,"output_tokens":18,"cached":0,"input":240,"duration_ms":443,"tool_calls":1,"models":{"gemini-2.5-pro":{"total_tokens":258,"input_tokens":240,"output_tokens":18,"cached":0,"input":240}}}}"#;

    fn read(output: &str) -> (Tally, Vec<String>) {
        crate::agents::read_all(crate::agents::Preset::Gemini, output)
    }

    #[test]
    fn streamed_messages_tools_and_stats() {
        let (tally, lines) = read(RUN);
        assert_eq!(tally.session_id.as_deref(), Some("3aa70bff-3b6f-4922-81e0-aff3586a1807"));
        assert_eq!((tally.input_tokens, tally.output_tokens), (Some(240), Some(18)));
        assert_eq!(tally.final_message.as_deref(), Some("done: fixed"));
        assert_eq!(
            lines[1..],
            ["agent: Looking at a.txt.", "$ printf 'hello\\n' > a.txt", "  → ok", "edited /w/b.txt (edit)", "agent: done: fixed",]
        );
    }

    #[test]
    fn a_quota_error_is_a_limit() {
        let (tally, _) = read(
            r#"{"type":"result","status":"error","error":{"type":"ApiError","message":"[API Error: 429 RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Generate Content API requests per minute']"},"stats":{}}"#,
        );
        assert!(tally.limit.is_some() && tally.failed.is_some());
    }
}
