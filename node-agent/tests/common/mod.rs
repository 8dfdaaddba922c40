//! What the agent's process tests share: a raw HTTP client for the Control API, the control
//! plane on loopback (the control-local server, in this process), agents as real processes,
//! and scratch git repositories.

#![allow(dead_code)]

pub mod mcp_clients;
pub mod model_server;
pub mod real_clis;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use control_worker::core::config::Config;
use control_worker::native::{os_random, start_in_thread, Meter, RunningServer, ServerOptions, SystemClock};
use serde_json::Value;

pub const ADMIN: &str = "agent-test-admin-token";
pub const SERVICE: &str = "agent-test-service-token";

pub fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// One request, one connection; the parsed JSON envelope. Panics when the server is away.
pub fn http(base: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
    try_http(base, method, path, token, body).unwrap_or_else(|error| panic!("{method} {path}: {error}"))
}

pub fn try_http(base: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> Result<Value, String> {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).map_err(|error| error.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|error| error.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|error| error.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let (_, json_body) = response.split_once("\r\n\r\n").ok_or("no body")?;
    serde_json::from_str(json_body).map_err(|error| error.to_string())
}

/// The control plane on loopback with a SQLite file that outlives restarts.
pub struct ControlPlane {
    pub db: PathBuf,
    pub addr: SocketAddr,
    settings: Vec<(String, String)>,
    server: Option<RunningServer>,
    /// Requests and rows written, when started with [`ControlPlane::start_metered`].
    pub meter: Option<std::sync::Arc<Meter>>,
}

fn config(settings: &[(String, String)]) -> Config {
    let mut pairs = vec![("CONTROL_API_BROWSER_ADMIN_TOKEN", ADMIN), ("BAA_SHARED_TOKEN", SERVICE)];
    pairs.extend(settings.iter().map(|(name, value)| (name.as_str(), value.as_str())));
    Config::from_pairs(&pairs).unwrap().0
}

impl ControlPlane {
    pub fn start(dir: &Path) -> ControlPlane {
        Self::start_with(dir, &[])
    }

    /// With more configuration (`CONTROL_API_HOST_LOST_AFTER_SEC`, ...).
    pub fn start_with(dir: &Path, settings: &[(&str, &str)]) -> ControlPlane {
        let settings: Vec<(String, String)> = settings.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        let db = dir.join("control.db");
        let server = start_in_thread(ServerOptions::loopback(db.clone(), config(&settings)), SystemClock, os_random()).unwrap();
        ControlPlane { db, addr: server.addr, settings, server: Some(server), meter: None }
    }

    /// Counting requests per route and rows written (the budget benchmark).
    pub fn start_metered(dir: &Path, settings: &[(&str, &str)]) -> ControlPlane {
        let settings: Vec<(String, String)> = settings.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        let db = dir.join("control.db");
        let meter = std::sync::Arc::new(Meter::default());
        let options = ServerOptions { meter: Some(meter.clone()), ..ServerOptions::loopback(db.clone(), config(&settings)) };
        let server = start_in_thread(options, SystemClock, os_random()).unwrap();
        ControlPlane { db, addr: server.addr, settings, server: Some(server), meter: Some(meter) }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
    }

    /// Serves again on the same address and database.
    pub fn restart(&mut self) {
        let server = wait_until(Duration::from_secs(10), || {
            let options = ServerOptions { listen: self.addr, ..ServerOptions::loopback(self.db.clone(), config(&self.settings)) };
            start_in_thread(options, SystemClock, os_random()).map_err(|error| format!("the control plane did not come back: {error}"))
        });
        self.server = Some(server);
    }

    pub fn create_task(&self, body: Value) -> String {
        let answer = http(&self.base(), "POST", "/v1/tasks", ADMIN, Some(body));
        answer["data"]["task_id"].as_str().unwrap_or_else(|| panic!("{answer}")).to_string()
    }

    pub fn task(&self, task_id: &str) -> Value {
        http(&self.base(), "GET", &format!("/v1/tasks/{task_id}"), ADMIN, None)["data"].clone()
    }

    /// Polls until the task's status is one of `statuses`; its detail.
    pub fn wait_task(&self, task_id: &str, statuses: &[&str], limit: Duration) -> Value {
        wait_until(limit, || {
            let detail = self.task(task_id);
            match statuses.contains(&detail["status"].as_str().unwrap_or("")) {
                true => Ok(detail),
                false => Err(format!("task {task_id} not {statuses:?}: {detail:#}")),
            }
        })
    }

    /// Every log chunk of a task (optionally of one stream), in cursor order.
    pub fn logs(&self, task_id: &str, stream: Option<&str>) -> Vec<Value> {
        let mut chunks = Vec::new();
        let mut after = 0;
        loop {
            let filter = stream.map(|stream| format!("&stream={stream}")).unwrap_or_default();
            let page = http(&self.base(), "GET", &format!("/v1/tasks/{task_id}/logs?after={after}&limit=1000{filter}"), ADMIN, None);
            let page_chunks = page["data"]["chunks"].as_array().cloned().unwrap_or_default();
            if page_chunks.is_empty() {
                return chunks;
            }
            after = page_chunks.last().unwrap()["cursor"].as_i64().unwrap();
            chunks.extend(page_chunks);
        }
    }

    /// The text of a task's stream, chunks in seq order.
    pub fn log_text(&self, task_id: &str, stream: &str) -> String {
        let mut chunks = self.logs(task_id, Some(stream));
        chunks.sort_by_key(|chunk| (chunk["run_id"].as_str().unwrap_or("").to_string(), chunk["seq"].as_i64().unwrap_or(0)));
        chunks.iter().map(|chunk| chunk["text"].as_str().unwrap_or("")).collect()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `node-agent start` process; its stderr goes to `<dir>/<name>.log`.
pub struct Agent {
    pub name: String,
    pub log: PathBuf,
    pub root: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    child: Option<Child>,
}

impl Agent {
    /// An agent with short intervals, status server off, runtime root `<dir>/<name>`.
    pub fn new(base: &str, name: &str, dir: &Path) -> Agent {
        let args = [
            "start",
            "--control-api-base",
            base,
            "--node-id",
            name,
            "--host",
            "mini",
            "--local-api",
            "off",
            "--lease-ttl-sec",
            "5",
            "--lease-renew-interval-ms",
            "1000",
            "--heartbeat-interval-ms",
            "300",
            "--step-heartbeat-interval-ms",
            "500",
            "--kill-grace-ms",
            "2000",
            "--shutdown-grace-ms",
            "2000",
        ];
        Agent {
            name: name.to_string(),
            log: dir.join(format!("{name}.log")),
            root: dir.join(name),
            args: args.iter().map(|arg| arg.to_string()).collect(),
            envs: Vec::new(),
            child: None,
        }
    }

    /// Sets an option, replacing the value it had.
    pub fn arg(mut self, name: &str, value: &str) -> Agent {
        match self.args.iter().position(|arg| arg == name) {
            Some(index) => self.args[index + 1] = value.to_string(),
            None => self.args.extend([name.to_string(), value.to_string()]),
        }
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Agent {
        self.envs.push((name.to_string(), value.to_string()));
        self
    }

    pub fn spawn(&mut self) {
        let log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_node-agent"))
            .args(&self.args)
            .arg("--runtime-root")
            .arg(&self.root)
            .env_clear()
            .env("HOME", self.root.parent().unwrap())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BAA_SHARED_TOKEN", SERVICE)
            .envs(self.envs.iter().map(|(name, value)| (name.as_str(), value.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        wait_exit(&mut child, Duration::from_secs(20), &self.name)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// The run directory of a run.
    pub fn run_dir(&self, task_id: &str, run_id: &str) -> PathBuf {
        self.runs_dir().join(task_id).join(run_id)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits for `child` to exit, at most `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    wait_until(limit, || child.try_wait().unwrap().ok_or_else(|| format!("{what} has not exited")))
}

/// The `host:port` a process logged after `marker` (`... on http://`), once it has: how a test
/// learns the port of a server it asked to listen on port 0.
pub fn logged_address(read_log: impl Fn() -> String, marker: &str) -> String {
    wait_until(Duration::from_secs(20), || {
        let text = read_log();
        let found = text.lines().find_map(|line| line.split_once(marker).map(|(_, rest)| rest.to_string()));
        found
            .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '/').next().map(str::to_string))
            .ok_or_else(|| format!("nothing logged after {marker:?} yet: {text}"))
    })
}

/// The one wait loop of the tests: calls `probe` every 50 ms until it gives `Ok(value)`; after
/// `limit`, fails with what the last `Err` said.
pub fn wait_until<T>(limit: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(why) if Instant::now() >= deadline => panic!("not within {limit:?}: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git").arg("-C").arg(dir).args(args).stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "git {args:?}");
}

/// `git -C dir args…`: its trimmed stdout, or `Err(stderr)`.
pub fn git_output(dir: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// A bare repository `<dir>/<name>.git` cloned from `source`, and its `file://` URL.
pub fn bare_clone(source: &Path, dir: &Path, name: &str) -> (PathBuf, String) {
    let bare = dir.join(format!("{name}.git"));
    let status = Command::new("git").args(["clone", "-q", "--bare"]).arg(source).arg(&bare).status().unwrap();
    assert!(status.success());
    let url = format!("file://{}", bare.display());
    (bare, url)
}

/// A git repository with one commit (`README.md`).
pub fn git_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "a scratch repository\n").unwrap();
    git(&repo, &["add", "README.md"]);
    git(&repo, &["-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "initial"]);
    repo
}

/// Processes whose command line contains `needle` (from `ps`), with their process groups.
pub fn processes_matching(needle: &str) -> Vec<String> {
    let output = Command::new("ps").args(["-eo", "pid,pgid,args"]).output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(needle) && !line.contains("ps -eo"))
        .map(str::to_string)
        .collect()
}

pub fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The step of a task (as `tasks.read` answers it) that runs `kind` first.
pub fn step_of<'a>(detail: &'a Value, kind: &str) -> &'a Value {
    detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["step_kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} step in {detail:#}"))
}

/// `start --embedded` with everything defaulted under `home`, as a person starts it: an empty
/// environment but `HOME`, `PATH` and `env`.
pub fn embedded_agent(home: &Path, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args(["start", "--embedded", "--control-listen", "127.0.0.1:0", "--local-api", "off", "--host", "mini"])
        .args(["--heartbeat-interval-ms", "300", "--step-heartbeat-interval-ms", "500", "--capacity", "2"])
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.join("agent.err")).unwrap())
        .spawn()
        .unwrap()
}

/// The embedded control plane of an agent started by [`embedded_agent`]: its address and
/// admin token, once it has written them.
pub fn embedded_plane(home: &Path) -> (String, String) {
    let state = node_agent::config::default_runtime_root(Some(&home.to_string_lossy())).join("state");
    let base = wait_until(Duration::from_secs(30), || {
        std::fs::read_to_string(state.join("embedded-address")).map(|text| text.trim().to_string()).map_err(|error| error.to_string())
    });
    let token = node_agent::embedded::read_admin_token(&state).unwrap().expect("an admin token in the tokens file");
    (base, token)
}
