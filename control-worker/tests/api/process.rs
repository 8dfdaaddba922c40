//! The `control-local` binary as an operator runs it: a real process, real signals.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::client::request;
use crate::support::*;

pub(crate) struct Process {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) stderr: std::sync::mpsc::Receiver<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub(crate) fn start(db: &std::path::Path, env: &[(&str, &str)]) -> Process {
    start_with_fd_limit(db, env, None)
}

/// `control-local` on a free loopback port; with `fd_limit`, under `ulimit -n` (launchd's
/// default on macOS is 256).
pub(crate) fn start_with_fd_limit(db: &std::path::Path, env: &[(&str, &str)], fd_limit: Option<u32>) -> Process {
    let port = free_port();
    let binary = env!("CARGO_BIN_EXE_control-local");
    let mut command = match fd_limit {
        None => Command::new(binary),
        Some(limit) => {
            let mut shell = Command::new("/bin/sh");
            shell.args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\""), binary]);
            shell
        }
    };
    command.args(["--listen", &format!("127.0.0.1:{port}"), "--db"]).arg(db).env_clear();
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (sender, stderr) = std::sync::mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "control-local did not start");
        std::thread::sleep(Duration::from_millis(25));
    }
    Process { child, base, stderr }
}

impl Process {
    pub(crate) fn post(&self, path: &str, token: &str, body: serde_json::Value) -> crate::client::Response {
        let auth = format!("Bearer {token}");
        request(&self.base, "POST", path, &[("authorization", &auth), ("content-type", "application/json")], body.to_string().as_bytes())
    }

    pub(crate) fn get(&self, path: &str, token: &str) -> crate::client::Response {
        let auth = format!("Bearer {token}");
        request(&self.base, "GET", path, &[("authorization", &auth)], b"")
    }

    /// SIGTERM, then the exit status and everything it logged.
    pub(crate) fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "control-local ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(50));
        (status, self.stderr.try_iter().collect())
    }
}

pub(crate) fn unsafe_kill(pid: u32, signal: &str) {
    Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
}

const ENV: &[(&str, &str)] = &[("CONTROL_API_BROWSER_ADMIN_TOKEN", BROWSER_ADMIN), ("BAA_SHARED_TOKEN", SHARED)];

#[test]
fn control_local_restarts_on_its_database_with_everything_intact() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state").join("control.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let first = start(&db, ENV);
    let created =
        ok(&first.post("/v1/tasks", BROWSER_ADMIN, json!({"repo": "/r", "task_type": "shell", "title": "keep me", "goal": "true"})), 201);
    let task_id = created["task_id"].as_str().unwrap().to_string();
    ok(&first.post("/v1/system/pause", BROWSER_ADMIN, json!({"reason": "before restart"})), 200);
    ok(
        &first.post(
            "/v1/controllers/heartbeat",
            SHARED,
            json!({"controller_id": "mini-main", "host": "mini", "role": "primary", "priority": 100, "status": "ok"}),
        ),
        200,
    );
    let lease = ok(&first.post("/v1/leader/acquire", SHARED, json!({"controller_id": "mini-main", "host": "mini", "ttl_sec": 600})), 200);
    let before = ok(&first.get(&format!("/v1/tasks/{task_id}"), BROWSER_ADMIN), 200);
    let (status, log) = first.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(log.iter().any(|line| line.contains("stopped")), "{log:?}");
    assert!(log.iter().any(|line| line.contains("POST /v1/tasks 201") && line.contains("request_id=")), "one line per request: {log:?}");
    assert!(log.iter().all(|line| !line.contains(BROWSER_ADMIN) && !line.contains(SHARED)), "no token in logs");

    let second = start(&db, ENV);
    assert_eq!(ok(&second.get(&format!("/v1/tasks/{task_id}"), BROWSER_ADMIN), 200), before);
    let state = ok(&second.get("/v1/system/state", BROWSER_ADMIN), 200);
    assert_eq!(state["mode"], "paused");
    assert_eq!(state["recent_mode_changes"][0]["reason"], "before restart");
    assert_eq!(state["holder_id"], "mini-main");
    assert_eq!(state["term"], lease["term"]);
    let renewed =
        ok(&second.post("/v1/leader/acquire", SHARED, json!({"controller_id": "mini-main", "host": "mini", "ttl_sec": 600})), 200);
    assert_eq!((renewed["operation"].clone(), renewed["term"].clone()), (json!("renew"), lease["term"].clone()));
    let (status, _) = second.terminate();
    assert!(status.success());
}

#[test]
fn control_local_warns_when_auth_is_off_and_refuses_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let open = start(&dir.path().join("open.db"), &[("CONTROL_API_AUTH_REQUIRED", "false")]);
    ok(&open.get("/v1/system/state", "whatever"), 200);
    let (_, log) = open.terminate();
    assert!(log.iter().any(|line| line.starts_with("WARNING") && line.contains("DISABLED")), "{log:?}");

    let closed = start(&dir.path().join("closed.db"), &[]);
    err(&closed.get("/v1/system/state", "whatever"), 503, "auth_not_configured");
    assert_eq!(request(&closed.base, "GET", "/healthz", &[], b"").status, 200);
    let (_, log) = closed.terminate();
    assert!(log.iter().any(|line| line.starts_with("WARNING") && line.contains("no token")), "{log:?}");
}

#[test]
fn control_local_mints_node_tokens_that_it_accepts() {
    let output = Command::new(env!("CARGO_BIN_EXE_control-local"))
        .args(["mint-node-token", "--node-id", "mini-main", "--host", "mini"])
        .env_clear()
        .env("CONTROL_API_NODE_TOKEN_SECRET", NODE_SECRET)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap().trim(), node_token("mini-main", "mini"));
    let refused = Command::new(env!("CARGO_BIN_EXE_control-local"))
        .args(["mint-node-token", "--node-id", "bad id", "--host", "mini"])
        .env_clear()
        .env("CONTROL_API_NODE_TOKEN_SECRET", NODE_SECRET)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("node_id"));
}
