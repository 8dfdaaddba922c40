//! `cargo bench -p control-worker --bench storage_d1` (after `scripts/build-worker`): the rows
//! a finished task writes on D1 itself, its output included, and what compaction into R2 adds
//! (SPEC §17) — D1's own `rows_written`, read from the Worker's test-only usage headers under
//! `wrangler dev` (workerd, local D1 and R2), as the `d1_usage` bench reads them.
//!
//! Each of `BAA_STORAGE_D1_TASKS` (default 10) tasks goes as the agent reports one: three steps
//! (the goal, its acceptance, the delivery) claimed and completed in turn, its output of
//! `BAA_STORAGE_D1_KB` (default 200) KB in 10 log chunks, and 10 checkpoints (two of them
//! larger than the 4 KB kept inline). Then storage upkeep, slice by slice, until done.
//!
//! Target: ≤ 150 rows written per task, its output included; every slice ≤ 50 D1 queries and
//! R2 operations (the free plan's per-invocation limit).

#[path = "../tests/api/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "support/wrangler_dev.rs"]
mod wrangler_dev;

use std::path::Path;

use serde_json::{json, Value};
use wrangler_dev::{free_port, start, worker_dev, Server};

const ADMIN: &str = "bench-admin-token";
const SERVICE: &str = "bench-service-token";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn start_worker(state: &Path, log: &Path) -> Server {
    let port = free_port();
    let mut command = worker_dev(port, state);
    command
        .env("CONTROL_API_BROWSER_ADMIN_TOKEN", ADMIN)
        .env("BAA_SHARED_TOKEN", SERVICE)
        .env("CONTROL_API_TEST_ONLY_DB_USAGE", "true")
        .env("CONTROL_API_COMPACT_AFTER_SEC", "0")
        .env("CONTROL_API_TEST_ONLY_MANUAL_CLOCK", "true");
    start(command, port, log)
}

/// Rows written by one request (D1's own count) and the answer's data.
fn call(connection: &mut client::Connection, path: &str, token: &str, body: &Value) -> (u64, Value) {
    let auth = format!("Bearer {token}");
    let response = connection
        .send("POST", path, &[("authorization", &auth), ("content-type", "application/json")], body.to_string().as_bytes(), true)
        .unwrap();
    assert!(response.status < 300, "{path}: {}", response.text());
    let written: u64 = response.header("x-test-d1-rows-written").and_then(|value| value.parse().ok()).expect("the usage headers");
    if std::env::var("BAA_STORAGE_D1_TRACE").is_ok() {
        println!("    {path}: {written} rows written");
    }
    (written, response.json()["data"].clone())
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn output_line(task: u64, index: u64) -> String {
    format!("{index:06} task {task}: reading src/lib.rs, running the tests, thinking about the next edit to make\n")
}

fn main() {
    let tasks = env_number("BAA_STORAGE_D1_TASKS", 10);
    let kb_each = env_number("BAA_STORAGE_D1_KB", 200);
    let dir = tempfile::tempdir().unwrap();
    let server = start_worker(&dir.path().join("state"), &dir.path().join("worker.log"));
    let mut connection = client::Connection::open(&server.base).unwrap();
    let mut post = |path: &str, token: &str, body: Value| call(&mut connection, path, token, &body);
    post(
        "/v1/controllers/heartbeat",
        SERVICE,
        json!({"controller_id": "mini-main", "host": "mini", "role": "primary", "priority": 100, "status": "ok"}),
    );
    let term = post("/v1/leader/acquire", SERVICE, json!({"controller_id": "mini-main", "host": "mini", "ttl_sec": 600})).1["term"].clone();
    let (mut task_rows, mut output_rows) = (0u64, 0u64);
    for task in 0..tasks {
        let (written, created) = post(
            "/v1/tasks",
            ADMIN,
            json!({"repo": "/srv/repo", "task_type": "shell", "title": format!("chatty {task}"), "goal": "print"}),
        );
        task_rows += written;
        let task_id = created["task_id"].as_str().unwrap().to_string();
        task_rows += post("/v1/tasks/claim", SERVICE, json!({"controller_id": "mini-main", "host": "mini", "term": term, "limit": 1})).0;
        let steps: Vec<Value> = ["shell", "test", "deliver"]
            .iter()
            .map(|kind| json!({"step_kind": kind, "worker_kind": "shell", "title": kind, "command": "print", "timeout_sec": 600}))
            .collect();
        let plan = json!({"controller_id": "mini-main", "term": term, "planner_provider": "builtin", "planning_strategy": "bench", "steps": steps});
        task_rows += post(&format!("/v1/tasks/{task_id}/plan"), SERVICE, plan).0;
        for step in 0..3u64 {
            let (written, claimed) = post("/v1/steps/claim", SERVICE, json!({"worker_id": "mini-main", "host": "mini", "capacity": 1}));
            task_rows += written;
            let step_id = claimed["steps"][0]["step"]["step_id"].as_str().unwrap().to_string();
            let run_id = claimed["steps"][0]["run_id"].as_str().unwrap().to_string();
            if step == 0 {
                // The output in ten chunks (one per flush of the agent's shipper), in two uploads.
                let lines = kb_each * 1024 / 100 / 10;
                for upload in 0..2u64 {
                    let chunks: Vec<Value> = (upload * 5..upload * 5 + 5)
                        .map(|seq| {
                            json!({"seq": seq, "stream": if seq % 5 == 4 { "stderr" } else { "stdout" },
                                          "text": (0..lines).map(|line| output_line(task, seq * lines + line)).collect::<String>()})
                        })
                        .collect();
                    output_rows += post(
                        &format!("/v1/steps/{step_id}/logs"),
                        SERVICE,
                        json!({"worker_id": "mini-main", "run_id": run_id, "chunks": chunks}),
                    )
                    .0;
                }
            }
            for seq in 0..(if step == 0 { 8 } else { 1 }) {
                let content =
                    if seq < 2 && step == 0 { output_line(task, seq).repeat(80) } else { format!("{{\"step\": {step}, \"seq\": {seq}}}") };
                let body = json!({"worker_id": "mini-main", "run_id": run_id, "seq": seq, "checkpoint_type": "log_tail", "format": "text",
                                  "content": content, "size": content.len(), "sha256": sha256_hex(&content)});
                output_rows += post(&format!("/v1/steps/{step_id}/checkpoint"), SERVICE, body).0;
            }
            let done = json!({"worker_id": "mini-main", "run_id": run_id, "summary": "done", "exit_code": 0});
            task_rows += post(&format!("/v1/steps/{step_id}/complete"), SERVICE, done).0;
        }
    }
    let upkeep = |post: &mut dyn FnMut(&str, &str, Value) -> (u64, Value)| {
        let (mut rows, mut largest, mut slices) = (0u64, 0u64, 0u64);
        loop {
            let (written, report) = post("/v1/system/maintenance", ADMIN, json!({}));
            rows += written;
            slices += 1;
            largest = largest.max(report["db_queries"].as_u64().unwrap() + report["blob_operations"].as_u64().unwrap());
            if report["compacted_runs"] == json!([]) && report["expired_runs"] == json!([]) && report["more"] == false {
                return (rows, largest, slices);
            }
        }
    };
    let (upkeep_rows, largest, slices) = upkeep(&mut post);
    // 91 days later (the Worker's test clock): the log retention deletes the objects.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    post("/__test/clock", ADMIN, json!({"set": now + 91 * 86_400}));
    let (retention_rows, retention_largest, retention_slices) = upkeep(&mut post);
    let n = tasks as f64;
    let total = (task_rows + output_rows + upkeep_rows + retention_rows) as f64 / n;
    println!("D1's own rows written under wrangler dev, {tasks} tasks of 3 steps printing {kb_each} KB each:");
    println!("  the task's lifecycle (create, claim, plan, 3 step claims and completions): {:.1} rows", task_rows as f64 / n);
    println!("  its output (10 log chunks in 2 uploads, 10 checkpoints): {:.1} rows", output_rows as f64 / n);
    println!(
        "  compaction into R2 ({slices} slices, the largest {largest} D1 queries and R2 operations): {:.1} rows",
        upkeep_rows as f64 / n
    );
    println!(
        "  retention 91 days later ({retention_slices} slices, the largest {retention_largest} operations): {:.1} rows",
        retention_rows as f64 / n
    );
    println!("  total {total:.1} rows per task over its life (target <= 150), {:.3} rows per KB printed", total / kb_each as f64);
}
