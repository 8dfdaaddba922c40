//! MCP clients for the tests of `node-agent mcp` (SPEC §20): the MCP Inspector's CLI (the
//! protocol's reference client, pinned in the tool cache), a raw newline-delimited JSON-RPC
//! session as any client speaks it, and Ajv on the tools' schemas.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::real_clis::{clis_bin, path_with_clis};
use super::wait_exit;

/// The MCP Inspector's CLI against `node-agent mcp`, as a person on this host (`HOME` and
/// `PATH` only); `server_env` goes to the server (`-e`: a stdio client passes few variables).
pub struct Inspector {
    pub home: PathBuf,
    pub server_env: Vec<String>,
}

/// What one call answered: whether it was a tool error, its text, its structured content.
pub struct Answer {
    pub is_error: bool,
    pub text: String,
    pub data: Value,
}

impl Inspector {
    pub fn run(&self, args: &[&str]) -> (i32, Value, String) {
        let mut command = Command::new(clis_bin().join("inspector"));
        command.args(["--cli", "--format", "json"]).args(args);
        for variable in &self.server_env {
            command.args(["-e", variable]);
        }
        let output = command
            .arg(env!("CARGO_BIN_EXE_node-agent"))
            .arg("mcp")
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", path_with_clis())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr).into_owned());
        let answer = match stdout.trim() {
            "" => Value::Null,
            json => serde_json::from_str(json).unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}\n{stderr}")),
        };
        (output.status.code().unwrap_or(-1), answer, stderr)
    }

    pub fn tools(&self) -> Vec<Value> {
        let (code, listed, stderr) = self.run(&["--method", "tools/list", "--strict"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(!stderr.contains("Warning") && !stderr.contains("Error"), "schema portability problems:\n{stderr}");
        listed["result"]["tools"].as_array().unwrap().clone()
    }

    pub fn call(&self, tool: &str, arguments: Value) -> Answer {
        let arguments = arguments.to_string();
        let (code, answered, stderr) = self.run(&["--method", "tools/call", "--tool-name", tool, "--tool-args-json", &arguments]);
        let result = &answered["result"];
        let is_error = result["isError"] == true;
        assert_eq!(code, if is_error { 5 } else { 0 }, "{tool}: {answered}\n{stderr}");
        let text = result["content"][0]["text"].as_str().unwrap_or_default().to_string();
        let structured = &result["structuredContent"];
        assert_eq!(structured["answer"], text.as_str(), "{tool}: the text again beside the JSON: {answered}");
        assert!(structured["data"].is_object(), "{tool}: the JSON beside the text: {answered}");
        Answer { is_error, text, data: structured["data"].clone() }
    }

    #[track_caller]
    pub fn ok(&self, tool: &str, arguments: Value, calls: &mut Vec<Value>) -> Answer {
        calls.push(json!({"name": tool, "arguments": arguments}));
        let answer = self.call(tool, arguments);
        assert!(!answer.is_error, "{tool}: {}", answer.text);
        answer
    }
}

/// A session of newline-delimited JSON-RPC with `node-agent mcp`, as any client speaks it:
/// initialize, then each tool call in turn (each with a progress token); the calls' results
/// and the notifications that came before them.
pub fn raw_session(home: &Path, env: &[(&str, &str)], calls: &[(&str, Value)]) -> (Vec<Value>, Vec<Value>) {
    let mut lines = vec![
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ];
    for (index, (tool, arguments)) in calls.iter().enumerate() {
        let params = json!({"name": tool, "arguments": arguments, "_meta": {"progressToken": format!("call-{}", index + 1)}});
        lines.push(json!({"jsonrpc": "2.0", "id": index + 1, "method": "tools/call", "params": params}));
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .arg("mcp")
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let (mut answers, mut notifications) = (Vec::new(), Vec::new());
    for line in lines {
        std::io::Write::write_all(&mut input, format!("{line}\n").as_bytes()).unwrap();
        if line.get("id").is_none() {
            continue;
        }
        loop {
            let mut answer = String::new();
            std::io::BufRead::read_line(&mut reader, &mut answer).unwrap();
            let answer: Value = serde_json::from_str(&answer).unwrap_or_else(|error| panic!("{error}: {answer}"));
            if answer.get("id").is_none() {
                notifications.push(answer);
                continue;
            }
            if answer["id"] != 0 {
                answers.push(answer["result"].clone());
            }
            break;
        }
    }
    drop(input);
    assert!(wait_exit(&mut child, std::time::Duration::from_secs(10), "node-agent mcp").success(), "ends when its input does");
    (answers, notifications)
}

pub fn names(tools: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = tools.iter().map(|tool| tool["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    names
}

/// Ajv (from the Inspector's own dependencies) on the tools' schemas and the calls made.
pub fn schemas_hold(tools: &[Value], calls: &[Value]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/schemas.cjs");
    let modules = clis_bin().parent().unwrap().to_path_buf();
    let mut child = Command::new("node")
        .arg(script)
        .arg(modules)
        .env("PATH", path_with_clis())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), json!({"tools": tools, "calls": calls}).to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the schemas do not hold:\n{}", String::from_utf8_lossy(&output.stdout));
}
