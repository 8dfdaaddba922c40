//! SPEC §3: the auth matrix generated from the route table, node-bound ownership, and the
//! secure default.

use std::collections::HashMap;

use control_worker::core::config::Config;
use serde_json::json;
use shared::{Role, ROUTES};

use crate::support::*;

fn concrete_path(pattern: &str) -> String {
    pattern.split('/').map(|segment| if segment.starts_with(':') { "x" } else { segment }).collect::<Vec<_>>().join("/")
}

fn call_route(t: &Target, method: &str, path: &str, authorization: Option<&str>) -> crate::client::Response {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(value) = authorization {
        headers.push(("authorization", value));
    }
    let body: &[u8] = if method == "POST" { b"{}" } else { b"" };
    t.call(method, path, &headers, body)
}

#[test]
fn every_route_times_every_principal_follows_the_route_table() {
    let t = Target::new();
    let node = node_token("mini-main", "mini");
    let principals: Vec<(&str, String, Vec<Role>)> = vec![
        ("browser_admin", BROWSER_ADMIN.into(), vec![Role::BrowserAdmin]),
        ("ops_admin", OPS_ADMIN.into(), vec![Role::OpsAdmin]),
        ("readonly", READONLY.into(), vec![Role::Readonly]),
        ("controller", CONTROLLER.into(), vec![Role::Controller]),
        ("worker", WORKER.into(), vec![Role::Worker]),
        ("shared", SHARED.into(), vec![Role::Controller, Role::Worker]),
        ("node-bound", node, vec![Role::Controller, Role::Worker]),
    ];
    let mut checked = 0;
    for route in ROUTES {
        let path = concrete_path(route.path);
        let method = route.method.as_str();
        for (name, token, roles) in &principals {
            let response = call_route(&t, method, &path, Some(&format!("Bearer {token}")));
            let allowed = route.admits(roles);
            if allowed {
                assert!(
                    response.status != 401 && response.status != 403,
                    "{name} should reach {} but got {}: {}",
                    route.id,
                    response.status,
                    response.text()
                );
            } else {
                let details = err(&response, 403, "forbidden");
                assert_eq!(details["route_id"], route.id);
            }
            checked += 1;
        }
        // readonly reads every GET route and nothing else.
        assert_eq!(route.roles.contains(&Role::Readonly), route.method == shared::Method::Get, "{}", route.id);
        err(&call_route(&t, method, &path, None), 401, "missing_bearer_token");
        err(&call_route(&t, method, &path, Some("Basic dXNlcjpwYXNz")), 401, "invalid_authorization_header");
        err(&call_route(&t, method, &path, Some("Bearer")), 401, "invalid_authorization_header");
        err(&call_route(&t, method, &path, Some("Bearer two words")), 401, "invalid_authorization_header");
        err(&call_route(&t, method, &path, Some("Bearer not-a-configured-token")), 401, "unknown_token");
        let forged = node_token("mini-main", "mini").replace("mini-main", "mac-standby");
        err(&call_route(&t, method, &path, Some(&format!("Bearer {forged}"))), 401, "unknown_token");
    }
    assert_eq!(checked, ROUTES.len() * principals.len());
}

/// A node token minted for mini-main on host mini acts for host mini only: it cannot register,
/// lead, plan, claim or complete as host mac.
#[test]
fn a_node_bound_token_acts_only_for_its_own_host() {
    let t = Target::new();
    let mini = node_token("mini-main", "mini");
    let mac = node_token("mac-standby", "mac");
    let beat = |token: &str, host: &str| {
        t.post("/v1/controllers/heartbeat", token, json!({"host": host, "role": "primary", "priority": 1, "status": "ok"}))
    };
    let details = err(&beat(&mini, "mac"), 403, "forbidden");
    assert_eq!(details["field"], "host");
    ok(&beat(&mini, "mini"), 200);
    ok(&beat(&mac, "mac"), 200);
    err(&t.post("/v1/leader/acquire", &mini, json!({"host": "mac", "ttl_sec": 30})), 403, "forbidden");
    let lease = ok(&t.post("/v1/leader/acquire", &mini, json!({"host": "mini", "ttl_sec": 30})), 200);
    let term = lease["term"].as_i64().unwrap();
    let task_id = create_task(&t, json!({"constraints": {"target_host": "mac"}}));
    err(&t.post("/v1/tasks/claim", &mini, json!({"host": "mac", "term": term})), 403, "forbidden");
    ok(&t.post("/v1/tasks/claim", &mini, json!({"host": "mini", "term": term})), 200);
    ok(
        &t.post(
            &format!("/v1/tasks/{task_id}/plan"),
            &mini,
            json!({"term": term, "planner_provider": "builtin", "planning_strategy": "t", "steps": [shell_step("true", 1)]}),
        ),
        200,
    );
    // The step is pinned to mac: mini's node cannot claim it by saying it is mac.
    let details = err(&t.post("/v1/steps/claim", &mini, json!({"host": "mac"})), 403, "forbidden");
    assert_eq!(details["field"], "host");
    assert_eq!(ok(&t.post("/v1/steps/claim", &mini, json!({"host": "mini"})), 200)["steps"], json!([]));
    let claimed = ok(&t.post("/v1/steps/claim", &mac, json!({"host": "mac"})), 200);
    let (step_id, run_id) = (claimed["steps"][0]["step"]["step_id"].as_str().unwrap(), claimed["steps"][0]["run_id"].as_str().unwrap());
    // Nor heartbeat or complete mac's run.
    err(&t.post(&format!("/v1/steps/{step_id}/heartbeat"), &mini, json!({"run_id": run_id})), 403, "forbidden");
    err(
        &t.post(&format!("/v1/steps/{step_id}/complete"), &mini, json!({"run_id": run_id, "summary": "x", "exit_code": 0})),
        403,
        "forbidden",
    );
    ok(&t.post(&format!("/v1/steps/{step_id}/complete"), &mac, json!({"run_id": run_id, "summary": "ok", "exit_code": 0})), 200);
    // The plain shared token still speaks for any host.
    ok(&heartbeat(&t, SHARED, "other-main", "other", "primary"), 200);
    // A token of the first form is refused with a word on re-minting.
    let legacy = err(&t.post("/v1/controllers/heartbeat", "bnt1.mini-main.00ff", json!({})), 401, "unknown_token");
    assert!(legacy.is_object());
}

#[test]
fn a_node_bound_token_acts_only_as_its_own_node() {
    let t = Target::new();
    let token_a = node_token("node-a", "h");
    let token_b = node_token("node-b", "h");
    let beat = |token: &str, id: &str| {
        t.post(
            "/v1/controllers/heartbeat",
            token,
            json!({"controller_id": id, "host": "h", "role": "primary", "priority": 1, "status": "ok"}),
        )
    };
    let details = err(&beat(&token_a, "node-b"), 403, "forbidden");
    assert_eq!(details["field"], "controller_id");
    ok(&beat(&token_a, "node-a"), 200);
    // Omitting the id means "myself" for a bound token.
    let data =
        ok(&t.post("/v1/controllers/heartbeat", &token_b, json!({"host": "h", "role": "standby", "priority": 1, "status": "ok"})), 200);
    assert_eq!(data["controller"]["controller_id"], "node-b");

    let acquire_as = |token: &str, id: &str| t.post("/v1/leader/acquire", token, json!({"controller_id": id, "host": "h", "ttl_sec": 30}));
    err(&acquire_as(&token_a, "node-b"), 403, "forbidden");
    let lease = ok(&acquire_as(&token_a, "node-a"), 200);
    assert_eq!(lease["is_leader"], true);
    let term = lease["term"].as_i64().unwrap();
    err(&t.post("/v1/tasks/claim", &token_b, json!({"controller_id": "node-a", "host": "h", "term": term})), 403, "forbidden");
    err(&t.post("/v1/leader/release", &token_b, json!({"controller_id": "node-a"})), 403, "forbidden");

    // node-a plans a task; node-b's runner claims its step.
    create_task(&t, json!({}));
    let claimed = ok(&t.post("/v1/tasks/claim", &token_a, json!({"host": "h", "term": term})), 200);
    let task_id = claimed["tasks"][0]["task_id"].as_str().unwrap();
    ok(
        &t.post(
            &format!("/v1/tasks/{task_id}/plan"),
            &token_a,
            json!({"term": term, "planner_provider": "builtin", "planning_strategy": "t", "steps": [shell_step("true", 1)]}),
        ),
        200,
    );
    let steps = ok(&t.post("/v1/steps/claim", &token_b, json!({"host": "h"})), 200);
    let step = &steps["steps"][0];
    let (step_id, run_id) = (step["step"]["step_id"].as_str().unwrap(), step["run_id"].as_str().unwrap());
    assert_eq!(step["step"]["worker_id"], "node-b");

    // node-a may neither claim as node-b nor complete node-b's run, with or without naming it.
    err(&t.post("/v1/steps/claim", &token_a, json!({"worker_id": "node-b", "host": "h"})), 403, "forbidden");
    let body = json!({"worker_id": "node-b", "run_id": run_id, "summary": "s", "exit_code": 0});
    err(&t.post(&format!("/v1/steps/{step_id}/complete"), &token_a, body), 403, "forbidden");
    let body = json!({"run_id": run_id, "summary": "s", "exit_code": 0});
    err(&t.post(&format!("/v1/steps/{step_id}/complete"), &token_a, body.clone()), 403, "forbidden");
    err(&t.post(&format!("/v1/steps/{step_id}/heartbeat"), &token_a, json!({"run_id": run_id})), 403, "forbidden");
    err(
        &t.post(
            &format!("/v1/steps/{step_id}/logs"),
            &token_a,
            json!({"run_id": run_id, "chunks": [{"seq": 0, "stream": "stdout", "text": "x"}]}),
        ),
        403,
        "forbidden",
    );
    assert_eq!(task(&t, task_id)["steps"][0]["status"], "claimed", "nothing changed");
    // node-b completes its own run.
    ok(&t.post(&format!("/v1/steps/{step_id}/complete"), &token_b, body), 200);
    assert_eq!(task(&t, task_id)["status"], "succeeded");
}

#[test]
fn with_no_token_configured_every_route_but_healthz_is_503() {
    let env: HashMap<String, String> = HashMap::new();
    let t = Target::with_env(env);
    assert_eq!(t.call("GET", "/healthz", &[], b"").status, 200);
    for route in ROUTES {
        let path = concrete_path(route.path);
        err(&call_route(&t, route.method.as_str(), &path, None), 503, "auth_not_configured");
        err(&call_route(&t, route.method.as_str(), &path, Some("Bearer anything")), 503, "auth_not_configured");
    }
}

#[test]
fn auth_can_be_turned_off_explicitly_for_local_development_with_a_warning() {
    let env: HashMap<String, String> = [("CONTROL_API_AUTH_REQUIRED".to_string(), "false".to_string())].into();
    let (_, warnings) = Config::from_lookup(|name| env.get(name).cloned()).unwrap();
    assert!(warnings.iter().any(|warning| warning.contains("DISABLED")), "{warnings:?}");
    let t = Target::with_env(env);
    ok(&t.call("GET", "/v1/system/state", &[], b""), 200);
    let created = t.call(
        "POST",
        "/v1/tasks",
        &[("content-type", "application/json")],
        br#"{"repo": "/r", "task_type": "shell", "title": "t", "goal": "true"}"#,
    );
    ok(&created, 201);

    let bad: HashMap<String, String> = [("CONTROL_API_AUTH_REQUIRED".to_string(), "maybe".to_string())].into();
    let error = Config::from_lookup(|name| bad.get(name).cloned()).unwrap_err();
    assert_eq!(error.variable, "CONTROL_API_AUTH_REQUIRED");
}

#[test]
fn tokens_never_appear_in_answers() {
    let t = Target::new();
    for token in [BROWSER_ADMIN, SHARED, "Bearer-ish-unknown-token-value"] {
        for response in [t.get("/v1/system/state", token), t.get("/v1/nothing", token), t.post("/v1/tasks", token, json!({}))] {
            assert!(!response.text().contains(token), "{}", response.text());
            assert!(response.headers.iter().all(|(_, value)| !value.contains(token)));
        }
    }
}
