//! `cargo bench -p control-worker --bench d1_usage` (after `scripts/build-worker`): what an
//! `agents.sync` costs on D1 itself, as Cloudflare counts it — D1's own `rows_read` and
//! `rows_written`, reported by the Worker under `wrangler dev` (workerd, local D1) through its
//! test-only usage headers — with 10,000 finished tasks (each with a step and a run) in the
//! database.
//!
//! Prints, as medians over `BAA_D1_USAGE_SYNCS` (default 20) syncs each: the idle leader's
//! sync, the idle standby's, a quiet standby's held sync (3 of them, 7.5 s each), and the same at the single-purpose routes the agents made before
//! (`controllers.heartbeat`, `leader.acquire`, `tasks.claim`, `steps.claim`, `steps.reap`).
//! Target: ≤ 50 rows read per idle sync. Rows written a day follow from the syncs a day that
//! `cargo bench -p node-agent --bench fleet_budget` counts.

#[path = "../tests/api/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "support/wrangler_dev.rs"]
mod wrangler_dev;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use wrangler_dev::{free_port, root, start, worker_dev, Server};

use serde_json::{json, Value};

const ADMIN: &str = "bench-admin-token";
const SERVICE: &str = "bench-service-token";
const FINISHED_TASKS: u64 = 10_000;

fn start_worker(state: &Path, log: &Path) -> Server {
    let port = free_port();
    let mut command = worker_dev(port, state);
    command.env("CONTROL_API_BROWSER_ADMIN_TOKEN", ADMIN).env("BAA_SHARED_TOKEN", SERVICE).env("CONTROL_API_TEST_ONLY_DB_USAGE", "true");
    start(command, port, log)
}

/// 10,000 finished tasks, each with one succeeded step and its run, straight into the local D1.
fn seed(state: &Path) {
    let sql = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {FINISHED_TASKS}) \
         INSERT INTO tasks (task_id, repo, task_type, title, goal, priority, status, constraints_json, acceptance_json, metadata_json, \
           base_ref, branch_name, created_at, updated_at, started_at, finished_at, assigned_host) \
         SELECT 'seed' || i, '/r', 'shell', 'seed ' || i, 'true', 50, 'succeeded', '{{}}', '[]', '{{}}', 'HEAD', 'baa/seed' || i, \
           1700000000 + i, 1700000000 + i, 1700000000 + i, 1700000000 + i, 'mini' FROM n; \
         INSERT INTO steps (step_id, task_id, step_index, step_kind, worker_kind, title, command, timeout_sec, status, attempt, \
           max_attempts, task_priority, worker_id, current_run_id, created_at, finished_at) \
         SELECT task_id || '.s0', task_id, 0, 'shell', 'shell', 'run the goal', 'true', 60, 'succeeded', 1, 1, 50, 'mini-main', \
           task_id || '.s0.a1', created_at, finished_at FROM tasks WHERE task_id LIKE 'seed%'; \
         INSERT INTO runs (run_id, step_id, task_id, worker_id, host, attempt, status, claimed_at, started_at, finished_at) \
         SELECT step_id || '.a1', step_id, task_id, 'mini-main', 'mini', 1, 'succeeded', created_at, created_at, finished_at \
           FROM steps WHERE task_id LIKE 'seed%';"
    );
    let status = Command::new("bash")
        .current_dir(root())
        .arg("-c")
        .arg(format!(
            "source scripts/edge-env && wrangler d1 execute CONTROL_DB --local --config {state}/wrangler.dev.toml --persist-to {state} \
             --command \"$SEED_SQL\" > {state}/seed.log 2>&1",
            state = state.display()
        ))
        .env("SEED_SQL", sql)
        .status()
        .unwrap();
    assert!(status.success(), "seeding failed; see {}/seed.log", state.display());
}

/// Rows read and written by one request, from the usage headers; and the answer's data.
fn call(connection: &mut client::Connection, path: &str, token: &str, body: &Value) -> (u64, u64, Value) {
    let auth = format!("Bearer {token}");
    let response = connection
        .send("POST", path, &[("authorization", &auth), ("content-type", "application/json")], body.to_string().as_bytes(), true)
        .unwrap();
    assert!(response.status < 300, "{path}: {}", response.text());
    let header =
        |name: &str| response.header(name).and_then(|value| value.parse().ok()).expect("the usage headers (a Worker built with them?)");
    (header("x-test-d1-rows-read"), header("x-test-d1-rows-written"), response.json()["data"].clone())
}

fn sync_body(node: &str, host: &str, term: Option<i64>) -> Value {
    let mut lease = json!({"wish": "acquire", "ttl_sec": 30, "preferred": host == "mini"});
    if let Some(term) = term {
        lease["term"] = term.into();
    }
    json!({"node_id": node, "host": host, "role": if host == "mini" { "primary" } else { "standby" }, "priority": 100,
           "status": "ok", "lease": lease, "capacity": 1, "worker_kinds": ["shell"]})
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort();
    values[values.len() / 2]
}

fn measure(name: &str, syncs: usize, mut one: impl FnMut() -> (u64, u64)) {
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for _ in 0..syncs {
        let (read, written) = one();
        reads.push(read);
        writes.push(written);
        // Quick succession: the controller row (refreshed every 15 s, so every other sync at
        // the 10 s idle pace) is not rewritten here; the fleet benchmark counts those writes.
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "  {name:<34} rows read median {:>5}, max {:>5} | rows written median {:>3}, max {:>3}",
        median(reads.clone()),
        reads.iter().max().unwrap(),
        median(writes.clone()),
        writes.iter().max().unwrap()
    );
}

fn main() {
    let syncs: usize = std::env::var("BAA_D1_USAGE_SYNCS").ok().and_then(|value| value.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let server = start_worker(&state, &dir.path().join("worker.log"));
    seed(&state);
    let mut connection = client::Connection::open(&server.base).unwrap();
    let (_, _, first) = call(&mut connection, "/v1/agents/sync", SERVICE, &sync_body("mini-main", "mini", None));
    let term = first["lease"]["term"].as_i64().unwrap();
    call(&mut connection, "/v1/agents/sync", SERVICE, &sync_body("mac-standby", "mac", None));

    println!("D1's own counts per request under wrangler dev, {FINISHED_TASKS} finished tasks in the database, {syncs} requests each:");
    measure("agents.sync, idle leader", syncs, || {
        let (read, written, _) = call(&mut connection, "/v1/agents/sync", SERVICE, &sync_body("mini-main", "mini", Some(term)));
        (read, written)
    });
    measure("agents.sync, idle standby", syncs, || {
        let (read, written, _) = call(&mut connection, "/v1/agents/sync", SERVICE, &sync_body("mac-standby", "mac", None));
        (read, written)
    });
    // As the agent's quiet standby syncs by default: held 7.5 s while the lease stays put,
    // reading the lease row every 500 ms.
    let held = syncs.min(3);
    measure("agents.sync, held standby (7.5 s)", held, || {
        let mut body = sync_body("mac-standby", "mac", None);
        body["hold_ms"] = 7_500.into();
        let (read, written, answer) = call(&mut connection, "/v1/agents/sync", SERVICE, &body);
        assert_eq!(answer["next_sync_ms"], 2_500, "held for the whole 7.5 s: {answer}");
        // The leader renews meanwhile, as it would.
        call(&mut connection, "/v1/agents/sync", SERVICE, &sync_body("mini-main", "mini", Some(term)));
        (read, written)
    });
    println!("  the single-purpose routes an agent tick used to make:");
    let heartbeat = json!({"controller_id": "mini-main", "host": "mini", "role": "primary", "priority": 100, "status": "leader"});
    measure("controllers.heartbeat", syncs, || {
        let (read, written, _) = call(&mut connection, "/v1/controllers/heartbeat", SERVICE, &heartbeat);
        (read, written)
    });
    measure("leader.acquire (renew)", syncs, || {
        let body = json!({"controller_id": "mini-main", "host": "mini", "ttl_sec": 30, "preferred": true});
        let (read, written, _) = call(&mut connection, "/v1/leader/acquire", SERVICE, &body);
        (read, written)
    });
    measure("tasks.claim (none queued)", syncs, || {
        let body = json!({"controller_id": "mini-main", "host": "mini", "term": term, "limit": 5});
        let (read, written, _) = call(&mut connection, "/v1/tasks/claim", SERVICE, &body);
        (read, written)
    });
    measure("steps.claim (none ready)", syncs, || {
        let body = json!({"worker_id": "mini-main", "host": "mini", "capacity": 1});
        let (read, written, _) = call(&mut connection, "/v1/steps/claim", SERVICE, &body);
        (read, written)
    });
    measure("steps.reap (nothing lost)", syncs, || {
        let body = json!({"controller_id": "mini-main", "term": term});
        let (read, written, _) = call(&mut connection, "/v1/steps/reap", SERVICE, &body);
        (read, written)
    });
}
