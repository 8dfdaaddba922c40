//! SPEC §4 and §6 through the API alone: the whole chain, retries, failures, blocking,
//! cancellation, pause and drain, idempotent create, listing.

use serde_json::{json, Value};

use crate::support::*;

fn only_step(t: &Target, worker: &str, host: &str) -> (String, String) {
    let claimed = claim_steps(t, worker, host, 1);
    assert_eq!(claimed.len(), 1, "one step claimed: {claimed:?}");
    (claimed[0]["step"]["step_id"].as_str().unwrap().into(), claimed[0]["run_id"].as_str().unwrap().into())
}

#[test]
fn the_whole_chain_from_create_to_succeeded() {
    let t = Target::new();
    let leader = leader(&t);
    let created = ok(
        &t.post(
            "/v1/tasks",
            BROWSER_ADMIN,
            json!({"repo": "/srv/repo", "task_type": "shell", "title": "say hello", "goal": "echo hello > hello.txt",
                   "acceptance": ["test -f hello.txt"], "metadata": {"requested_by": "ada"}}),
        ),
        201,
    );
    let task_id = created["task_id"].as_str().unwrap().to_string();
    assert_eq!(created["status"], "queued");
    assert_eq!(created["base_ref"], "HEAD");
    assert_eq!(created["branch_name"], format!("baa/{task_id}"));

    let claimed = ok(&claim_tasks(&t, &leader, 5), 200);
    assert_eq!(claimed["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(claimed["tasks"][0]["status"], "planning");
    assert_eq!(claimed["tasks"][0]["claim_term"], leader.term);
    assert_eq!(ok(&claim_tasks(&t, &leader, 5), 200)["tasks"], json!([]), "claimed once");

    let planned = ok(
        &plan(
            &t,
            &leader,
            &task_id,
            json!([shell_step("echo hello > hello.txt", 1),
                   {"step_kind": "test", "worker_kind": "shell", "title": "acceptance 1", "command": "test -f hello.txt"}]),
        ),
        200,
    );
    assert_eq!(planned["status"], "running");
    assert_eq!(planned["steps"][0]["status"], "ready");
    assert_eq!(planned["steps"][1]["status"], "pending");
    err(&plan(&t, &leader, &task_id, json!([shell_step("again", 1)])), 409, "invalid_transition");

    let claimed = claim_steps(&t, "mini-main", "mini", 4);
    assert_eq!(claimed.len(), 1, "steps of a task run in order: only the first is ready");
    let step_id = claimed[0]["step"]["step_id"].as_str().unwrap().to_string();
    let run_id = claimed[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(claimed[0]["attempt"], 1);
    assert_eq!(claimed[0]["task"]["task_id"], task_id.as_str());
    assert_eq!(claimed[0]["task"]["assigned_host"], "mini", "the first claim assigns the task to its host");
    assert_eq!(claimed[0]["step"]["command"], "echo hello > hello.txt");

    let beat = ok(
        &t.post(
            &format!("/v1/steps/{step_id}/heartbeat"),
            SHARED,
            json!({"worker_id": "mini-main", "run_id": run_id, "heartbeat_ttl_sec": 20, "progress": {"output_bytes": 12}}),
        ),
        200,
    );
    assert_eq!((beat["status"].clone(), beat["canceled"].clone()), (json!("running"), json!(false)));
    assert_eq!(beat["heartbeat_deadline_at"], t.now() + 20);

    let logs_path = format!("/v1/steps/{step_id}/logs");
    let chunks = json!([{"seq": 1, "stream": "stderr", "text": "warming up\n"}, {"seq": 0, "stream": "stdout", "text": "hello\n"}]);
    let stored = ok(&t.post(&logs_path, SHARED, json!({"worker_id": "mini-main", "run_id": run_id, "chunks": chunks})), 200);
    assert_eq!((stored["accepted"].clone(), stored["duplicates"].clone()), (json!(2), json!(0)));
    let resent = json!([{"seq": 1, "stream": "stderr", "text": "warming up\n"}, {"seq": 2, "stream": "stdout", "text": "bye\n"}]);
    let stored = ok(&t.post(&logs_path, SHARED, json!({"worker_id": "mini-main", "run_id": run_id, "chunks": resent})), 200);
    assert_eq!((stored["accepted"].clone(), stored["duplicates"].clone()), (json!(1), json!(1)));

    let summary = json!({"outcome": "succeeded", "exit_code": 0}).to_string();
    let checkpoint = json!({"worker_id": "mini-main", "run_id": run_id, "seq": 1, "checkpoint_type": "summary", "format": "json",
        "content": summary, "size": summary.len(), "sha256": sha256_hex(&summary)});
    let stored = ok(&t.post(&format!("/v1/steps/{step_id}/checkpoint"), SHARED, checkpoint.clone()), 201);
    assert_eq!(stored["created"], true);
    assert_eq!(ok(&t.post(&format!("/v1/steps/{step_id}/checkpoint"), SHARED, checkpoint), 200)["created"], false);
    let other = "different";
    let conflicting = json!({"worker_id": "mini-main", "run_id": run_id, "seq": 1, "checkpoint_type": "log_tail", "format": "text",
        "content": other, "size": other.len(), "sha256": sha256_hex(other)});
    err(&t.post(&format!("/v1/steps/{step_id}/checkpoint"), SHARED, conflicting), 409, "conflict");

    let done = ok(&complete(&t, "mini-main", &step_id, &run_id), 200);
    assert_eq!(done["step"]["status"], "succeeded");
    assert_eq!(done["run"]["status"], "succeeded");
    assert_eq!(done["task_status"], "running", "the test step is next");
    let replay = ok(&complete(&t, "mini-main", &step_id, &run_id), 200);
    assert_eq!(replay["step"], done["step"], "a retried complete answers the same and counts once");

    let (test_step, test_run) = only_step(&t, "mini-main", "mini");
    assert_ne!(test_step, step_id);
    let done = ok(&complete(&t, "mini-main", &test_step, &test_run), 200);
    assert_eq!(done["task_status"], "succeeded");

    let detail = task(&t, &task_id);
    assert_eq!(detail["status"], "succeeded");
    assert!(detail["finished_at"].is_i64());
    assert_eq!(detail["steps"].as_array().unwrap().len(), 2);
    assert_eq!(detail["runs"].as_array().unwrap().len(), 2);
    assert_eq!(detail["runs"][0]["progress"], json!({"output_bytes": 12}));

    let logs = ok(&t.get(&format!("/v1/tasks/{task_id}/logs"), READONLY), 200);
    let texts: Vec<&str> = logs["chunks"].as_array().unwrap().iter().map(|chunk| chunk["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["hello\n", "warming up\n", "bye\n"], "in seq order, each once");
    let first_cursor = logs["chunks"][0]["cursor"].as_i64().unwrap();
    let after = ok(&t.get(&format!("/v1/tasks/{task_id}/logs?after={first_cursor}&stream=stdout"), READONLY), 200);
    assert_eq!(after["chunks"].as_array().unwrap().len(), 1);
    assert_eq!(after["chunks"][0]["text"], "bye\n");
    let by_run = ok(&t.get(&format!("/v1/tasks/{task_id}/logs?run_id={test_run}"), READONLY), 200);
    assert_eq!(by_run["chunks"], json!([]));

    let run = ok(&t.get(&format!("/v1/runs/{run_id}"), READONLY), 200);
    assert_eq!(run["run"]["status"], "succeeded");
    assert_eq!(run["checkpoints"][0]["checkpoint_type"], "summary");
    assert_eq!(run["checkpoints"][0]["content"], summary);
}

#[test]
fn a_failure_is_retried_then_fails_the_task() {
    let t = Target::new();
    let leader = leader(&t);
    let task_id = running_task(&t, &leader, json!([shell_step("flaky", 2), shell_step("never runs", 1)]));
    let (step_id, first_run) = only_step(&t, "mini-main", "mini");
    let settled = ok(&fail(&t, "mini-main", &step_id, &first_run, json!({})), 200);
    assert_eq!(settled["requeued"], true);
    assert_eq!(settled["step"]["status"], "ready");
    assert_eq!(settled["run"]["status"], "failed");
    assert_eq!(settled["run"]["exit_code"], 3);
    assert_eq!(settled["task_status"], "running");
    // The retried fail answers the same; the attempt is not counted twice.
    let replay = ok(&fail(&t, "mini-main", &step_id, &first_run, json!({})), 200);
    assert_eq!(replay["step"]["attempt"], 1);

    // One host per task: the retry is the assigned host's, never another's.
    assert!(claim_steps(&t, "mac-standby", "mac", 4).is_empty(), "a step of a task assigned to mini is not mac's");
    let (again, second_run) = only_step(&t, "mini-main", "mini");
    assert_eq!(again, step_id);
    assert_ne!(second_run, first_run);
    err(&complete(&t, "mini-main", &step_id, &first_run), 409, "conflict");
    let settled = ok(&fail(&t, "mini-main", &step_id, &second_run, json!({"error": "still broken"})), 200);
    assert_eq!(settled["requeued"], false);
    assert_eq!(settled["step"]["status"], "failed");
    assert_eq!(settled["task_status"], "failed");
    let detail = task(&t, &task_id);
    assert_eq!(detail["status"], "failed");
    assert!(detail["status_reason"].as_str().unwrap().contains("still broken"));
    assert_eq!(detail["steps"][1]["status"], "canceled", "later steps do not run");
    assert_eq!(detail["runs"].as_array().unwrap().len(), 2);
    assert!(claim_steps(&t, "mini-main", "mini", 4).is_empty());
}

#[test]
fn blocked_and_timed_out_attempts() {
    let t = Target::new();
    let leader = leader(&t);
    let blocked = running_task(&t, &leader, json!([shell_step("needs a key", 3)]));
    let (step_id, run_id) = only_step(&t, "mini-main", "mini");
    let settled = ok(&fail(&t, "mini-main", &step_id, &run_id, json!({"blocked": true, "error": "no API key"})), 200);
    assert_eq!((settled["step"]["status"].clone(), settled["task_status"].clone()), (json!("blocked"), json!("blocked")));
    assert_eq!(task(&t, &blocked)["status"], "blocked");

    let timed = running_task(&t, &leader, json!([shell_step("sleep 999", 1)]));
    let (step_id, run_id) = only_step(&t, "mini-main", "mini");
    let settled = ok(&fail(&t, "mini-main", &step_id, &run_id, json!({"timed_out": true, "error": "killed after 60 s"})), 200);
    assert_eq!(settled["step"]["status"], "timed_out");
    assert_eq!(settled["run"]["status"], "timed_out");
    assert_eq!(task(&t, &timed)["status"], "failed");
}

#[test]
fn cancel_tells_running_steps_to_stop() {
    let t = Target::new();
    let leader = leader(&t);
    let task_id = running_task(&t, &leader, json!([shell_step("sleep 100", 1), shell_step("after", 1)]));
    let (step_id, run_id) = only_step(&t, "mini-main", "mini");
    let canceled = ok(&t.post(&format!("/v1/tasks/{task_id}/cancel"), OPS_ADMIN, json!({"reason": "wrong repo"})), 200);
    assert_eq!(canceled["task"]["status"], "canceled");
    assert_eq!(canceled["runs_told_to_stop"], json!([run_id]));
    assert!(canceled["task"]["status_reason"].as_str().unwrap().contains("wrong repo"));
    let beat = ok(&t.post(&format!("/v1/steps/{step_id}/heartbeat"), SHARED, json!({"worker_id": "mini-main", "run_id": run_id})), 200);
    assert_eq!(beat["canceled"], true);
    // The worker stops the process and reports; the run is recorded as canceled.
    let settled = ok(&fail(&t, "mini-main", &step_id, &run_id, json!({"error": "terminated by cancel", "exit_code": 143})), 200);
    assert_eq!(settled["run"]["status"], "canceled");
    assert_eq!(settled["step"]["status"], "canceled");
    assert_eq!(settled["task_status"], "canceled");
    let detail = task(&t, &task_id);
    assert!(detail["steps"].as_array().unwrap().iter().all(|step| step["status"] == "canceled"));
    // Canceling again is a no-op; canceling a finished task is not a valid transition.
    assert_eq!(ok(&t.post(&format!("/v1/tasks/{task_id}/cancel"), BROWSER_ADMIN, json!({})), 200)["runs_told_to_stop"], json!([]));
    let done = running_task(&t, &leader, json!([shell_step("true", 1)]));
    let (step_id, run_id) = only_step(&t, "mini-main", "mini");
    ok(&complete(&t, "mini-main", &step_id, &run_id), 200);
    err(&t.post(&format!("/v1/tasks/{done}/cancel"), BROWSER_ADMIN, json!({})), 409, "invalid_transition");
    // A queued task is canceled before anyone claims it.
    let queued = create_task(&t, json!({}));
    ok(&t.post(&format!("/v1/tasks/{queued}/cancel"), BROWSER_ADMIN, json!({})), 200);
    assert_eq!(ok(&claim_tasks(&t, &leader, 5), 200)["tasks"], json!([]));
}

#[test]
fn pause_stops_new_work_and_drain_lets_started_tasks_finish() {
    let t = Target::new();
    let leader = leader(&t);
    let started = running_task(&t, &leader, json!([shell_step("one", 1), shell_step("two", 1)]));
    let waiting = create_task(&t, json!({}));

    let paused = ok(&t.post("/v1/system/pause", BROWSER_ADMIN, json!({"reason": "maintenance", "requested_by": "ada"})), 200);
    assert_eq!(
        (paused["accepted"].clone(), paused["status"].clone(), paused["mode"].clone()),
        (json!(true), json!("applied"), json!("paused"))
    );
    assert!(paused["summary"].as_str().unwrap().contains("running to paused"));
    let claimed = ok(&claim_tasks(&t, &leader, 5), 200);
    assert_eq!((claimed["tasks"].clone(), claimed["mode"].clone()), (json!([]), json!("paused")));
    assert!(claim_steps(&t, "mini-main", "mini", 4).is_empty(), "no step starts while paused");
    let beat = ok(&heartbeat(&t, SHARED, "mini-main", "mini", "primary"), 200);
    assert_eq!(beat["mode"], "paused", "agents learn the mode from their heartbeat");

    ok(&t.post("/v1/system/resume", OPS_ADMIN, json!({})), 200);
    let (step_id, run_id) = only_step(&t, "mini-main", "mini");

    ok(&t.post("/v1/system/drain", BROWSER_ADMIN, json!({"reason": "deploy"})), 200);
    assert_eq!(ok(&claim_tasks(&t, &leader, 5), 200)["tasks"], json!([]), "no new task starts while draining");
    let state = ok(&t.get("/v1/system/state", READONLY), 200);
    assert_eq!((state["mode"].clone(), state["drained"].clone()), (json!("draining"), json!(false)));
    ok(&complete(&t, "mini-main", &step_id, &run_id), 200);
    let (step_id, run_id) = only_step(&t, "mini-main", "mini");
    ok(&complete(&t, "mini-main", &step_id, &run_id), 200);
    assert_eq!(task(&t, &started)["status"], "succeeded");
    assert_eq!(task(&t, &waiting)["status"], "queued");

    let state = ok(&t.get("/v1/system/state", READONLY), 200);
    assert_eq!(state["drained"], true, "{state}");
    assert_eq!(state["task_counts"]["queued"], 1);
    assert_eq!(state["holder_id"], "mini-main");
    assert_eq!(state["term"], leader.term);
    assert_eq!(state["live_controllers"], json!(["mini-main"]));
    let changes = state["recent_mode_changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[0]["mode"], "draining");
    assert_eq!(changes[0]["reason"], "deploy");
    assert_eq!(changes[0]["requested_by"], "browser_admin");
    assert_eq!(changes[2]["mode"], "paused");
    assert_eq!(changes[2]["previous_mode"], "running");
    assert_eq!(changes[2]["requested_by"], "ada");
    assert_eq!(changes[2]["principal"], "browser_admin");
    assert!(changes[2]["request_id"].as_str().is_some());
}

#[test]
fn idempotency_key_makes_create_safe_to_retry() {
    let t = Target::new();
    let auth = format!("Bearer {BROWSER_ADMIN}");
    let create = |key: &str, goal: &str| {
        let body = json!({"repo": "/r", "task_type": "codex", "title": "t", "goal": goal}).to_string();
        t.call(
            "POST",
            "/v1/tasks",
            &[("authorization", &auth), ("content-type", "application/json"), ("idempotency-key", key)],
            body.as_bytes(),
        )
    };
    let first = create("key-1", "add a README");
    let first_id = ok(&first, 201)["task_id"].clone();
    let retry = create("key-1", "add a README");
    assert_eq!(ok(&retry, 201)["task_id"], first_id);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    let details = err(&create("key-1", "something else"), 409, "conflict");
    assert_eq!(details["field"], "Idempotency-Key");
    assert_ne!(ok(&create("key-2", "add a README"), 201)["task_id"], first_id);
    assert_eq!(ok(&t.get("/v1/tasks", READONLY), 200)["tasks"].as_array().unwrap().len(), 2);
}

#[test]
fn tasks_list_filters_and_pages() {
    let t = Target::new();
    let leader = leader(&t);
    let mut ids = Vec::new();
    for index in 0..7 {
        ids.push(create_task(&t, json!({"title": format!("task {index}")})));
        t.advance(1);
    }
    ok(&claim_tasks(&t, &leader, 2), 200);
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/tasks?limit=3&cursor={cursor}"),
            None => "/v1/tasks?limit=3".to_string(),
        };
        let page = ok(&t.get(&path, READONLY), 200);
        seen.extend(page["tasks"].as_array().unwrap().iter().map(|task| task["task_id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let planning = ok(&t.get("/v1/tasks?status=planning", READONLY), 200);
    let planning_ids: Vec<&str> = planning["tasks"].as_array().unwrap().iter().map(|task| task["task_id"].as_str().unwrap()).collect();
    assert_eq!(planning_ids, vec![ids[1].as_str(), ids[0].as_str()], "oldest claimed first at equal priority");
    assert_eq!(ok(&t.get("/v1/tasks?status=queued", READONLY), 200)["tasks"].as_array().unwrap().len(), 5);
}

#[test]
fn claims_follow_priority_then_age_and_honour_target_host() {
    let t = Target::new();
    let leader = leader(&t);
    let low = create_task(&t, json!({"priority": 10}));
    t.advance(1);
    let high = create_task(&t, json!({"priority": 90}));
    t.advance(1);
    let for_mac = create_task(&t, json!({"priority": 99, "constraints": {"target_host": "mac"}}));
    let claimed = ok(&claim_tasks(&t, &leader, 1), 200);
    assert_eq!(claimed["tasks"][0]["task_id"], high.as_str(), "the mac task waits: no live controller on mac");
    ok(&heartbeat(&t, SHARED, "mac-standby", "mac", "standby"), 200);
    let claimed = ok(&claim_tasks(&t, &leader, 1), 200);
    assert_eq!(claimed["tasks"][0]["task_id"], for_mac.as_str());
    let claimed = ok(&claim_tasks(&t, &leader, 1), 200);
    assert_eq!(claimed["tasks"][0]["task_id"], low.as_str());

    ok(&plan(&t, &leader, &for_mac, json!([shell_step("on mac", 1)])), 200);
    assert!(claim_steps(&t, "mini-main", "mini", 4).is_empty(), "mini may not run a step targeted at mac");
    let claimed = claim_steps(&t, "mac-standby", "mac", 4);
    assert_eq!(claimed[0]["step"]["target_host"], "mac");
    let _: Value = claimed[0].clone();
}

#[test]
fn controllers_are_listed_with_liveness() {
    let t = Target::new();
    ok(&heartbeat(&t, SHARED, "mini-main", "mini", "primary"), 200);
    ok(&heartbeat(&t, CONTROLLER, "mac-standby", "mac", "standby"), 200);
    t.advance(31);
    ok(&heartbeat(&t, SHARED, "mini-main", "mini", "primary"), 200);
    let list = ok(&t.get("/v1/controllers", BROWSER_ADMIN), 200);
    let controllers = list["controllers"].as_array().unwrap();
    assert_eq!(controllers.len(), 2);
    assert_eq!((controllers[0]["controller_id"].clone(), controllers[0]["alive"].clone()), (json!("mac-standby"), json!(false)));
    assert_eq!((controllers[1]["controller_id"].clone(), controllers[1]["alive"].clone()), (json!("mini-main"), json!(true)));
    assert_eq!(controllers[1]["first_seen_at"], START_TIME);
    assert_eq!(controllers[1]["last_heartbeat_at"], START_TIME + 31);
}
