//! `node-agent start --embedded` as a user runs it: one process serves the control plane on
//! SQLite in its state directory, runs the conductor and the runner, and serves the status
//! page. Tokens are generated once (the admin token printed once); a shell task posted with the
//! admin token runs to `succeeded` and shows on the status page.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

/// GET `path`; the status code, content type and body.
fn get(address: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    std::io::Write::write_all(&mut stream, format!("GET {path} HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type =
        head.lines().find_map(|line| line.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_string)).unwrap_or_default();
    (status, content_type, body.to_string())
}

/// The addresses the agent bound (it was given port 0 for both), from its log.
fn bound_addresses(out: &std::path::Path) -> (String, String) {
    let log = out.with_extension("err");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    (logged_address(read, "embedded control plane on http://"), logged_address(read, "status server on http://"))
}

fn wait_until_serving(address: &str) {
    wait_until(Duration::from_secs(20), || TcpStream::connect(address).map_err(|_| format!("nothing listens on {address}")));
}

struct Embedded {
    child: Child,
}

impl Embedded {
    fn start(root: &std::path::Path, control: &str, status: &str, out: &std::path::Path) -> Embedded {
        let child = Command::new(env!("CARGO_BIN_EXE_node-agent"))
            .args(["start", "--embedded", "--control-listen", control, "--local-api", status, "--host", "mini"])
            .args(["--heartbeat-interval-ms", "300", "--step-heartbeat-interval-ms", "500"])
            .arg("--runtime-root")
            .arg(root)
            .env_clear()
            .env("HOME", root)
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        Embedded { child }
    }

    fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        wait_exit(&mut self.child, Duration::from_secs(20), "the embedded agent")
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_process_runs_the_whole_system_and_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let root = dir.path().join("root");
    let first_out = dir.path().join("first.out");
    let agent = Embedded::start(&root, "127.0.0.1:0", "127.0.0.1:0", &first_out);
    let (control, status) = bound_addresses(&first_out);
    wait_until_serving(&control);
    wait_until_serving(&status);

    // The admin token is printed once, with the URLs, and kept private in the state directory.
    let printed = wait_until(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&first_out).unwrap();
        if text.contains("admin token") && text.contains("mode 0600") {
            return Ok(text);
        }
        Err(text)
    });
    let admin = printed.lines().find_map(|line| line.trim().strip_prefix("admin token")).unwrap().trim().to_string();
    assert!(printed.contains(&format!("http://{control}")) && printed.contains(&format!("http://{status}/")), "{printed}");
    let tokens_file = root.join("state/embedded-tokens.env");
    assert_eq!(std::fs::metadata(&tokens_file).unwrap().permissions().mode() & 0o777, 0o600);
    let logged = std::fs::read_to_string(first_out.with_extension("err")).unwrap();
    assert!(!logged.contains(&admin), "the token is not in the log");

    // A task posted with the admin token runs to succeeded.
    let base = format!("http://{control}");
    let created = http(
        &base,
        "POST",
        "/v1/tasks",
        &admin,
        Some(json!({"repo": repo, "task_type": "shell", "title": "hello", "goal": "echo hello > hello.txt"})),
    );
    let task_id = created["data"]["task_id"].as_str().unwrap_or_else(|| panic!("{created}")).to_string();
    wait_until(Duration::from_secs(20), || {
        let detail = http(&base, "GET", &format!("/v1/tasks/{task_id}"), &admin, None);
        if detail["data"]["status"] == "succeeded" {
            return Ok(());
        }
        Err(format!("{detail:#}"))
    });

    // The status server: every route of SPEC §9.
    assert_eq!(get(&status, "/healthz"), (200, "text/plain; charset=utf-8".into(), "ok".into()));
    let (code, _, body) = get(&status, "/v1/status");
    let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((code, snapshot["ok"].as_bool()), (200, Some(true)));
    assert_eq!(snapshot["data"]["lease"]["state"], "leader");
    assert_eq!(snapshot["data"]["embedded"]["enabled"], true);
    wait_until(Duration::from_secs(10), || {
        let (_, _, body) = get(&status, "/v1/status");
        let snapshot: serde_json::Value = serde_json::from_str(&body).unwrap();
        let recent = snapshot["data"]["runner"]["recent"].as_array();
        if recent.is_some_and(|recent| recent.iter().any(|run| run["task_id"] == task_id.as_str())) {
            return Ok(());
        }
        Err(format!("{snapshot:#}"))
    });
    for path in ["/", "/ui", "/v1/status/ui"] {
        let (code, content_type, page) = get(&status, path);
        assert_eq!((code, content_type.as_str()), (200, "text/html; charset=utf-8"), "{path}");
        assert!(page.contains("mini-main") && page.contains(&task_id) && page.contains("http-equiv=\"refresh\""), "{path}: {page}");
    }
    let (code, content_type, metrics) = get(&status, "/metrics");
    assert_eq!(code, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"));
    assert!(metrics.contains("baa_lease_is_leader{node_id=\"mini-main\"} 1"), "{metrics}");
    let (code, _, body) = get(&status, "/v1/nothing-here");
    let envelope: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((code, envelope["ok"].as_bool(), envelope["error"].as_str()), (404, Some(false), Some("route_not_found")));

    assert!(agent.stop().success());

    // The second start reuses the tokens and prints none.
    let second_out = dir.path().join("second.out");
    let agent = Embedded::start(&root, "127.0.0.1:0", "127.0.0.1:0", &second_out);
    let (control, _) = bound_addresses(&second_out);
    let base = format!("http://{control}");
    wait_until_serving(&control);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!std::fs::read_to_string(&second_out).unwrap().contains("admin token"));
    let state = http(&base, "GET", "/v1/system/state", &admin, None);
    assert_eq!(state["ok"], true, "{state}");
    assert!(agent.stop().success());
}

#[test]
fn start_without_a_control_plane_names_both_ways() {
    let output = Command::new(env!("CARGO_BIN_EXE_node-agent")).arg("start").env_clear().env("HOME", "/nonexistent").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("--control-api-base") && text.contains("--embedded"), "{text}");
    let output = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args(["start", "--embedded", "--control-api-base", "http://127.0.0.1:1"])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be combined with --embedded"));
}
