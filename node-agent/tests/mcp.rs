//! SPEC §20: `node-agent mcp` as MCP clients use it, on a host running `start --embedded`
//! (no flag, no variable: the same discovery as the people's CLI).
//!
//! - The MCP Inspector's CLI (the protocol's reference client, pinned in the tool cache) lists
//!   the tools (its `--strict` portability checks find nothing) and calls every one; Ajv holds
//!   each input schema to JSON Schema 2020-12 and the arguments called with to it.
//! - Bad input is a tool error naming the field; a read-only token is offered the reading
//!   tools alone and cannot create.
//! - The real Claude Code CLI, with `--mcp-config` naming `node-agent mcp` and driven by the
//!   scripted model server, creates two cards (the second needs the first) and waits for the
//!   wave: both run on the fleet, and the model's last request carries the wave's result.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::mcp_clients::{names, raw_session, schemas_hold, Inspector};
use common::model_server::{ModelServer, Reply};
use common::real_clis::{clis_bin, path_with_clis};
use common::*;
use serde_json::{json, Value};

const READING_TOOLS: [&str; 7] = ["tasks_list", "tasks_show", "tasks_logs", "tasks_report", "tasks_diff", "system_state", "wait_for"];

/// A person's host: `start --embedded` under `<dir>/home` (with `env`), and a scratch
/// repository; the agent is stopped when this is dropped, also when a test fails.
struct Host {
    dir: tempfile::TempDir,
    home: PathBuf,
    repo: String,
    agent: std::process::Child,
    /// The embedded control plane's address and admin token.
    base: String,
    token: String,
}

impl Host {
    fn start(env: &[(&str, &str)]) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let repo = git_repo(dir.path()).display().to_string();
        let agent = embedded_agent(&home, env);
        let (base, token) = embedded_plane(&home);
        Host { dir, home, repo, agent, base, token }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
    }
}

#[test]
fn the_inspector_lists_and_calls_every_tool_on_an_embedded_host() {
    let host = Host::start(&[]);
    let (home, repo) = (host.home.clone(), host.repo.clone());
    let inspector = Inspector { home: home.clone(), server_env: Vec::new() };
    let tools = inspector.tools();
    let mut expected: Vec<&str> = vec![
        "tasks_create",
        "cards_import",
        "tasks_list",
        "tasks_show",
        "tasks_logs",
        "tasks_report",
        "tasks_diff",
        "tasks_cancel",
        "tasks_approve",
        "tasks_reject",
        "system_state",
        "accounts_resume",
        "wait_for",
    ];
    expected.sort();
    assert_eq!(names(&tools), expected);
    for tool in &tools {
        assert!(tool["description"].as_str().is_some_and(|text| !text.is_empty() && !text.contains('\n')), "{tool}");
        assert_eq!(tool["annotations"]["readOnlyHint"], READING_TOOLS.contains(&tool["name"].as_str().unwrap()), "{tool}");
    }
    let mut calls = Vec::new();

    let state = inspector.ok("system_state", json!({}), &mut calls);
    assert!(state.text.starts_with("mode      running\n"), "{}", state.text);
    assert_eq!(state.data["mode"], "running");

    let goal = "echo hello from I-1; echo one > one.txt";
    let created =
        inspector.ok("tasks_create", json!({"repo": repo, "task_type": "shell", "key": "I-1", "title": "first", "goal": goal}), &mut calls);
    assert!(created.text.starts_with("Created task task_") && created.text.contains("(key I-1)"), "{}", created.text);
    let first_id = created.data["task_id"].as_str().unwrap().to_string();

    let card = "---\ntask_id: I-2\ntitle: second\ntask_type: shell\nbase_ref: task:I-1\ndepends_on: [I-1]\n---\n\ncat one.txt > two.txt\n";
    let imported = inspector.ok("cards_import", json!({"cards": [card], "repo": repo}), &mut calls);
    assert!(imported.text.starts_with("created I-2 as task task_"), "{}", imported.text);
    assert_eq!(imported.data["cards"][0]["created"], true);

    let waited = inspector.ok("wait_for", json!({"wave": "I-", "timeout_sec": 90}), &mut calls);
    assert!(waited.text.starts_with("wave I- succeeded after "), "{}", waited.text);
    assert!(waited.text.contains(&format!("- I-1 {first_id} succeeded, branch baa/{first_id} at ")), "{}", waited.text);
    assert_eq!(waited.data["tasks"].as_array().unwrap().len(), 2);

    let listed = inspector.ok("tasks_list", json!({"key_prefix": "I-", "status": "succeeded"}), &mut calls);
    assert_eq!(listed.text.lines().count(), 3, "a header and two tasks:\n{}", listed.text);
    assert_eq!(listed.data["tasks"].as_array().unwrap().len(), 2);

    let shown = inspector.ok("tasks_show", json!({"task": "I-2"}), &mut calls);
    for expected in ["  succeeded  ", "  head       ", "             two.txt", "Report:\n# I-2: second"] {
        assert!(shown.text.contains(expected), "{expected:?} in:\n{}", shown.text);
    }
    let logs = inspector.ok("tasks_logs", json!({"task": "I-1", "lines": 5}), &mut calls);
    assert!(logs.text.contains("(stdout and stderr) of task") && logs.text.contains("\nhello from I-1\n"), "{}", logs.text);
    let report = inspector.ok("tasks_report", json!({"task": "I-2"}), &mut calls);
    assert!(report.text.contains("## files_changed") && report.text.contains("two.txt"), "{}", report.text);
    let diff = inspector.ok("tasks_diff", json!({"task": "I-2", "max_bytes": 1000}), &mut calls);
    assert!(diff.text.contains("+++ b/two.txt\n") && diff.text.contains("+one\n"), "{}", diff.text);
    assert_eq!(diff.data["truncated"], false);

    // Review: one rejected with a line comment, one approved; a long task canceled.
    for key in ["I-3", "I-4"] {
        inspector.ok(
            "tasks_create",
            json!({"repo": repo, "task_type": "shell", "key": key, "title": key, "goal": "echo three > three.txt", "review": true}),
            &mut calls,
        );
    }
    let in_review = inspector.ok("wait_for", json!({"task": "I-3", "timeout_sec": 90}), &mut calls);
    assert!(in_review.text.contains("- I-3 task_") && in_review.text.contains(" review, branch "), "{}", in_review.text);
    let reject = json!({"task": "I-3", "reason": "four, not three", "comments": [{"path": "three.txt", "line": 1, "comment": "say four"}]});
    let rejected = inspector.ok("tasks_reject", reject, &mut calls);
    assert!(rejected.text.starts_with("I-3 task_") && rejected.text.contains("  failed  "), "{}", rejected.text);
    inspector.ok("wait_for", json!({"task": "I-4", "timeout_sec": 90}), &mut calls);
    let approved = inspector.ok("tasks_approve", json!({"task": "I-4", "comment": "good"}), &mut calls);
    assert!(approved.text.contains("  succeeded  "), "{}", approved.text);
    inspector.ok(
        "tasks_create",
        json!({"repo": repo, "task_type": "shell", "key": "I-5", "title": "long", "goal": "sleep 120"}),
        &mut calls,
    );
    let canceled = inspector.ok("tasks_cancel", json!({"task": "I-5", "reason": "not needed"}), &mut calls);
    assert!(canceled.text.contains("  canceled  "), "{}", canceled.text);

    // No account is parked: the API's refusal is the tool's error, with the account decoded.
    calls.push(json!({"name": "accounts_resume", "arguments": {"account": "claude:ann@example.com"}}));
    let resumed = inspector.call("accounts_resume", json!({"account": "claude:ann@example.com"}));
    assert!(resumed.is_error);
    assert_eq!(resumed.text, "invalid_transition (409): account claude:ann@example.com is not parked and no step waits for it");
    assert_eq!(resumed.data["details"]["account"], "claude:ann@example.com");

    schemas_hold(&tools, &calls);
}

#[test]
fn bad_input_is_a_tool_error_naming_the_field_and_a_read_only_token_cannot_create() {
    let read_only = "mcp-test-read-only-token-0123456789";
    let host = Host::start(&[("CONTROL_API_READONLY_TOKEN", read_only)]);
    let (home, repo) = (host.home.clone(), host.repo.clone());
    let admin = Inspector { home: home.clone(), server_env: Vec::new() };

    // A field where it does not belong: the API's message, its field, nothing created.
    let misplaced =
        admin.call("tasks_create", json!({"repo": repo, "task_type": "shell", "title": "t", "goal": "true", "base_ref": "main"}));
    assert!(misplaced.is_error);
    assert_eq!(misplaced.text, "invalid_request (400): unknown field base_ref; did you mean constraints.base_ref? [field: base_ref]");
    assert_eq!(misplaced.data["details"]["field"], "base_ref");
    let mistyped = admin.call("tasks_logs", json!({"task": "I-1", "lines": "many"}));
    assert_eq!((mistyped.is_error, mistyped.text.as_str()), (true, "invalid_request: lines must be an integer [field: lines]"));
    let misspelt = admin.call("tasks_reject", json!({"task": "I-1", "reason": "r", "comments": [{"path": "a", "line": 1, "coment": "x"}]}));
    assert!(
        misspelt.is_error && misspelt.text.contains("did you mean comment?") && misspelt.data["details"]["field"] == "comments[0].coment",
        "{}",
        misspelt.text
    );
    let neither = admin.call("wait_for", json!({}));
    assert!(neither.is_error && neither.text.contains("give task or wave"), "{}", neither.text);
    let unknown = admin.call("tasks_show", json!({"task": "NOPE-1"}));
    assert!(
        unknown.is_error && unknown.text.contains("no task with id or key NOPE-1") && unknown.data["details"]["field"] == "task",
        "{}",
        unknown.text
    );
    assert_eq!(admin.call("tasks_list", json!({})).text, "no tasks\n", "nothing was created");

    // A read-only token: the reading tools alone, and a create refused.
    let reader = Inspector { home: home.clone(), server_env: vec![format!("BAA_ADMIN_TOKEN={read_only}")] };
    let mut reading: Vec<&str> = READING_TOOLS.to_vec();
    reading.sort();
    assert_eq!(names(&reader.tools()), reading);
    let (code, _, stderr) = reader.run(&["--method", "tools/call", "--tool-name", "tasks_create", "--tool-args-json", "{}"]);
    assert!(code != 0 && stderr.contains("tool_not_found"), "the Inspector does not call what is not offered: {stderr}");
    // A client that calls it all the same: a tool error from the server itself.
    let create = json!({"repo": repo, "task_type": "shell", "title": "t", "goal": "true"});
    let (refused, _) = raw_session(&home, &[("BAA_ADMIN_TOKEN", read_only)], &[("tasks_create", create)]);
    assert_eq!(refused[0]["isError"], true, "{refused:?}");
    assert_eq!(refused[0]["structuredContent"]["data"]["error"], "forbidden");
    let text = refused[0]["content"][0]["text"].as_str().unwrap();
    assert_eq!(text, "forbidden: this token is read-only: tasks_create changes the fleet and is not offered to it");
    assert!(!reader.call("system_state", json!({})).is_error, "a read-only token reads");
    assert_eq!(admin.call("tasks_list", json!({})).text, "no tasks\n", "nothing was created");

    // While it waits, wait_for reports progress to a client that gave a token.
    let slow = json!({"repo": repo, "task_type": "shell", "key": "P-1", "title": "slow", "goal": "sleep 4"});
    let wait = json!({"task": "P-1", "timeout_sec": 60});
    let (answers, notifications) = raw_session(&home, &[], &[("tasks_create", slow), ("wait_for", wait)]);
    assert!(answers[1]["content"][0]["text"].as_str().unwrap().starts_with("task P-1 succeeded after "), "{answers:?}");
    let progress: Vec<&Value> = notifications.iter().filter(|note| note["method"] == "notifications/progress").collect();
    assert!(!progress.is_empty(), "{notifications:?}");
    for note in &progress {
        assert_eq!(note["params"]["progressToken"], "call-2");
        assert_eq!(note["params"]["total"], 1.0);
        assert!(note["params"]["message"].as_str().unwrap().starts_with("0 of 1 ended: P-1 "), "{note}");
    }
    let values: Vec<f64> = progress.iter().map(|note| note["params"]["progress"].as_f64().unwrap()).collect();
    assert!(values.windows(2).all(|pair| pair[1] > pair[0]), "progress only grows: {values:?}");
}

/// One conversation as the model saw it: each tool call and the text each answered.
fn transcript(requests: &[Value]) -> String {
    let mut out = String::new();
    for message in requests.last().map(|last| last["messages"].as_array().unwrap().clone()).unwrap_or_default() {
        for block in message["content"].as_array().cloned().unwrap_or_else(|| vec![json!({"type": "text", "text": message["content"]})]) {
            match block["type"].as_str() {
                Some("tool_use") => out.push_str(&format!("→ {} {}\n", block["name"].as_str().unwrap_or(""), block["input"])),
                Some("tool_result") => {
                    let text: Vec<String> = match &block["content"] {
                        Value::String(text) => vec![text.clone()],
                        Value::Array(parts) => parts.iter().filter_map(|part| part["text"].as_str().map(str::to_string)).collect(),
                        _ => Vec::new(),
                    };
                    // Claude Code hands the model the structured content (as JSON) when there is
                    // some: the answer leads it.
                    let text = text.join("\n");
                    let answer = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|structured| structured["answer"].as_str().map(str::to_string))
                        .unwrap_or(text);
                    out.push_str(&format!("← {}\n", answer.trim_end().replace('\n', "\n  ")));
                }
                Some("text") if message["role"] == "user" => {
                    let text = block["text"].as_str().unwrap_or("");
                    if !text.starts_with("<system-reminder>") {
                        out.push_str(&format!("user: {}\n", text.trim()));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[test]
fn claude_code_hands_a_wave_of_two_cards_to_the_fleet_and_waits_for_it() {
    let host = Host::start(&[]);
    let (home, repo, base, token) = (host.home.clone(), host.repo.clone(), host.base.clone(), host.token.clone());
    let first =
        json!({"repo": repo, "task_type": "shell", "key": "M-1", "title": "write the greeting", "goal": "echo hello > greeting.txt"});
    let second = json!({"repo": repo, "task_type": "shell", "key": "M-2", "title": "shout it", "goal": "tr a-z A-Z < greeting.txt > loud.txt",
        "depends_on": ["M-1"], "constraints": {"base_ref": "task:M-1"}});
    let server = ModelServer::start(vec![
        Reply::Tool { name: "mcp__baa__tasks_create".into(), input: first },
        Reply::Tool { name: "mcp__baa__tasks_create".into(), input: second },
        Reply::Tool { name: "mcp__baa__wait_for".into(), input: json!({"wave": "M-", "timeout_sec": 120}) },
        Reply::Say("Both cards ran: the wave M- succeeded.".into()),
    ]);
    let config = host.dir.path().join("mcp.json");
    let servers = json!({"mcpServers": {"baa": {"type": "stdio", "command": env!("CARGO_BIN_EXE_node-agent"), "args": ["mcp"], "env": {"HOME": home}}}});
    std::fs::write(&config, servers.to_string()).unwrap();
    let output = Command::new(clis_bin().join("claude"))
        .args(["-p", "Split the greeting work into two cards, send them to the fleet and tell me when the wave is done."])
        .args(["--mcp-config", config.to_str().unwrap(), "--strict-mcp-config", "--output-format", "json", "--max-turns", "8"])
        .args(["--allowedTools", "mcp__baa__tasks_create,mcp__baa__wait_for"])
        .current_dir(host.dir.path())
        .env_clear()
        .env("HOME", &home)
        .env("PATH", path_with_clis())
        .env("ANTHROPIC_BASE_URL", server.base())
        .env("ANTHROPIC_API_KEY", "sk-ant-scripted")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("MCP_TOOL_TIMEOUT", "300000")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "claude failed: {stdout}\n{stderr}");
    let said: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("{error}: {stdout}"));
    assert_eq!(said["result"], "Both cards ran: the wave M- succeeded.", "{said}");
    assert_eq!(server.replies_left(), 0, "the model's whole script was played");

    // Both ran on the fleet, the second from the first's branch.
    let tasks = http(&base, "GET", "/v1/tasks?limit=10", &token, None)["data"]["tasks"].as_array().unwrap().clone();
    let by_key = |key: &str| tasks.iter().find(|task| task["key"] == key).unwrap_or_else(|| panic!("no {key}: {tasks:?}")).clone();
    let (one, two) = (by_key("M-1"), by_key("M-2"));
    assert_eq!((one["status"].as_str(), two["status"].as_str()), (Some("succeeded"), Some("succeeded")));
    assert_eq!(two["depends_on"], json!([one["task_id"]]));
    let diff = &http(&base, "GET", &format!("/v1/tasks/{}/diff", two["task_id"].as_str().unwrap()), &token, None)["data"];
    assert!(diff["patch"].as_str().unwrap_or("").contains("+HELLO"), "{diff}");

    // The model's last request carries the wave's result, as wait_for answered it.
    let requests = server.requests();
    assert_eq!(requests.len(), 4, "three tool calls and the last turn");
    let shown = transcript(&requests);
    println!(
        "The conversation as the model saw it (each answer as the `answer` of the structured content Claude Code handed it):\n{shown}"
    );
    let created_lines: Vec<&str> = shown.lines().filter(|line| line.starts_with("← Created task task_")).collect();
    assert_eq!(created_lines.len(), 2, "{shown}");
    assert!(shown.contains("\n← wave M- succeeded after "), "{shown}");
    let last = requests.last().unwrap().to_string();
    assert!(last.contains("wave M- succeeded after ") && last.contains(r#"\"ended\":true"#), "the result itself: {last}");
    for task in [&one, &two] {
        let line = format!(
            "- {} {} succeeded, branch {} at ",
            task["key"].as_str().unwrap(),
            task["task_id"].as_str().unwrap(),
            task["branch_name"].as_str().unwrap()
        );
        assert!(shown.contains(&line), "{line:?} in:\n{shown}");
    }
}
