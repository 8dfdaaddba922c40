//! SPEC §17, a year of output: a finished run's output compacted into objects (files natively,
//! R2 under `wrangler dev`) reads exactly as it did from rows; a page spans both; large
//! checkpoints round-trip; retention answers `410 logs_expired`; compactions race safely; an
//! interrupted compaction (a store that fails on demand, in the core) loses nothing.

use std::thread;

use control_worker::core::blobs::MemoryBlobs;
use control_worker::core::clock::{ManualClock, SeededRandom};
use control_worker::core::config::Config;
use control_worker::core::http::ApiRequest;
use control_worker::core::Core;
use control_worker::native::SqliteDb;
use serde_json::{json, Value};

use crate::support::*;

/// Any way to call the API: HTTP to a target, or the core in process. Answers (status, body).
pub(crate) type Caller<'a> = &'a dyn Fn(&str, &str, &str, Option<Value>) -> (u16, Value);

/// HTTP to a base URL, each request with the given token.
pub(crate) fn via_base(base: &str) -> impl Fn(&str, &str, &str, Option<Value>) -> (u16, Value) + '_ {
    move |method, path, token, body| {
        let auth = format!("Bearer {token}");
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let mut headers = vec![("authorization", auth.as_str())];
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        let response = crate::client::request(base, method, path, &headers, body.as_bytes());
        (response.status, response.json())
    }
}

pub(crate) fn via_http(t: &Target) -> impl Fn(&str, &str, &str, Option<Value>) -> (u16, Value) + '_ {
    move |method, path, token, body| {
        let response = match body {
            Some(body) => t.post(path, token, body),
            None if method == "GET" => t.get(path, token),
            None => t.post(path, token, json!({})),
        };
        (response.status, response.json())
    }
}

pub(crate) fn data(answer: (u16, Value), status: u16) -> Value {
    assert_eq!(answer.0, status, "{}", answer.1);
    answer.1["data"].clone()
}

/// Text that does not compress to nothing: a line of a run's output.
pub(crate) fn line(run: usize, index: usize, width: usize) -> String {
    let mut text = format!("run {run} line {index}: ");
    let mut state = (run * 7_919 + index * 104_729) as u64;
    while text.len() < width {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        text.push_str(&format!("{:x} ", state >> 40));
    }
    text.push('\n');
    text
}

/// The output of a run: ~900 KB of stdout in three uploads (several blocks once compacted),
/// stderr between, text with ANSI colours and non-ASCII, a small and a large checkpoint.
fn upload_output(call: Caller, step_id: &str, run_id: &str, worker: &str, run: usize) {
    let logs = format!("/v1/steps/{step_id}/logs");
    let mut seq = 0;
    for upload in 0..3 {
        let mut chunks = Vec::new();
        for index in 0..100 {
            chunks.push(json!({"seq": seq, "stream": "stdout", "text": line(run, upload * 100 + index, 3_000)}));
            seq += 1;
            if index % 5 == 0 {
                chunks.push(json!({"seq": seq, "stream": "stderr", "text": format!("\u{1b}[31mwarn\u{1b}[0m {index}: é ✓\n")}));
                seq += 1;
            }
        }
        data(call("POST", &logs, SHARED, Some(json!({"worker_id": worker, "run_id": run_id, "chunks": chunks}))), 200);
    }
    for (seq, content) in [(0, "small: kept in its row".to_string()), (1, line(run, 9_999, 50_000))] {
        let body = json!({"worker_id": worker, "run_id": run_id, "seq": seq, "checkpoint_type": "log_tail", "format": "text",
                          "content": content, "size": content.len(), "sha256": sha256_hex(&content)});
        data(call("POST", &format!("/v1/steps/{step_id}/checkpoint"), SHARED, Some(body)), 201);
    }
}

/// Every chunk of a task's logs read page by page (`limit` a page), with the cursors answered.
fn read_all(call: Caller, task_id: &str, query: &str, limit: i64) -> (Vec<Value>, Vec<i64>) {
    let (mut chunks, mut cursors, mut after) = (Vec::new(), Vec::new(), 0);
    loop {
        let page = data(call("GET", &format!("/v1/tasks/{task_id}/logs?after={after}&limit={limit}{query}"), READONLY, None), 200);
        let page_chunks = page["chunks"].as_array().unwrap().clone();
        after = page["next_cursor"].as_i64().unwrap();
        cursors.push(after);
        if page_chunks.is_empty() {
            return (chunks, cursors);
        }
        assert!(page_chunks.len() as i64 <= limit);
        chunks.extend(page_chunks);
    }
}

/// What the tests compare before and after compaction: whole reads, small pages, filters.
pub(crate) fn snapshot(call: Caller, task_id: &str, run_id: &str) -> Vec<(Vec<Value>, Vec<i64>)> {
    vec![
        read_all(call, task_id, "", 1000),
        read_all(call, task_id, "", 7),
        read_all(call, task_id, "&stream=stderr", 13),
        read_all(call, task_id, &format!("&run_id={run_id}&stream=stdout"), 250),
    ]
}

/// A running task of two steps: the first's run finished with its output, the second's run
/// live with a little output. Returns (task, first run, second step, second run).
pub(crate) fn two_runs(call: Caller, worker: &str) -> (String, String, String, String) {
    let leader = {
        data(
            call(
                "POST",
                "/v1/controllers/heartbeat",
                SHARED,
                Some(json!({"controller_id": "mini-main", "host": "mini", "role": "primary", "priority": 100, "status": "ok"})),
            ),
            200,
        );
        data(call("POST", "/v1/leader/acquire", SHARED, Some(json!({"controller_id": "mini-main", "host": "mini", "ttl_sec": 30}))), 200)
    };
    let term = leader["term"].as_i64().unwrap();
    let created = data(
        call(
            "POST",
            "/v1/tasks",
            BROWSER_ADMIN,
            Some(json!({"repo": "/srv/repo", "task_type": "shell", "title": "chatty", "goal": "print"})),
        ),
        201,
    );
    let task_id = created["task_id"].as_str().unwrap().to_string();
    data(
        call("POST", "/v1/tasks/claim", SHARED, Some(json!({"controller_id": "mini-main", "host": "mini", "term": term, "limit": 1}))),
        200,
    );
    let steps = json!([shell_step("print a lot", 1), shell_step("print a little", 1)]);
    let plan =
        json!({"controller_id": "mini-main", "term": term, "planner_provider": "builtin", "planning_strategy": "test", "steps": steps});
    data(call("POST", &format!("/v1/tasks/{task_id}/plan"), SHARED, Some(plan)), 200);
    let claim = |capacity: i64| {
        let claimed =
            data(call("POST", "/v1/steps/claim", SHARED, Some(json!({"worker_id": worker, "host": "mini", "capacity": capacity}))), 200);
        let step = &claimed["steps"][0];
        (step["step"]["step_id"].as_str().unwrap().to_string(), step["run_id"].as_str().unwrap().to_string())
    };
    let (first_step, first_run) = claim(1);
    upload_output(call, &first_step, &first_run, worker, 1);
    let done = json!({"worker_id": worker, "run_id": first_run, "summary": "done", "exit_code": 0});
    data(call("POST", &format!("/v1/steps/{first_step}/complete"), SHARED, Some(done)), 200);
    let (second_step, second_run) = claim(1);
    let chunks = json!([{"seq": 0, "stream": "stdout", "text": "still going\n"}, {"seq": 1, "stream": "stderr", "text": "a warning\n"}]);
    data(
        call(
            "POST",
            &format!("/v1/steps/{second_step}/logs"),
            SHARED,
            Some(json!({"worker_id": worker, "run_id": second_run, "chunks": chunks})),
        ),
        200,
    );
    (task_id, first_run, second_step, second_run)
}

pub(crate) fn maintain(call: Caller) -> Value {
    data(call("POST", "/v1/system/maintenance", OPS_ADMIN, None), 200)
}

fn run_detail(call: Caller, run_id: &str) -> Value {
    data(call("GET", &format!("/v1/runs/{run_id}"), READONLY, None), 200)
}

#[test]
fn output_reads_the_same_before_and_after_compaction_and_across_the_boundary() {
    let t = Target::new();
    let call = via_http(&t);
    let (task_id, first_run, second_step, second_run) = two_runs(&call, "mini-main");
    let before = snapshot(&call, &task_id, &first_run);
    let detail_before = run_detail(&call, &first_run);
    assert!(before[0].0.len() > 360, "the whole output: {}", before[0].0.len());

    let early = maintain(&call);
    assert_eq!(early["compacted_runs"], json!([]), "not before the grace after a run finishes: {early}");
    t.advance(301);
    let report = maintain(&call);
    assert_eq!(report["compacted_runs"], json!([first_run]), "the finished run only: {report}");
    assert_eq!(report["objects_written"], 3, "stdout, stderr, checkpoints: {report}");
    assert_eq!(report["log_rows_deleted"], 360, "{report}");
    assert!(report["object_bytes"].as_i64().unwrap() < report["bytes_moved"].as_i64().unwrap(), "compressed: {report}");
    assert!(report["db_queries"].as_i64().unwrap() + report["blob_operations"].as_i64().unwrap() <= 40, "{report}");

    // The first page after 0 spans the compacted run and the live one.
    let after = snapshot(&call, &task_id, &first_run);
    assert_eq!(after, before, "same chunks, order and cursors after compaction");
    let runs_in_page: std::collections::BTreeSet<&str> = after[0].0.iter().map(|chunk| chunk["run_id"].as_str().unwrap()).collect();
    assert_eq!(runs_in_page.len(), 2, "one page holds both runs");
    assert_eq!(run_detail(&call, &first_run), detail_before, "checkpoints, the large one from its object, read the same");
    assert_eq!(maintain(&call)["compacted_runs"], json!([]), "compaction is done once");
    // A chunk sent again (its answer was lost) after its row left for an object: a duplicate.
    let first_step = before[0].0[0]["step_id"].as_str().unwrap().to_string();
    let resent = json!([{"seq": 0, "stream": "stdout", "text": "a resend, not a second copy\n"}]);
    data(
        call(
            "POST",
            &format!("/v1/steps/{first_step}/logs"),
            SHARED,
            Some(json!({"worker_id": "mini-main", "run_id": first_run, "chunks": resent})),
        ),
        200,
    );
    assert_eq!(snapshot(&call, &task_id, &first_run), before);
    assert_eq!(maintain(&call)["compacted_runs"], json!([]), "nothing was reopened");

    // Output that arrives after its run was compacted (a host back from a partition) is kept:
    // read at once, and folded into a rebuilt object by the next compaction.
    let chunks = json!([{"seq": 100_000, "stream": "stdout", "text": "too late\n"}]);
    data(
        call(
            "POST",
            &format!("/v1/steps/{first_step}/logs"),
            SHARED,
            Some(json!({"worker_id": "mini-main", "run_id": first_run, "chunks": chunks})),
        ),
        200,
    );
    let with_late = snapshot(&call, &task_id, &first_run);
    assert_eq!(with_late[3].0.last().unwrap()["text"], "too late\n");
    assert_eq!(with_late[3].0.len(), before[3].0.len() + 1);
    let rebuilt = maintain(&call);
    assert_eq!(rebuilt["compacted_runs"], json!([first_run]), "{rebuilt}");
    assert_eq!((rebuilt["objects_written"].clone(), rebuilt["objects_deleted"].clone()), (json!(1), json!(1)), "stdout rebuilt: {rebuilt}");
    assert_eq!(snapshot(&call, &task_id, &first_run), with_late);
    let done = json!({"worker_id": "mini-main", "run_id": second_run, "summary": "done", "exit_code": 0});
    data(call("POST", &format!("/v1/steps/{second_step}/complete"), SHARED, Some(done)), 200);
    let whole = snapshot(&call, &task_id, &first_run);
    t.advance(301);
    assert_eq!(maintain(&call)["compacted_runs"], json!([second_run]));
    assert_eq!(snapshot(&call, &task_id, &first_run), whole);
}

#[test]
fn retention_expires_a_runs_output_with_a_clear_answer() {
    let mut env = test_env();
    env.insert("CONTROL_API_LOG_RETENTION_DAYS".into(), "7".into());
    let t = Target::with_env(env);
    let call = via_http(&t);
    let (task_id, first_run, _, second_run) = two_runs(&call, "mini-main");
    t.advance(301);
    maintain(&call);
    t.advance(6 * 86_400);
    assert_eq!(maintain(&call)["expired_runs"], json!([]), "kept for seven days");
    t.advance(86_400);
    let report = maintain(&call);
    assert_eq!(report["expired_runs"], json!([first_run]), "{report}");
    assert_eq!(report["objects_deleted"], 3, "{report}");
    assert_eq!(report["log_retention_days"], 7);

    let response = t.get(&format!("/v1/tasks/{task_id}/logs"), READONLY);
    let details = err(&response, 410, "logs_expired");
    assert_eq!(details["run_id"], first_run.as_str());
    assert_eq!(details["retention_days"], 7);
    assert!(response.json()["message"].as_str().unwrap().contains("7 days"), "{}", response.text());
    // The live run's output is still there, by its run or by reading on past the expired one.
    let live = data(call("GET", &format!("/v1/tasks/{task_id}/logs?run_id={second_run}"), READONLY, None), 200);
    assert_eq!(live["chunks"].as_array().unwrap().len(), 2);
    let past = data(call("GET", &format!("/v1/tasks/{task_id}/logs?after={}", details["next_cursor"]), READONLY, None), 200);
    assert_eq!(past["chunks"], live["chunks"], "next_cursor reads on past the expired run");
    let detail = run_detail(&call, &first_run);
    let first_step = detail["run"]["step_id"].as_str().unwrap().to_string();
    let chunks = json!([{"seq": 100_000, "stream": "stdout", "text": "too late\n"}]);
    data(
        call(
            "POST",
            &format!("/v1/steps/{first_step}/logs"),
            SHARED,
            Some(json!({"worker_id": "mini-main", "run_id": first_run, "chunks": chunks})),
        ),
        200,
    );
    err(&t.get(&format!("/v1/tasks/{task_id}/logs?run_id={first_run}"), READONLY), 410, "logs_expired");
    assert_eq!(maintain(&call)["compacted_runs"], json!([]), "nothing was stored to compact");
    let checkpoints = detail["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints[0]["content"], "small: kept in its row");
    assert_eq!((checkpoints[1]["content"].clone(), checkpoints[1]["content_expired"].clone()), (json!(""), json!(true)));
    assert_eq!(maintain(&call)["expired_runs"], json!([]), "expired once");

    // Events older than 30 days go too; the task itself stays.
    t.advance(30 * 86_400);
    assert!(maintain(&call)["events_deleted"].as_i64().unwrap() >= 2);
    assert_eq!(task(&t, &task_id)["task_id"], task_id.as_str());
}

#[test]
fn two_compactions_at_once_lose_nothing() {
    let t = Target::new();
    let call = via_http(&t);
    let mut tasks = Vec::new();
    for worker in ["mini-main", "mini-two", "mini-three"] {
        let (task_id, first_run, _, _) = two_runs(&call, worker);
        tasks.push((snapshot(&call, &task_id, &first_run), task_id, first_run));
    }
    t.advance(301);
    let siblings = t.siblings(2);
    let reports: Vec<Value> = thread::scope(|scope| {
        let racers: Vec<_> = siblings
            .bases
            .iter()
            .map(|base| {
                scope.spawn(move || {
                    let response = crate::client::request(
                        base,
                        "POST",
                        "/v1/system/maintenance",
                        &[("authorization", &format!("Bearer {OPS_ADMIN}"))],
                        b"",
                    );
                    ok(&response, 200)
                })
            })
            .collect();
        racers.into_iter().map(|racer| racer.join().unwrap()).collect()
    });
    let compacted: usize = reports.iter().map(|report| report["compacted_runs"].as_array().unwrap().len()).sum();
    assert!(compacted >= 3, "every run compacted, some perhaps twice: {reports:?}");
    for (before, task_id, first_run) in &tasks {
        assert_eq!(&snapshot(&call, task_id, first_run), before, "nothing lost or doubled");
    }
    assert_eq!(maintain(&call)["compacted_runs"], json!([]));
}

/// The core in process, on SQLite and a `MemoryBlobs` that fails after `n` operations: every
/// point at which the store can fail mid-compaction.
#[test]
fn an_interrupted_compaction_resumes_and_loses_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let env = test_env();
    let (config, _) = Config::from_lookup(|name| env.get(name).cloned()).unwrap();
    let clock = ManualClock::new(START_TIME);
    let core = Core::new(SqliteDb::open_in_memory().unwrap(), MemoryBlobs::new(), clock.clone(), SeededRandom::new(3), config);
    let call = |method: &str, path: &str, token: &str, body: Option<Value>| {
        let response = runtime.block_on(core.handle(ApiRequest::json(method, path, token, body.as_ref())));
        (response.status, serde_json::from_slice(&response.body).unwrap())
    };
    let (task_id, first_run, _, _) = two_runs(&call, "mini-main");
    let before = snapshot(&call, &task_id, &first_run);
    let detail_before = run_detail(&call, &first_run);
    clock.advance(301);
    let mut failures = 0;
    for allowed in 0..12 {
        core.blobs.fail_after(allowed);
        let (status, answer) = call("POST", "/v1/system/maintenance", OPS_ADMIN, None);
        core.blobs.heal();
        assert_eq!(snapshot(&call, &task_id, &first_run), before, "after a failure at operation {allowed}: {answer}");
        assert_eq!(run_detail(&call, &first_run), detail_before);
        if status == 500 {
            failures += 1;
        } else {
            assert_eq!(status, 200, "{answer}");
        }
    }
    assert!(failures >= 6, "the store failed at each of the compaction's operations ({failures})");
    assert!(core.blobs.keys().iter().all(|key| key.starts_with(&format!("runs/{first_run}/"))), "{:?}", core.blobs.keys());
    assert_eq!(data(call("POST", "/v1/system/maintenance", OPS_ADMIN, None), 200)["compacted_runs"], json!([]), "done by then");
}

/// The Worker's Cron Trigger (`#[event(scheduled)]`), run by `wrangler dev --test-scheduled`'s
/// `/__scheduled`: one slice of the same upkeep. (Natively the timer does it: `storage_process`.)
#[test]
fn the_cron_trigger_compacts_on_the_worker() {
    if !worker_target() {
        return;
    }
    let t = Target::new();
    let call = via_http(&t);
    let (task_id, first_run, _, _) = two_runs(&call, "mini-main");
    let before = snapshot(&call, &task_id, &first_run);
    t.advance(301);
    let fired = crate::client::request(&t.base, "GET", "/__scheduled?cron=*+*+*+*+*", &[], b"");
    assert_eq!(fired.status, 200, "{}", fired.text());
    assert_eq!(maintain(&call)["compacted_runs"], json!([]), "the cron's slice compacted the run");
    assert_eq!(snapshot(&call, &task_id, &first_run), before);
}
