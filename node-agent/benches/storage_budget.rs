//! `cargo bench -p node-agent --bench storage_budget`: what a year of a fleet's output costs the
//! control plane's storage (SPEC §17), measured natively with a release agent as a real process.
//!
//! 1. `BAA_STORAGE_TASKS` (default 30) tasks, each printing `BAA_STORAGE_KB` (default 200) KB
//!    in bursts, like a chatty coding agent, through the agent and the control plane on SQLite.
//!    Printed: database bytes and rows per finished task before compaction and after it (bytes
//!    in use, and the file as `VACUUM INTO` writes it), rows written per task (the native meter:
//!    SQLite's own change count), object bytes per task and the compression ratio, and the
//!    largest slice in database queries plus object operations (the free plan allows 50).
//! 2. A 50 MB run (`BAA_STORAGE_BIG_MB`), uploaded in 4 KB chunks: `tasks.logs`'s first page
//!    (500 chunks) and a page from the middle, median of 15 reads, while live and compacted.
//!    Target: compacted ≤ 2× live.
//! 3. The year of a 10-host fleet doing 500 tasks a day at 2 MB each, extrapolated from 1.
//!
//! Targets: ≤ 16 KB of database per finished task after compaction, whatever it printed. Rows
//! written on D1 per task: `cargo bench -p control-worker --bench storage_d1`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rusqlite::Connection;
use serde_json::{json, Value};

const SETTINGS: &[(&str, &str)] = &[("CONTROL_API_COMPACT_AFTER_SEC", "0")];
const TABLES: &[&str] = &["tasks", "steps", "runs", "task_events", "events", "log_chunks", "checkpoints", "log_objects"];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// Bytes of pages in use, the size `VACUUM INTO` writes, and rows per table.
struct Footprint {
    in_use: u64,
    vacuumed: u64,
    rows: Vec<(&'static str, u64)>,
}

fn footprint(db: &Path) -> Footprint {
    let connection = Connection::open(db).unwrap();
    let pragma = |name: &str| connection.query_row(&format!("PRAGMA {name}"), [], |row| row.get::<_, i64>(0)).unwrap() as u64;
    let in_use = (pragma("page_count") - pragma("freelist_count")) * pragma("page_size");
    let copy = db.with_extension("vacuumed");
    let _ = std::fs::remove_file(&copy);
    connection.execute("VACUUM INTO ?1", [copy.to_str().unwrap()]).unwrap();
    let vacuumed = std::fs::metadata(&copy).unwrap().len();
    let rows = TABLES
        .iter()
        .map(|table| {
            (*table, connection.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get::<_, i64>(0)).unwrap() as u64)
        })
        .collect();
    Footprint { in_use, vacuumed, rows }
}

fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .map_while(Result::ok)
        .map(|entry| if entry.path().is_dir() { directory_bytes(&entry.path()) } else { entry.metadata().map_or(0, |meta| meta.len()) })
        .sum()
}

/// Slices until nothing is left; the largest slice's operations and how many slices it took.
fn compact_everything(base: &str) -> (u64, u64, u64) {
    let (mut largest, mut slices, mut runs) = (0, 0, 0);
    loop {
        let report = http(base, "POST", "/v1/system/maintenance", ADMIN, None)["data"].clone();
        slices += 1;
        largest = largest.max(report["db_queries"].as_u64().unwrap() + report["blob_operations"].as_u64().unwrap());
        let compacted = report["compacted_runs"].as_array().unwrap().len() as u64;
        runs += compacted;
        if compacted == 0 && report["more"] == false {
            return (largest, slices, runs);
        }
    }
}

fn kb(bytes: f64) -> String {
    format!("{:.1} KB", bytes / 1024.0)
}

/// Database bytes per task after compaction, objects per byte printed, runs per task and runs
/// per slice.
fn chatty_tasks(tasks: u64, kb_each: u64) -> (f64, f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repo(dir.path());
    let plane = ControlPlane::start_metered(dir.path(), SETTINGS);
    let empty = footprint(&plane.db);
    let mut agent = Agent::new(&plane.base(), "mini-main", dir.path()).arg("--capacity", "2");
    agent.spawn();
    // Ten bursts a tenth of a second apart, each four fifths lines of prose and one fifth
    // base64 of random bytes (hashes, ids, diffs compress worse than prose), then the change.
    let lines_per_burst = kb_each * 1024 * 4 / 5 / 10 / 90;
    let random_per_burst = kb_each * 1024 / 5 / 10 * 3 / 4;
    let goal = format!(
        "for b in $(seq 1 10); do seq -f \"%06g reading src/lib.rs, running the tests, thinking about the next edit to make\" \
         $((b*100000)) $((b*100000+{lines_per_burst}-1)); head -c {random_per_burst} /dev/urandom | base64; \
         echo \"burst $b done\" >&2; sleep 0.1; done; echo done > out.txt"
    );
    let started = Instant::now();
    let ids: Vec<String> = (0..tasks)
        .map(|index| {
            plane.create_task(json!({"repo": repo, "task_type": "shell", "title": format!("chatty {index}"), "goal": goal,
                                     "acceptance": ["test -f out.txt"]}))
        })
        .collect();
    for id in &ids {
        let detail = plane.wait_task(id, &["succeeded", "failed"], Duration::from_secs(600));
        assert_eq!(detail["status"], "succeeded", "{detail:#}");
    }
    agent.terminate();
    let rows_written = plane.meter.as_ref().unwrap().rows_written();
    let before = footprint(&plane.db);
    let printed: usize = plane.log_text(&ids[0], "stdout").len() + plane.log_text(&ids[0], "stderr").len();
    let (largest_slice, slices, runs) = compact_everything(&plane.base());
    let after = footprint(&plane.db);
    let objects = directory_bytes(&plane.db.with_file_name("control.blobs"));
    let n = tasks as f64;
    println!("{tasks} tasks printing {} each ({} s through the agent):", kb(printed as f64), started.elapsed().as_secs());
    println!("  rows written per task (SQLite's change count): {:.0}", rows_written as f64 / n);
    for (label, footprint) in [("before compaction", &before), ("after compaction", &after)] {
        println!(
            "  database per finished task {label}: {} in use, {} vacuumed",
            kb((footprint.in_use - empty.in_use) as f64 / n),
            kb((footprint.vacuumed - empty.vacuumed) as f64 / n)
        );
        let rows: Vec<String> = footprint.rows.iter().map(|(table, count)| format!("{table} {:.1}", *count as f64 / n)).collect();
        println!("    rows per task: {}", rows.join(", "));
    }
    println!(
        "  objects per task: {} for {} printed (compression {:.1}x)",
        kb(objects as f64 / n),
        kb(printed as f64),
        printed as f64 * n / objects as f64
    );
    println!("  compaction: {runs} runs in {slices} slices, the largest {largest_slice} operations (free plan: 50 an invocation)");
    println!("  (target: <= 16 KB of database per finished task after compaction)");
    ((after.vacuumed - empty.vacuumed) as f64 / n, objects as f64 / printed as f64 / n, runs as f64 / n, runs as f64 / slices as f64)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn page_time(base: &str, path: &str) -> f64 {
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let started = Instant::now();
            let page = http(base, "GET", path, ADMIN, None);
            assert_eq!(
                page["data"]["chunks"].as_array().map(Vec::len),
                Some(500),
                "{}",
                &page.to_string()[..200.min(page.to_string().len())]
            );
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    median(&mut times)
}

fn big_run(megabytes: u64) {
    let dir = tempfile::tempdir().unwrap();
    let plane = ControlPlane::start_with(dir.path(), SETTINGS);
    let base = plane.base();
    let post = |path: &str, body: Value| {
        let answer = http(&base, "POST", path, SERVICE, Some(body));
        assert_eq!(answer["ok"], true, "{path}: {answer}");
        answer["data"].clone()
    };
    post(
        "/v1/controllers/heartbeat",
        json!({"controller_id": "bench", "host": "bench", "role": "primary", "priority": 100, "status": "ok"}),
    );
    let term = post("/v1/leader/acquire", json!({"controller_id": "bench", "host": "bench", "ttl_sec": 600}))["term"].clone();
    let task_id = plane.create_task(json!({"repo": "/srv/repo", "task_type": "shell", "title": "50 MB", "goal": "print"}));
    post("/v1/tasks/claim", json!({"controller_id": "bench", "host": "bench", "term": term, "limit": 1}));
    let step = json!({"step_kind": "shell", "worker_kind": "shell", "title": "print", "command": "print", "timeout_sec": 3600});
    post(
        &format!("/v1/tasks/{task_id}/plan"),
        json!({"controller_id": "bench", "term": term, "planner_provider": "builtin", "planning_strategy": "bench", "steps": [step]}),
    );
    let claimed = post("/v1/steps/claim", json!({"worker_id": "bench", "host": "bench", "capacity": 1}));
    let step_id = claimed["steps"][0]["step"]["step_id"].as_str().unwrap().to_string();
    let run_id = claimed["steps"][0]["run_id"].as_str().unwrap().to_string();
    let line = "a line of a long coding session's transcript, with a path src/main.rs:42 and a test name\n";
    let chunk_text: String = line.repeat(4096 / line.len());
    let chunks_total = megabytes * 1024 * 1024 / chunk_text.len() as u64;
    let mut seq = 0;
    while seq < chunks_total {
        let chunks: Vec<Value> = (seq..(seq + 200).min(chunks_total))
            .map(
                |seq| json!({"seq": seq, "stream": if seq % 10 == 9 { "stderr" } else { "stdout" }, "text": format!("{seq} {chunk_text}")}),
            )
            .collect();
        seq += chunks.len() as u64;
        post(&format!("/v1/steps/{step_id}/logs"), json!({"worker_id": "bench", "run_id": run_id, "chunks": chunks}));
    }
    let middle_cursor = {
        let page = http(&base, "GET", &format!("/v1/tasks/{task_id}/logs?after=0&limit=1"), ADMIN, None)["data"].clone();
        page["next_cursor"].as_i64().unwrap() + chunks_total as i64 / 2
    };
    let first = format!("/v1/tasks/{task_id}/logs?after=0&limit=500");
    let middle = format!("/v1/tasks/{task_id}/logs?after={middle_cursor}&limit=500");
    let (live_first, live_middle) = (page_time(&base, &first), page_time(&base, &middle));
    post(&format!("/v1/steps/{step_id}/complete"), json!({"worker_id": "bench", "run_id": run_id, "summary": "done", "exit_code": 0}));
    let started = Instant::now();
    let (largest, slices, _) = compact_everything(&base);
    let compaction = started.elapsed().as_secs_f64();
    let (compacted_first, compacted_middle) = (page_time(&base, &first), page_time(&base, &middle));
    let objects = directory_bytes(&plane.db.with_file_name("control.blobs"));
    println!("a {megabytes} MB run in {chunks_total} chunks of 4 KB (compacted in {compaction:.1} s, {slices} slices, the largest {largest} operations; objects {}):", kb(objects as f64));
    println!(
        "  first page of 500: live {live_first:.2} ms, compacted {compacted_first:.2} ms ({:.2}x; target <= 2x)",
        compacted_first / live_first
    );
    println!("  a middle page:     live {live_middle:.2} ms, compacted {compacted_middle:.2} ms ({:.2}x)", compacted_middle / live_middle);
    println!("  a page reads the block index and the blocks it spans (256 KB each uncompressed), never the whole object");
}

fn main() {
    let tasks = env_number("BAA_STORAGE_TASKS", 30);
    let kb_each = env_number("BAA_STORAGE_KB", 200);
    let (db_per_task, object_ratio, runs_per_task, runs_per_slice) = chatty_tasks(tasks, kb_each);
    big_run(env_number("BAA_STORAGE_BIG_MB", 50));
    // The year of a 10-host fleet: 500 tasks a day at 2 MB each.
    let tasks_a_year = 500.0 * 365.0;
    let printed_a_day = 500.0 * 2.0 * 1024.0 * 1024.0;
    println!("a 10-host fleet, 500 tasks a day at 2 MB of output each, for a year (output kept 90 days):");
    println!("  database: {:.2} GB ({} a task; D1's hard cap 10 GB, target <= 3 GB)", tasks_a_year * db_per_task / 1e9, kb(db_per_task));
    println!(
        "  objects: {:.1} GB held at any time (90 days of output compressed at {:.1}x), {:.0} GB written in the year",
        90.0 * printed_a_day * object_ratio / 1e9,
        1.0 / object_ratio,
        365.0 * printed_a_day * object_ratio / 1e9
    );
    println!(
        "  compaction: {:.0} runs a day; the cron's 1,440 slices a day (one a minute) at {runs_per_slice:.1} runs a slice compact {:.0}",
        500.0 * runs_per_task,
        1440.0 * runs_per_slice
    );
}
