//! `codex exec --json`: one event per line on stdout (`thread.started`, `turn.started`,
//! `item.started` / `item.completed` with an item of type `agent_message`, `reasoning`,
//! `command_execution`, `file_change`, `mcp_tool_call`, `web_search`, `todo_list`, `error`;
//! `turn.completed` with its usage; `turn.failed` and `error` with a message). A usage limit
//! arrives as an `error` and a `turn.failed` whose message is the one codex shows people
//! ("You’ve hit your usage limit. Try again at 3:51 PM."): its reset is read from that text.

use serde_json::Value;

use super::tally::{Tally, Transcript};
use super::EventReader;

#[derive(Debug, Default)]
pub struct CodexReader;

impl EventReader for CodexReader {
    fn line(&mut self, line: &str, tally: &mut Tally, transcript: &mut Transcript) {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            if !line.trim().is_empty() {
                transcript.lines.push(line.to_string());
            }
            return;
        };
        let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
        match event["type"].as_str().unwrap_or_default() {
            "thread.started" => {
                tally.session_id = event["thread_id"].as_str().map(str::to_string);
                transcript.note(format!("codex session {}", text(&event["thread_id"])));
            }
            "turn.completed" => {
                let usage = &event["usage"];
                tally.add_tokens(usage["input_tokens"].as_i64(), usage["output_tokens"].as_i64());
            }
            "turn.failed" => {
                let message = text(&event["error"]["message"]);
                failure(&message, tally);
            }
            // An `error` is not the end of the turn ("Reconnecting..." while the model is out of
            // reach); a limit is, and `turn.failed` follows it.
            "error" => {
                let message = text(&event["message"]);
                transcript.error(&message);
                if super::tally::is_limit_message(&message) {
                    tally.limit(&message, None);
                }
            }
            "item.started" => {
                let item = &event["item"];
                if item["type"] == "command_execution" {
                    transcript.command(item["command"].as_str().unwrap_or_default());
                }
            }
            "item.completed" => item_completed(&event["item"], tally, transcript),
            _ => {}
        }
    }
}

fn item_completed(item: &Value, tally: &mut Tally, transcript: &mut Transcript) {
    let text = |name: &str| item[name].as_str().unwrap_or_default();
    match text("type") {
        "agent_message" => {
            transcript.message(text("text"));
            tally.final_message = Some(text("text").to_string());
        }
        "reasoning" => transcript.thinking(text("text")),
        "command_execution" => {
            let outcome = match item["exit_code"].as_i64() {
                Some(code) => format!("exit {code}"),
                None => text("status").to_string(),
            };
            transcript.command_end(&outcome, text("aggregated_output"));
        }
        "file_change" => {
            for change in item["changes"].as_array().into_iter().flatten() {
                transcript.edited(change["path"].as_str().unwrap_or("?"), change["kind"].as_str().unwrap_or("changed"));
            }
            if item["status"] == "failed" {
                transcript.error("the patch did not apply");
            }
        }
        "mcp_tool_call" => transcript.tool(&format!("{}.{}", text("server"), text("tool")), text("status")),
        "web_search" => transcript.tool("web_search", text("query")),
        "todo_list" => {
            for entry in item["items"].as_array().into_iter().flatten() {
                let done = if entry["completed"].as_bool().unwrap_or(false) { "x" } else { " " };
                transcript.lines.push(format!("  [{done}] {}", entry["text"].as_str().unwrap_or_default()));
            }
        }
        "error" => transcript.note(format!("codex: {}", text("message"))),
        _ => {}
    }
}

/// A failed turn: a usage limit when its message says so.
fn failure(message: &str, tally: &mut Tally) {
    tally.failed = Some(message.to_string());
    if super::tally::is_limit_message(message) {
        tally.limit(message, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What codex-cli 0.171.0 printed, driven by the project's scripted model server.
    const FIX: &str = r#"{"type":"thread.started","thread_id":"01a23c63-31ff-7f51-a363-ec2aef9ae81b"}
{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `scripted-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues."}}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc \"cat a.txt\"","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc \"cat a.txt\"","aggregated_output":"hi\n","exit_code":0,"status":"completed"}}
{"type":"item.started","item":{"id":"item_2","type":"file_change","changes":[{"path":"/tmp/explore/repo/a.txt","kind":"update"}],"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":[{"path":"/tmp/explore/repo/a.txt","kind":"update"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"done: fixed"}}
{"type":"turn.completed","usage":{"input_tokens":200,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":14,"reasoning_output_tokens":0}}"#;

    const LIMIT: &str = r#"{"type":"thread.started","thread_id":"01a23c63-6bf0-7e10-8ee4-1805e5ac6788"}
{"type":"turn.started"}
{"type":"error","message":"You’ve hit your usage limit. Try again at 3:51 PM."}
{"type":"turn.failed","error":{"message":"You’ve hit your usage limit. Try again at 3:51 PM."}}"#;

    fn read(output: &str) -> (Tally, Vec<String>) {
        crate::agents::read_all(crate::agents::Preset::Codex, output)
    }

    #[test]
    fn a_fix_reads_as_a_transcript_with_its_usage_and_session() {
        let (tally, lines) = read(FIX);
        assert_eq!(tally.session_id.as_deref(), Some("01a23c63-31ff-7f51-a363-ec2aef9ae81b"));
        assert_eq!((tally.input_tokens, tally.output_tokens), (Some(200), Some(14)));
        assert_eq!(tally.final_message.as_deref(), Some("done: fixed"));
        assert_eq!(tally.failed, None);
        assert_eq!(
            lines[2..],
            ["$ /bin/bash -lc \"cat a.txt\"", "  | hi", "  → exit 0", "edited /tmp/explore/repo/a.txt (update)", "agent: done: fixed"]
        );
    }

    #[test]
    fn a_usage_limit_is_a_structured_failure() {
        let (tally, lines) = read(LIMIT);
        let limit = tally.limit.expect("a limit");
        assert_eq!(limit.message, "You’ve hit your usage limit. Try again at 3:51 PM.");
        assert!(tally.failed.is_some());
        assert!(lines.contains(&"error: You’ve hit your usage limit. Try again at 3:51 PM.".to_string()));
    }

    #[test]
    fn reconnecting_is_no_failure() {
        let (tally, lines) = read(
            r#"{"type":"error","message":"Reconnecting... waiting for network (Connection failed: error sending request)"}
{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"done"}}"#,
        );
        assert_eq!((tally.failed, tally.limit), (None, None));
        assert_eq!(lines[0], "error: Reconnecting... waiting for network (Connection failed: error sending request)");
    }

    #[test]
    fn other_lines_pass_through() {
        let (_, lines) = read("Reading additional input from stdin...\n\n");
        assert_eq!(lines, ["Reading additional input from stdin..."]);
    }
}
