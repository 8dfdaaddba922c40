//! Database round trips per route, counted on a `CountingDb` around SQLite while every route is
//! called once in a realistic order. Shared by the `round_trips` test (hot routes take exactly
//! one) and the `round_trips` benchmark (which prints the table).

use std::collections::BTreeMap;

use control_worker::core::blobs::MemoryBlobs;
use control_worker::core::clock::{ManualClock, SeededRandom};
use control_worker::core::config::Config;
use control_worker::core::db::{CountingDb, Db, Statement};
use control_worker::core::http::ApiRequest;
use control_worker::core::Core;
use control_worker::native::SqliteDb;
use serde_json::{json, Value};

/// Routes that run on every agent tick: each must be one statement or one batch.
pub const HOT_ROUTES: &[&str] = &[
    "agents.sync",
    "controllers.heartbeat",
    "leader.acquire",
    "steps.heartbeat",
    "steps.logs",
    "steps.complete",
    "steps.claim",
    "tasks.claim",
];

const ADMIN: &str = "bench-admin";
const SERVICE: &str = "bench-service";

/// Calls every route once (plus the cold paths the scenario needs) and returns, per route
/// id, the round trips of its successful call.
pub fn measure() -> BTreeMap<&'static str, u64> {
    measure_with_plans().0
}

/// A statement's SQL and the detail lines of its query plan.
pub type QueryPlan = (&'static str, Vec<String>);

/// [`measure`], and per route the query plan (`EXPLAIN QUERY PLAN`, run on the same database
/// right after the call, with the same parameters) of each statement it ran.
pub fn measure_with_plans() -> (BTreeMap<&'static str, u64>, BTreeMap<&'static str, Vec<QueryPlan>>) {
    let (config, _) = Config::from_pairs(&[("CONTROL_API_BROWSER_ADMIN_TOKEN", ADMIN), ("BAA_SHARED_TOKEN", SERVICE)]).unwrap();
    let db = CountingDb::new(SqliteDb::open_in_memory().unwrap());
    let core = Core::new(db, MemoryBlobs::new(), ManualClock::new(1_800_000_000), SeededRandom::new(7), config);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut counts = BTreeMap::new();
    let mut plans = BTreeMap::new();
    let mut call = |route: &'static str, method: &str, path: &str, token: &str, body: Option<Value>| -> Value {
        core.db.reset();
        let request = ApiRequest::json(method, path, token, body.as_ref());
        let response = runtime.block_on(core.handle(request));
        let answer: Value = serde_json::from_slice(&response.body).unwrap();
        assert!(response.status < 300, "{route}: {answer}");
        counts.insert(route, core.db.round_trips());
        let mut route_plans = Vec::new();
        for statement in core.db.statements() {
            let explain =
                Statement { sql: Box::leak(format!("EXPLAIN QUERY PLAN {}", statement.sql).into_boxed_str()), params: statement.params };
            let rows = runtime.block_on(core.db.inner.query(explain)).unwrap();
            let details = rows.iter().map(|row| row.text("detail").unwrap()).collect();
            route_plans.push((statement.sql, details));
        }
        plans.insert(route, route_plans);
        answer["data"].clone()
    };
    call(
        "controllers.heartbeat",
        "POST",
        "/v1/controllers/heartbeat",
        SERVICE,
        Some(json!({"controller_id": "mini-main", "host": "mini", "role": "primary", "priority": 100, "status": "ok"})),
    );
    call("controllers.list", "GET", "/v1/controllers", ADMIN, None);
    let lease = call(
        "leader.acquire",
        "POST",
        "/v1/leader/acquire",
        SERVICE,
        Some(json!({"controller_id": "mini-main", "host": "mini", "ttl_sec": 30})),
    );
    let term = lease["term"].clone();
    let created =
        call("tasks.create", "POST", "/v1/tasks", ADMIN, Some(json!({"repo": "/r", "task_type": "shell", "title": "t", "goal": "true"})));
    let task_id = created["task_id"].as_str().unwrap().to_string();
    call("tasks.list", "GET", "/v1/tasks", ADMIN, None);
    call("tasks.claim", "POST", "/v1/tasks/claim", SERVICE, Some(json!({"controller_id": "mini-main", "host": "mini", "term": term})));
    call(
        "tasks.plan",
        "POST",
        &format!("/v1/tasks/{task_id}/plan"),
        SERVICE,
        Some(json!({"controller_id": "mini-main", "term": term,
        "planner_provider": "builtin", "planning_strategy": "bench",
        "steps": [{"step_kind": "shell", "worker_kind": "shell", "title": "a", "command": "true", "max_attempts": 2},
                  {"step_kind": "test", "worker_kind": "shell", "title": "b", "command": "true"}]})),
    );
    let claimed = call("steps.claim", "POST", "/v1/steps/claim", SERVICE, Some(json!({"worker_id": "mini-main", "host": "mini"})));
    let step_id = claimed["steps"][0]["step"]["step_id"].as_str().unwrap().to_string();
    let run_id = claimed["steps"][0]["run_id"].as_str().unwrap().to_string();
    call(
        "steps.heartbeat",
        "POST",
        &format!("/v1/steps/{step_id}/heartbeat"),
        SERVICE,
        Some(json!({"worker_id": "mini-main", "run_id": run_id})),
    );
    call(
        "steps.logs",
        "POST",
        &format!("/v1/steps/{step_id}/logs"),
        SERVICE,
        Some(json!({"worker_id": "mini-main", "run_id": run_id,
        "chunks": [{"seq": 0, "stream": "stdout", "text": "hi\n"}, {"seq": 1, "stream": "stderr", "text": "ho\n"}]})),
    );
    call(
        "steps.checkpoint",
        "POST",
        &format!("/v1/steps/{step_id}/checkpoint"),
        SERVICE,
        Some(json!({"worker_id": "mini-main", "run_id": run_id,
        "seq": 1, "checkpoint_type": "log_tail", "format": "text", "content": "abc", "size": 3,
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"})),
    );
    // One sync carrying a bit of everything a busy leader's tick carries.
    call(
        "agents.sync",
        "POST",
        "/v1/agents/sync",
        SERVICE,
        Some(json!({"node_id": "mini-main", "host": "mini", "role": "primary", "priority": 100, "status": "leader",
            "lease": {"wish": "acquire", "ttl_sec": 30, "preferred": true, "term": term},
            "capacity": 1, "worker_kinds": ["shell"],
            "runs": [{"step_id": step_id, "run_id": run_id, "progress": {"pct": 50}}],
            "logs": [{"step_id": step_id, "run_id": run_id, "chunks": [{"seq": 2, "stream": "stdout", "text": "more\n"}]}],
            "checkpoints": [{"step_id": step_id, "run_id": run_id, "seq": 2, "checkpoint_type": "log_tail", "format": "text",
                "content": "abc", "size": 3, "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}],
            "failures": [{"step_id": "nothing.s0", "run_id": "nothing.s0.a1", "error": "x"}],
            "completions": [{"step_id": "nothing.s0", "run_id": "nothing.s0.a1", "summary": "x", "exit_code": 0}]})),
    );
    call(
        "steps.fail",
        "POST",
        &format!("/v1/steps/{step_id}/fail"),
        SERVICE,
        Some(json!({"worker_id": "mini-main", "run_id": run_id, "error": "usage limit",
            "quota": {"account": "team", "resets_at": 4_000_000_000i64, "message": "usage limit reached"}})),
    );
    // The step waits for the account: a person ends the wait.
    call("accounts.resume", "POST", "/v1/accounts/team/resume", ADMIN, None);
    let claimed = call("steps.claim", "POST", "/v1/steps/claim", SERVICE, Some(json!({"worker_id": "mini-main", "host": "mini"})));
    let run_id = claimed["steps"][0]["run_id"].as_str().unwrap().to_string();
    call(
        "steps.complete",
        "POST",
        &format!("/v1/steps/{step_id}/complete"),
        SERVICE,
        Some(json!({"worker_id": "mini-main", "run_id": run_id, "summary": "ok", "exit_code": 0})),
    );
    call("steps.reap", "POST", "/v1/steps/reap", SERVICE, Some(json!({"controller_id": "mini-main", "term": term})));
    call("tasks.read", "GET", &format!("/v1/tasks/{task_id}"), ADMIN, None);
    call("tasks.logs.read", "GET", &format!("/v1/tasks/{task_id}/logs"), ADMIN, None);
    call("runs.read", "GET", &format!("/v1/runs/{run_id}"), ADMIN, None);
    call("runs.list", "GET", "/v1/runs", ADMIN, None);
    call("tasks.cancel", "POST", &format!("/v1/tasks/{task_id}/cancel"), ADMIN, None);
    // Two tasks that end in review: one approved, one rejected.
    for (route, path, body) in [("tasks.approve", "approve", json!({})), ("tasks.reject", "reject", json!({"reason": "no"}))] {
        let body_of_task = json!({"repo": "/r", "task_type": "shell", "title": "r", "goal": "true", "review": true, "key": path});
        let reviewed = call("tasks.create", "POST", "/v1/tasks", ADMIN, Some(body_of_task))["task_id"].as_str().unwrap().to_string();
        call("tasks.claim", "POST", "/v1/tasks/claim", SERVICE, Some(json!({"controller_id": "mini-main", "host": "mini", "term": term})));
        call(
            "tasks.plan",
            "POST",
            &format!("/v1/tasks/{reviewed}/plan"),
            SERVICE,
            Some(json!({"controller_id": "mini-main", "term": term, "planner_provider": "builtin", "planning_strategy": "bench",
                "steps": [{"step_kind": "shell", "worker_kind": "shell", "title": "a", "command": "true"}]})),
        );
        let claimed = call("steps.claim", "POST", "/v1/steps/claim", SERVICE, Some(json!({"worker_id": "mini-main", "host": "mini"})));
        let (step, run) = (claimed["steps"][0]["step"]["step_id"].as_str().unwrap(), claimed["steps"][0]["run_id"].as_str().unwrap());
        call(
            "steps.complete",
            "POST",
            &format!("/v1/steps/{step}/complete"),
            SERVICE,
            Some(json!({"worker_id": "mini-main", "run_id": run, "summary": "ok", "exit_code": 0})),
        );
        call(route, "POST", &format!("/v1/tasks/{reviewed}/{path}"), ADMIN, Some(body));
        call("tasks.report", "GET", &format!("/v1/tasks/{reviewed}/report"), ADMIN, None);
        call("tasks.diff", "GET", &format!("/v1/tasks/{reviewed}/diff"), ADMIN, None);
    }
    call("system.pause", "POST", "/v1/system/pause", ADMIN, None);
    call("system.resume", "POST", "/v1/system/resume", ADMIN, None);
    call("system.drain", "POST", "/v1/system/drain", ADMIN, None);
    call("system.state", "GET", "/v1/system/state", ADMIN, None);
    call("events.list", "GET", "/v1/events?after=0", ADMIN, None);
    call("system.maintain", "POST", "/v1/system/maintenance", ADMIN, None);
    call("leader.release", "POST", "/v1/leader/release", SERVICE, Some(json!({"controller_id": "mini-main"})));
    (counts, plans)
}

#[cfg(test)]
#[test]
fn hot_routes_take_exactly_one_round_trip_and_every_route_is_measured() {
    let counts = measure();
    for route in shared::ROUTES {
        assert!(counts.contains_key(route.id), "{} was not measured", route.id);
    }
    for route in HOT_ROUTES {
        assert_eq!(counts[route], 1, "{route} takes {} round trips", counts[route]);
    }
    // Nothing takes more than two (read, then a compare-and-set write); settling a failure or
    // reaping takes one. Storage upkeep is the exception: a slice of work, bounded by its own
    // budget of operations (SPEC §17).
    assert!(counts.iter().filter(|(route, _)| **route != "system.maintain").all(|(_, count)| *count <= 2), "{counts:?}");
    assert_eq!((counts["steps.fail"], counts["steps.reap"]), (1, 1), "{counts:?}");
}

/// Every statement of a hot route, and of the leader's reaping, finds its rows through an index:
/// no full scan of a table (a virtual `json_each` and a single-row table are fine). What an idle
/// fleet costs in rows read grows with the tables otherwise.
#[cfg(test)]
#[test]
fn hot_statements_scan_no_table() {
    let (_, plans) = measure_with_plans();
    let mut checked = 0;
    let mut scans = Vec::new();
    for route in HOT_ROUTES.iter().chain(&["steps.reap", "steps.fail"]) {
        for (sql, details) in &plans[route] {
            checked += 1;
            for detail in details {
                if detail.starts_with("SCAN ") && !detail.contains("VIRTUAL TABLE") && !detail.starts_with("SCAN CONSTANT ROW") {
                    scans.push(format!("{route}: {detail}\n  in {}", sql.chars().take(300).collect::<String>()));
                }
            }
        }
    }
    assert!(checked > 20, "{checked} statements checked");
    assert!(scans.is_empty(), "{} full scans:\n{}", scans.len(), scans.join("\n"));
}
