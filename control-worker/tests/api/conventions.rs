//! SPEC §2 conventions.

use control_worker::core::blobs::MemoryBlobs;
use control_worker::core::clock::{ManualClock, SeededRandom};
use control_worker::core::config::Config;
use control_worker::core::db::{Db, DbError, Row, Statement};
use control_worker::core::http::ApiRequest;
use control_worker::core::Core;
use serde_json::json;

use crate::support::*;

#[test]
fn healthz_answers_ok_as_text_without_auth() {
    let t = Target::new();
    let response = t.call("GET", "/healthz", &[], b"");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "ok");
    assert!(response.header("content-type").unwrap().starts_with("text/plain"));
    assert!(response.header("x-request-id").is_some());
}

#[test]
fn the_admin_console_is_served_at_the_root_under_a_strict_policy() {
    let t = Target::new();
    let page = t.call("GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    assert!(page.text().contains("baa-conductor console") && page.text().contains("type=\"module\" src=\"/console.js\""));
    let policy = page.header("content-security-policy").unwrap();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("connect-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    let script = t.call("GET", "/console.js", &[], b"");
    assert_eq!(script.status, 200);
    assert!(script.header("content-type").unwrap().starts_with("text/javascript"));
    assert!(script.text().contains("./console/board.js"));
    // Every module the entry imports is served, as JavaScript.
    for module in ["core", "board", "wave", "timeline", "fleet", "task", "logs", "diff"] {
        let served = t.call("GET", &format!("/console/{module}.js"), &[], b"");
        assert_eq!(served.status, 200, "{module}");
        assert!(served.header("content-type").unwrap().starts_with("text/javascript"));
    }
    err(&t.call("GET", "/console/missing.js", &[], b""), 404, "route_not_found");
    // Only reading is served; the page itself carries no data, so it needs no token.
    err(&t.call("POST", "/", &[], b""), 404, "route_not_found");
}

#[test]
fn request_ids_are_echoed_sanitised_capped_or_generated() {
    let t = Target::new();
    let auth = format!("Bearer {READONLY}");
    let echoed = t.call("GET", "/v1/system/state", &[("authorization", &auth), ("x-request-id", "trace-42:a.b_c")], b"");
    ok(&echoed, 200);
    assert_eq!(echoed.header("x-request-id"), Some("trace-42:a.b_c"));

    let dirty = t.call("GET", "/v1/system/state", &[("authorization", &auth), ("x-request-id", "ab<script>cd ef")], b"");
    assert_eq!(dirty.header("x-request-id"), Some("abscriptcdef"));

    let long = "x".repeat(500);
    let capped = t.call("GET", "/v1/nope", &[("x-request-id", &long)], b"");
    assert_eq!(capped.header("x-request-id").unwrap().len(), 128);
    assert_eq!(capped.json()["request_id"].as_str().unwrap().len(), 128);

    let first = t.call("GET", "/healthz", &[], b"");
    let second = t.call("GET", "/healthz", &[], b"");
    let (first, second) = (first.header("x-request-id").unwrap(), second.header("x-request-id").unwrap());
    assert!(first.starts_with("req_") && first != second);

    let unusable = t.call("GET", "/healthz", &[("x-request-id", "<<>>")], b"");
    assert!(unusable.header("x-request-id").unwrap().starts_with("req_"));
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let t = Target::new();
    err(&t.get("/v1/nothing/here", READONLY), 404, "route_not_found");
    err(&t.get("/v2/tasks", READONLY), 404, "route_not_found");
    let response = t.call("DELETE", "/v1/tasks", &[], b"");
    err(&response, 405, "method_not_allowed");
    assert_eq!(response.header("allow"), Some("POST, GET"));
    let response = t.get("/v1/system/pause", BROWSER_ADMIN);
    err(&response, 405, "method_not_allowed");
    assert_eq!(response.header("allow"), Some("POST"));
    // A literal segment wins over a parameter: this is the claim route, not a task named "claim".
    err(&t.get("/v1/tasks/claim", READONLY), 405, "method_not_allowed");
}

#[test]
fn bodies_must_be_json_objects_sent_as_json() {
    let t = Target::new();
    let auth = format!("Bearer {BROWSER_ADMIN}");
    let json_type = ("content-type", "application/json");
    let details = err(&t.call("POST", "/v1/tasks", &[("authorization", &auth), json_type], b"{\"repo\": "), 400, "invalid_json");
    assert_eq!(details["route_id"], "tasks.create");
    err(&t.call("POST", "/v1/tasks", &[("authorization", &auth), json_type], b"[1, 2]"), 400, "invalid_json");
    err(&t.call("POST", "/v1/tasks", &[("authorization", &auth), json_type], b""), 400, "invalid_json");
    err(&t.call("POST", "/v1/tasks", &[("authorization", &auth), ("content-type", "text/plain")], b"{}"), 415, "unsupported_media_type");
    err(&t.call("POST", "/v1/tasks", &[("authorization", &auth)], b"{}"), 415, "unsupported_media_type");
    // charset parameters are fine, and routes whose fields are all optional take no body.
    let with_charset = t.call(
        "POST",
        "/v1/system/pause",
        &[("authorization", &auth), ("content-type", "application/json; charset=utf-8")],
        b"{\"reason\": \"charset\"}",
    );
    ok(&with_charset, 200);
    ok(&t.call("POST", "/v1/system/resume", &[("authorization", &auth)], b""), 200);
}

#[test]
fn oversized_bodies_are_413_and_upload_routes_allow_more() {
    let t = Target::new();
    let leader = leader(&t);
    let big_goal = "x".repeat(1024 * 1024 + 10);
    let body = json!({"repo": "/r", "task_type": "shell", "title": "t", "goal": big_goal});
    let details = err(&t.post("/v1/tasks", BROWSER_ADMIN, body), 413, "payload_too_large");
    assert_eq!(details["limit_bytes"], 1024 * 1024);
    assert_eq!(ok(&t.get("/v1/tasks", READONLY), 200)["tasks"].as_array().unwrap().len(), 0, "nothing half-written");

    // Log uploads may carry up to 2 MiB of body (1,000,000 bytes of text).
    let task_id = running_task(&t, &leader, json!([shell_step("true", 1)]));
    let claimed = claim_steps(&t, "mini-main", "mini", 1);
    let (step_id, run_id) = (claimed[0]["step"]["step_id"].as_str().unwrap(), claimed[0]["run_id"].as_str().unwrap());
    // 700,000 bytes of text is 1,400,000 bytes of JSON: over the default cap, within the upload cap.
    let text = "\n".repeat(700_000);
    let chunks = json!([{"seq": 0, "stream": "stdout", "text": text}]);
    let body = json!({"worker_id": "mini-main", "run_id": run_id, "chunks": chunks});
    assert!(body.to_string().len() > 1024 * 1024);
    let stored = ok(&t.post(&format!("/v1/steps/{step_id}/logs"), SHARED, body), 200);
    assert_eq!(stored["accepted"], 1);
    let too_much = "y".repeat(2 * 1024 * 1024 + 1);
    let chunks = json!([{"seq": 1, "stream": "stdout", "text": too_much}]);
    err(
        &t.post(&format!("/v1/steps/{step_id}/logs"), SHARED, json!({"worker_id": "mini-main", "run_id": run_id, "chunks": chunks})),
        413,
        "payload_too_large",
    );
    let logs = ok(&t.get(&format!("/v1/tasks/{task_id}/logs"), READONLY), 200);
    assert_eq!(logs["chunks"].as_array().unwrap().len(), 1);
}

#[test]
fn validation_errors_name_the_field_and_the_rule() {
    let t = Target::new();
    let create = |body| t.post("/v1/tasks", BROWSER_ADMIN, body);
    let base = json!({"repo": "/r", "task_type": "shell", "title": "t", "goal": "g"});
    let with = |key: &str, value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    for field in ["repo", "task_type", "title", "goal"] {
        invalid(&create(without(field)), field);
        invalid(&create(with(field, json!(""))), field);
        invalid(&create(with(field, json!(7))), field);
    }
    let details = invalid(&create(with("task_type", json!("rocket"))), "task_type");
    assert!(details["rule"].as_str().unwrap().contains("shell, codex"), "{details}");
    invalid(&create(with("priority", json!(-1))), "priority");
    invalid(&create(with("priority", json!(1.5))), "priority");
    invalid(&create(with("priority", json!("high"))), "priority");
    invalid(&create(with("constraints", json!([]))), "constraints");
    invalid(&create(with("constraints", json!({"target_host": 3}))), "constraints.target_host");
    invalid(&create(with("constraints", json!({"timeout_sec": 0}))), "constraints.timeout_sec");
    invalid(&create(with("constraints", json!({"timeout_sec": "60"}))), "constraints.timeout_sec");
    invalid(&create(with("constraints", json!({"max_attempts": 0}))), "constraints.max_attempts");
    invalid(&create(with("constraints", json!({"max_attempts": 21}))), "constraints.max_attempts");
    invalid(&create(with("acceptance", json!("make test"))), "acceptance");
    invalid(&create(with("acceptance", json!(["make test", ""]))), "acceptance[1]");
    invalid(&create(with("metadata", json!({"requested_by": ""}))), "metadata.requested_by");
    let details = invalid(&create(without("goal")), "goal");
    assert_eq!(details["route_id"], "tasks.create");

    let acquire = |body| t.post("/v1/leader/acquire", SHARED, body);
    invalid(&acquire(json!({"controller_id": "a", "host": "h", "ttl_sec": 0})), "ttl_sec");
    invalid(&acquire(json!({"controller_id": "a", "host": "h"})), "ttl_sec");
    invalid(&acquire(json!({"controller_id": "a b", "host": "h", "ttl_sec": 5})), "controller_id");
    invalid(&acquire(json!({"host": "h", "ttl_sec": 5})), "controller_id");
    invalid(&acquire(json!({"controller_id": "a", "host": "h", "ttl_sec": 5, "preferred": "yes"})), "preferred");
    invalid(&heartbeat(&t, SHARED, "a", "h", "boss"), "role");

    let leader = leader(&t);
    create_task(&t, json!({}));
    ok(&claim_tasks(&t, &leader, 1), 200);
    invalid(&claim_tasks(&t, &Leader { term: 0, ..leader }, 1), "term");
    let leader = Leader { id: "mini-main".into(), host: "mini".into(), term: 1 };
    invalid(&claim_tasks(&t, &leader, 99), "limit");
    let task_id = ok(&t.get("/v1/tasks?status=planning", READONLY), 200)["tasks"][0]["task_id"].as_str().unwrap().to_string();
    invalid(&plan(&t, &leader, &task_id, json!([])), "steps");
    invalid(&plan(&t, &leader, &task_id, json!([{"step_kind": "shell", "worker_kind": "shell", "title": "x"}])), "steps[0].command");
    invalid(
        &plan(&t, &leader, &task_id, json!([shell_step("ok", 1), {"step_kind": "agent", "worker_kind": "codex", "title": "x"}])),
        "steps[1].prompt",
    );
    invalid(&plan(&t, &leader, &task_id, json!([shell_step("ok", 0)])), "steps[0].max_attempts");
    invalid(&plan(&t, &leader, &task_id, json!([{"step_kind": "dance", "worker_kind": "shell", "title": "x"}])), "steps[0].step_kind");
    ok(&plan(&t, &leader, &task_id, json!([shell_step("ok", 1)])), 200);

    let claimed = claim_steps(&t, "mini-main", "mini", 1);
    let (step_id, run_id) = (claimed[0]["step"]["step_id"].as_str().unwrap(), claimed[0]["run_id"].as_str().unwrap());
    let logs = |chunks| {
        t.post(&format!("/v1/steps/{step_id}/logs"), SHARED, json!({"worker_id": "mini-main", "run_id": run_id, "chunks": chunks}))
    };
    invalid(&logs(json!([])), "chunks");
    invalid(&logs(json!([{"seq": 0, "stream": "stdin", "text": "x"}])), "chunks[0].stream");
    invalid(&logs(json!([{"seq": -1, "stream": "stdout", "text": "x"}])), "chunks[0].seq");
    invalid(&logs(json!([{"seq": 1, "stream": "stdout", "text": "x"}, {"seq": 1, "stream": "stdout", "text": "y"}])), "chunks");
    let checkpoint = |body| t.post(&format!("/v1/steps/{step_id}/checkpoint"), SHARED, body);
    let good = json!({"worker_id": "mini-main", "run_id": run_id, "seq": 1, "checkpoint_type": "log_tail", "format": "text",
        "content": "abc", "size": 3, "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"});
    let mut bad = good.clone();
    bad["size"] = json!(4);
    invalid(&checkpoint(bad), "size");
    let mut bad = good.clone();
    bad["sha256"] = json!("00");
    invalid(&checkpoint(bad), "sha256");
    let mut bad = good.clone();
    bad["checkpoint_type"] = json!("photo");
    invalid(&checkpoint(bad), "checkpoint_type");
    ok(&checkpoint(good), 201);
    invalid(
        &t.post(&format!("/v1/steps/{step_id}/complete"), SHARED, json!({"worker_id": "mini-main", "run_id": run_id, "summary": "s"})),
        "exit_code",
    );
    invalid(&t.post(&format!("/v1/steps/{step_id}/fail"), SHARED, json!({"worker_id": "mini-main", "run_id": run_id})), "error");
    invalid(&t.get("/v1/tasks?status=sleeping", READONLY), "status");
    invalid(&t.get("/v1/tasks?limit=0", READONLY), "limit");
    invalid(&t.get("/v1/tasks?cursor=garbage", READONLY), "cursor");
    invalid(&t.get(&format!("/v1/tasks/{task_id}/logs?after=-4"), READONLY), "after");
    invalid(&t.get(&format!("/v1/tasks/{task_id}/logs?stream=stdin"), READONLY), "stream");
    invalid(&t.post("/v1/system/pause", BROWSER_ADMIN, json!({"reason": 5})), "reason");
}

#[test]
fn missing_resources_answer_their_not_found_code() {
    let t = Target::new();
    err(&t.get("/v1/tasks/task_missing", READONLY), 404, "task_not_found");
    err(&t.get("/v1/tasks/task_missing/logs", READONLY), 404, "task_not_found");
    err(&t.post("/v1/tasks/task_missing/cancel", BROWSER_ADMIN, json!({})), 404, "task_not_found");
    err(&t.get("/v1/runs/run_missing", READONLY), 404, "run_not_found");
    let body = json!({"worker_id": "w1", "run_id": "r1", "summary": "s", "exit_code": 0});
    err(&t.post("/v1/steps/step_missing/complete", SHARED, body), 404, "step_not_found");
    let body = json!({"worker_id": "w1", "run_id": "r1"});
    err(&t.post("/v1/steps/step_missing/heartbeat", SHARED, body), 404, "step_not_found");
}

#[test]
fn cors_allows_only_listed_origins() {
    let t = Target::new();
    let preflight = t.call(
        "OPTIONS",
        "/v1/system/pause",
        &[
            ("origin", ALLOWED_ORIGIN),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization, content-type"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some(ALLOWED_ORIGIN));
    let allowed_headers = preflight.header("access-control-allow-headers").unwrap();
    for header in ["authorization", "content-type", "x-request-id"] {
        assert!(allowed_headers.contains(header), "{allowed_headers}");
    }
    assert!(preflight.header("access-control-allow-methods").unwrap().contains("POST"));

    let foreign =
        t.call("OPTIONS", "/v1/system/pause", &[("origin", "https://evil.example"), ("access-control-request-method", "POST")], b"");
    assert_eq!(foreign.status, 204);
    assert!(foreign.headers.iter().all(|(name, _)| !name.starts_with("access-control-")), "{:?}", foreign.headers);

    let auth = format!("Bearer {READONLY}");
    let simple = t.call("GET", "/v1/system/state", &[("authorization", &auth), ("origin", ALLOWED_ORIGIN)], b"");
    assert_eq!(simple.header("access-control-allow-origin"), Some(ALLOWED_ORIGIN));
    let simple = t.call("GET", "/v1/system/state", &[("authorization", &auth), ("origin", "https://evil.example")], b"");
    assert_eq!(simple.header("access-control-allow-origin"), None);
    // Even error answers carry CORS headers for allowed origins, so a console can read them.
    let denied = t.call("GET", "/v1/system/state", &[("origin", ALLOWED_ORIGIN)], b"");
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("access-control-allow-origin"), Some(ALLOWED_ORIGIN));
    assert_eq!(t.call("OPTIONS", "/v1/unknown", &[("origin", ALLOWED_ORIGIN)], b"").status, 404);
}

/// A database that always fails, to see that a fault answers 500 without leaking internals.
struct BrokenDb;

impl Db for BrokenDb {
    async fn query(&self, _: Statement) -> Result<Vec<Row>, DbError> {
        Err(DbError::Backend("disk I/O error at /secret/path".into()))
    }

    async fn batch(&self, _: Vec<Statement>) -> Result<Vec<Vec<Row>>, DbError> {
        Err(DbError::Backend("disk I/O error at /secret/path".into()))
    }
}

#[test]
fn unexpected_faults_answer_500_internal_error_without_internals() {
    let env = test_env();
    let (config, _) = Config::from_lookup(|name| env.get(name).cloned()).unwrap();
    let core = Core::new(BrokenDb, MemoryBlobs::new(), ManualClock::new(START_TIME), SeededRandom::new(1), config);
    let request = ApiRequest {
        method: "GET".into(),
        path: "/v1/system/state".into(),
        headers: vec![("authorization".into(), format!("Bearer {READONLY}"))],
        ..ApiRequest::default()
    };
    let response = tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(core.handle(request));
    assert_eq!(response.status, 500);
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["error"], "internal_error");
    assert!(!String::from_utf8_lossy(&response.body).contains("secret"), "no internals in the answer");
    assert!(response.log_note.unwrap().contains("disk I/O error"), "the fault is kept for the server log");
}
