//! The target under test and the fixtures every case uses.
//!
//! A [`Target`] is a base URL and a clock the test can move. By default it is the native server
//! on a fresh SQLite file with a manual clock; with `BAA_API_TARGET=worker` it is the Worker
//! under `wrangler dev` (workerd) on a fresh local D1, its clock moved through the opt-in test
//! hook. The cases only speak HTTP, so both backends answer the same cases.

use std::collections::HashMap;

use control_worker::core::clock::{ManualClock, SeededRandom};
use control_worker::core::config::Config;
use control_worker::native::{start_in_thread, RunningServer, ServerOptions};
use serde_json::{json, Value};

use crate::client::{request, Response};

pub const BROWSER_ADMIN: &str = "test-browser-admin-token";
pub const OPS_ADMIN: &str = "test-ops-admin-token";
pub const READONLY: &str = "test-readonly-token";
pub const CONTROLLER: &str = "test-controller-token";
pub const WORKER: &str = "test-worker-token";
pub const SHARED: &str = "test-shared-service-token";
pub const NODE_SECRET: &str = "test-node-token-secret";
pub const ALLOWED_ORIGIN: &str = "https://console.example.test";
pub const START_TIME: i64 = 1_800_000_000;

/// The environment every full-featured target is configured with.
pub fn test_env() -> HashMap<String, String> {
    [
        ("CONTROL_API_BROWSER_ADMIN_TOKEN", BROWSER_ADMIN),
        ("CONTROL_API_OPS_ADMIN_TOKEN", OPS_ADMIN),
        ("CONTROL_API_READONLY_TOKEN", READONLY),
        ("CONTROL_API_CONTROLLER_TOKEN", CONTROLLER),
        ("CONTROL_API_WORKER_TOKEN", WORKER),
        ("BAA_SHARED_TOKEN", SHARED),
        ("CONTROL_API_NODE_TOKEN_SECRET", NODE_SECRET),
        ("CONTROL_API_ALLOWED_ORIGINS", ALLOWED_ORIGIN),
        ("CONTROL_API_VERSION", "test"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect()
}

pub fn node_token(node_id: &str, host: &str) -> String {
    control_worker::core::auth::mint_node_token(NODE_SECRET, node_id, host).unwrap()
}

/// The clock of a target: a local manual clock, mirrored to the Worker's test clock hook when
/// the target is a Worker. Cheap to clone; every clone moves the same time.
#[derive(Clone)]
pub struct TestClock {
    local: ManualClock,
    hook: Option<String>,
}

impl TestClock {
    pub fn advance(&self, seconds: i64) {
        self.local.advance(seconds);
        self.push();
    }

    pub fn now(&self) -> i64 {
        use control_worker::core::clock::Clock;
        self.local.now()
    }

    fn push(&self) {
        if let Some(base) = &self.hook {
            let auth = format!("Bearer {BROWSER_ADMIN}");
            let body = json!({"set": self.now()}).to_string();
            let response =
                request(base, "POST", "/__test/clock", &[("authorization", &auth), ("content-type", "application/json")], body.as_bytes());
            assert_eq!(response.status, 200, "test clock hook: {}", response.text());
        }
    }
}

enum Backend {
    Native { _server: RunningServer, db_path: std::path::PathBuf },
    Worker { _worker: crate::worker::WorkerProcess },
}

/// More servers over one database: separate SQLite connections natively (as several
/// processes would have); the same Worker, which workerd serves concurrently, on the edge.
pub struct Siblings {
    pub bases: Vec<String>,
    _servers: Vec<RunningServer>,
}

pub struct Target {
    pub base: String,
    pub clock: TestClock,
    backend: Backend,
    _dir: tempfile::TempDir,
}

/// Whether the suite runs against the Worker under `wrangler dev` (`BAA_API_TARGET=worker`).
pub fn worker_target() -> bool {
    std::env::var("BAA_API_TARGET").is_ok_and(|target| target == "worker")
}

impl Target {
    /// A fresh database and server configured with [`test_env`].
    pub fn new() -> Target {
        Self::with_env(test_env())
    }

    pub fn with_env(env: HashMap<String, String>) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let local = ManualClock::new(START_TIME);
        if worker_target() {
            let worker = crate::worker::WorkerProcess::start(&env, dir.path());
            // The hook takes an admin token (or auth turned off); without one, time stands still.
            let hook_usable = env.contains_key("CONTROL_API_BROWSER_ADMIN_TOKEN") || env.contains_key("CONTROL_API_AUTH_REQUIRED");
            let clock = TestClock { local, hook: hook_usable.then(|| worker.base.clone()) };
            clock.push();
            return Target { base: worker.base.clone(), clock, backend: Backend::Worker { _worker: worker }, _dir: dir };
        }
        let db_path = dir.path().join("control.db");
        let (config, _) = Config::from_lookup(|name| env.get(name).cloned()).unwrap();
        let server =
            start_in_thread(ServerOptions::loopback(db_path.clone(), config), local.clone(), SeededRandom::new(rand_seed())).unwrap();
        Target {
            base: server.base_url(),
            clock: TestClock { local, hook: None },
            backend: Backend::Native { _server: server, db_path },
            _dir: dir,
        }
    }

    /// `count` more ways in to the same database and clock.
    pub fn siblings(&self, count: usize) -> Siblings {
        let Backend::Native { db_path, .. } = &self.backend else {
            return Siblings { bases: vec![self.base.clone(); count], _servers: Vec::new() };
        };
        let env = test_env();
        let (config, _) = Config::from_lookup(|name| env.get(name).cloned()).unwrap();
        let servers: Vec<RunningServer> = (0..count)
            .map(|index| {
                start_in_thread(
                    ServerOptions::loopback(db_path.clone(), config.clone()),
                    self.clock.local.clone(),
                    SeededRandom::new(rand_seed() ^ index as u64),
                )
                .unwrap()
            })
            .collect();
        Siblings { bases: servers.iter().map(RunningServer::base_url).collect(), _servers: servers }
    }

    pub fn advance(&self, seconds: i64) {
        self.clock.advance(seconds);
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Every request of the suite goes through here, and none may ever answer 500.
    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let response = request(&self.base, method, path, headers, body);
        assert_ne!(response.status, 500, "{method} {path} answered 500: {}", response.text());
        response
    }

    pub fn get(&self, path: &str, token: &str) -> Response {
        let auth = format!("Bearer {token}");
        self.call("GET", path, &[("authorization", &auth)], b"")
    }

    pub fn post(&self, path: &str, token: &str, body: Value) -> Response {
        let auth = format!("Bearer {token}");
        self.call("POST", path, &[("authorization", &auth), ("content-type", "application/json")], body.to_string().as_bytes())
    }
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// Asserts a success envelope with `status` and returns `data`.
#[track_caller]
pub fn ok(response: &Response, status: u16) -> Value {
    let body = response.json();
    assert_eq!(response.status, status, "unexpected status; body: {body}");
    assert_eq!(body["ok"], true, "{body}");
    let request_id = body["request_id"].as_str().expect("request_id in envelope");
    assert_eq!(response.header("x-request-id"), Some(request_id), "x-request-id header matches the envelope");
    body["data"].clone()
}

/// Asserts an error envelope with `status` and `code` and returns `details`.
#[track_caller]
pub fn err(response: &Response, status: u16, code: &str) -> Value {
    let body = response.json();
    assert_eq!((response.status, body["error"].as_str()), (status, Some(code)), "body: {body}");
    assert_eq!(body["ok"], false);
    assert!(body["message"].as_str().is_some_and(|message| !message.is_empty()), "a message: {body}");
    let request_id = body["request_id"].as_str().expect("request_id in envelope");
    assert_eq!(response.header("x-request-id"), Some(request_id));
    body["details"].clone()
}

/// Asserts a validation error naming `field`.
#[track_caller]
pub fn invalid(response: &Response, field: &str) -> Value {
    let details = err(response, 400, "invalid_request");
    assert_eq!(details["field"], field, "details: {details}");
    details
}

pub struct Leader {
    pub id: String,
    pub host: String,
    pub term: i64,
}

pub fn heartbeat(t: &Target, token: &str, controller_id: &str, host: &str, role: &str) -> Response {
    t.post(
        "/v1/controllers/heartbeat",
        token,
        json!({"controller_id": controller_id, "host": host, "role": role, "priority": 100, "status": "ok"}),
    )
}

pub fn acquire(t: &Target, controller_id: &str, host: &str, ttl_sec: i64, preferred: bool) -> Value {
    ok(
        &t.post(
            "/v1/leader/acquire",
            SHARED,
            json!({"controller_id": controller_id, "host": host, "ttl_sec": ttl_sec, "preferred": preferred}),
        ),
        200,
    )
}

/// Registers `mini-main` on host `mini` and makes it leader.
pub fn leader(t: &Target) -> Leader {
    ok(&heartbeat(t, SHARED, "mini-main", "mini", "primary"), 200);
    let lease = acquire(t, "mini-main", "mini", 30, true);
    assert_eq!(lease["is_leader"], true, "{lease}");
    Leader { id: "mini-main".into(), host: "mini".into(), term: lease["term"].as_i64().unwrap() }
}

pub fn create_task(t: &Target, extra: Value) -> String {
    let mut body = json!({"repo": "/srv/repo", "task_type": "shell", "title": "a task", "goal": "echo hello"});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    ok(&t.post("/v1/tasks", BROWSER_ADMIN, body), 201)["task_id"].as_str().unwrap().to_string()
}

pub fn claim_tasks(t: &Target, leader: &Leader, limit: i64) -> Response {
    t.post("/v1/tasks/claim", SHARED, json!({"controller_id": leader.id, "host": leader.host, "term": leader.term, "limit": limit}))
}

pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

pub fn shell_step(command: &str, max_attempts: i64) -> Value {
    json!({"step_kind": "shell", "worker_kind": "shell", "title": command, "command": command, "timeout_sec": 60, "max_attempts": max_attempts})
}

pub fn plan(t: &Target, leader: &Leader, task_id: &str, steps: Value) -> Response {
    t.post(
        &format!("/v1/tasks/{task_id}/plan"),
        SHARED,
        json!({"controller_id": leader.id, "term": leader.term, "planner_provider": "builtin", "planning_strategy": "test", "steps": steps}),
    )
}

/// Creates a task and has the leader claim and plan it with `steps`; returns its id.
pub fn running_task(t: &Target, leader: &Leader, steps: Value) -> String {
    let task_id = create_task(t, json!({}));
    let claimed = ok(&claim_tasks(t, leader, 1), 200);
    assert_eq!(claimed["tasks"][0]["task_id"], task_id.as_str(), "{claimed}");
    ok(&plan(t, leader, &task_id, steps), 200);
    task_id
}

pub fn claim_steps(t: &Target, worker_id: &str, host: &str, capacity: i64) -> Vec<Value> {
    let data = ok(&t.post("/v1/steps/claim", SHARED, json!({"worker_id": worker_id, "host": host, "capacity": capacity})), 200);
    data["steps"].as_array().unwrap().clone()
}

pub fn complete(t: &Target, worker_id: &str, step_id: &str, run_id: &str) -> Response {
    t.post(
        &format!("/v1/steps/{step_id}/complete"),
        SHARED,
        json!({"worker_id": worker_id, "run_id": run_id, "summary": "done", "exit_code": 0}),
    )
}

pub fn fail(t: &Target, worker_id: &str, step_id: &str, run_id: &str, extra: Value) -> Response {
    let mut body = json!({"worker_id": worker_id, "run_id": run_id, "error": "exit status 3", "exit_code": 3});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    t.post(&format!("/v1/steps/{step_id}/fail"), SHARED, body)
}

pub fn task(t: &Target, task_id: &str) -> Value {
    ok(&t.get(&format!("/v1/tasks/{task_id}"), READONLY), 200)
}
