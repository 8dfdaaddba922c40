//! SPEC §14: `agents.sync` — one batch per agent tick. A whole task through syncs alone, the
//! lease and the leader's writes fenced by the term renewed in the same batch, stale runs, the
//! 50-statement budget, validation that writes nothing, auth. The pace, held syncs and terms
//! through syncs are in `sync_pace.rs`.

use serde_json::{json, Value};

use crate::support::*;

const MAX_STATEMENTS: u64 = 50;

pub(crate) fn sync_body(node: &str, host: &str, term: Option<i64>, capacity: i64, extra: Value) -> Value {
    let mut lease = json!({"wish": "acquire", "ttl_sec": 30, "preferred": host == "mini"});
    if let Some(term) = term {
        lease["term"] = term.into();
    }
    let mut body = json!({
        "node_id": node, "host": host, "role": if host == "mini" { "primary" } else { "standby" }, "priority": 100,
        "status": "ok", "lease": lease, "capacity": capacity, "worker_kinds": ["shell"],
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

pub(crate) fn sync(t: &Target, node: &str, host: &str, term: Option<i64>, capacity: i64, extra: Value) -> Value {
    let data = ok(&t.post("/v1/agents/sync", SHARED, sync_body(node, host, term, capacity, extra)), 200);
    assert!(data["statements"].as_u64().unwrap() <= MAX_STATEMENTS, "{data}");
    data
}

pub(crate) fn verdicts(data: &Value, kind: &str) -> Vec<String> {
    data[kind].as_array().unwrap().iter().map(|item| item["verdict"].as_str().unwrap().to_string()).collect()
}

fn two_steps(max_attempts: i64) -> Value {
    json!({"planner_provider": "builtin", "planning_strategy": "test",
           "steps": [shell_step("make", max_attempts), {"step_kind": "test", "worker_kind": "shell", "title": "check", "command": "make check"}]})
}

fn run_of(granted: &Value) -> (String, String) {
    (granted["step"]["step_id"].as_str().unwrap().to_string(), granted["run_id"].as_str().unwrap().to_string())
}

/// `mini-main` leads, with a task of [`two_steps`] claimed, planned, and its first step
/// granted to it: the term, the task, the step and its run.
fn leading_with_a_granted_step(t: &Target, max_attempts: i64) -> (i64, String, String, String) {
    let term = sync(t, "mini-main", "mini", None, 0, json!({}))["lease"]["term"].as_i64().unwrap();
    let task_id = create_task(t, json!({}));
    sync(t, "mini-main", "mini", Some(term), 0, json!({}));
    let mut plan = two_steps(max_attempts);
    plan["task_id"] = task_id.clone().into();
    let planned = sync(t, "mini-main", "mini", Some(term), 1, json!({"plans": [plan]}));
    let (step0, run0) = run_of(&planned["granted"][0]);
    (term, task_id, step0, run0)
}

#[test]
fn a_task_runs_from_queue_to_succeeded_through_syncs_alone() {
    let t = Target::new();
    let first = sync(&t, "mini-main", "mini", None, 0, json!({}));
    assert_eq!(first["lease"]["is_leader"], true, "{first}");
    assert_eq!(first["lease"]["operation"], "acquire");
    assert_eq!(first["leader_writes"], "skipped", "no term sent: no leader write");
    assert!(first["next_sync_ms"].as_i64().unwrap() <= 1_000, "a new leader is asked back soon: {first}");
    let term = first["lease"]["term"].as_i64().unwrap();

    let task_id = create_task(&t, json!({}));
    let claimed = sync(&t, "mini-main", "mini", Some(term), 0, json!({}));
    assert_eq!(claimed["leader_writes"], "applied");
    assert_eq!(claimed["lease"]["operation"], "renew");
    assert_eq!(claimed["claimed_tasks"][0]["task_id"], task_id.as_str(), "{claimed}");
    assert_eq!(claimed["claimed_tasks"][0]["status"], "planning");
    assert!(claimed["next_sync_ms"].as_i64().unwrap() <= 1_000, "tasks to plan: soon");

    // The plan and the grant of its first step in one batch.
    let mut plan = two_steps(2);
    plan["task_id"] = task_id.clone().into();
    let planned = sync(&t, "mini-main", "mini", Some(term), 1, json!({"plans": [plan]}));
    assert_eq!(verdicts(&planned, "plans"), ["accepted"], "{planned}");
    assert_eq!(planned["granted"].as_array().unwrap().len(), 1, "{planned}");
    let (step0, run0) = run_of(&planned["granted"][0]);
    assert_eq!(step0, format!("{task_id}.s0"));
    assert_eq!(task(&t, &task_id)["assigned_host"], "mini");

    let beat = sync(&t, "mini-main", "mini", Some(term), 0, json!({"runs": [{"step_id": step0, "run_id": run0, "progress": {"pct": 10}}]}));
    assert_eq!(verdicts(&beat, "runs"), ["accepted"]);
    assert_eq!(beat["runs"][0]["step_status"], "running");
    assert_eq!(beat["runs"][0]["canceled"], Value::Null, "not canceled: the flag is left out");

    let chunks = json!([{"seq": 1, "stream": "stdout", "text": "building\n"}, {"seq": 2, "stream": "stderr", "text": "warn\n"}]);
    let logs = json!({"logs": [{"step_id": step0, "run_id": run0, "chunks": chunks}], "more_output": true});
    let shipped = sync(&t, "mini-main", "mini", Some(term), 0, logs.clone());
    assert_eq!((shipped["logs"][0]["accepted"].as_i64(), shipped["logs"][0]["duplicates"].as_i64()), (Some(2), Some(0)));
    assert_eq!(shipped["next_sync_ms"], 3_000, "output waiting: the output pace");
    let again = sync(&t, "mini-main", "mini", Some(term), 0, logs);
    assert_eq!(verdicts(&again, "logs"), ["accepted"]);
    assert_eq!((again["logs"][0]["accepted"].as_i64(), again["logs"][0]["duplicates"].as_i64()), (Some(0), Some(2)));
    let stored = ok(&t.get(&format!("/v1/tasks/{task_id}/logs"), READONLY), 200);
    assert_eq!(stored["chunks"].as_array().unwrap().len(), 2, "a resent batch stores nothing twice");

    // The completion readies the next step, granted in the same batch.
    let done = sync(
        &t,
        "mini-main",
        "mini",
        Some(term),
        1,
        json!({"completions": [{"step_id": step0, "run_id": run0, "summary": "built", "exit_code": 0}]}),
    );
    assert_eq!(verdicts(&done, "completions"), ["accepted"], "{done}");
    let (step1, run1) = run_of(&done["granted"][0]);
    assert_eq!(step1, format!("{task_id}.s1"));

    // A failure of the last attempt (the test step has one) ends the task.
    let failed = sync(
        &t,
        "mini-main",
        "mini",
        Some(term),
        1,
        json!({"failures": [{"step_id": step1, "run_id": run1, "error": "exit status 2", "exit_code": 2}]}),
    );
    assert_eq!(verdicts(&failed, "failures"), ["accepted"], "{failed}");
    assert_eq!(failed["failures"][0]["step_status"], "failed", "the test step has one attempt: {failed}");
    assert_eq!(failed["granted"], json!([]));
    let read = task(&t, &task_id);
    assert_eq!(read["status"], "failed");
    assert!(read["status_reason"].as_str().unwrap().contains("exit status 2"), "{read}");

    // The same failure again answers the same and changes nothing.
    let repeat =
        sync(&t, "mini-main", "mini", Some(term), 0, json!({"failures": [{"step_id": step1, "run_id": run1, "error": "exit status 2"}]}));
    assert_eq!(verdicts(&repeat, "failures"), ["accepted"]);
    assert_eq!(task(&t, &task_id)["status"], "failed");
}

#[test]
fn a_failed_attempt_with_attempts_left_is_granted_again_in_the_same_batch() {
    let t = Target::new();
    let (term, task_id, step0, run0) = leading_with_a_granted_step(&t, 3);
    let failed = sync(&t, "mini-main", "mini", Some(term), 1, json!({"failures": [{"step_id": step0, "run_id": run0, "error": "flaky"}]}));
    assert_eq!(failed["failures"][0]["step_status"], "ready", "{failed}");
    let (again, run_again) = run_of(&failed["granted"][0]);
    assert_eq!(again, step0);
    assert_eq!(run_again, format!("{step0}.a2"));
    assert_eq!(failed["granted"][0]["attempt"], 2);
    // The first attempt's late completion is stale and counts for nothing.
    let late = sync(
        &t,
        "mini-main",
        "mini",
        Some(term),
        0,
        json!({"completions": [{"step_id": step0, "run_id": run0, "summary": "late", "exit_code": 0}]}),
    );
    assert_eq!(verdicts(&late, "completions"), ["stale"], "{late}");
    let read = task(&t, &task_id);
    assert_eq!(read["steps"][0]["status"], "claimed");
    assert_eq!(read["steps"][0]["attempt"], 2);
}

#[test]
fn leader_writes_are_fenced_by_the_term_renewed_in_the_same_batch() {
    let t = Target::new();
    let mini = sync(&t, "mini-main", "mini", None, 0, json!({}));
    let term = mini["lease"]["term"].as_i64().unwrap();
    let task_id = create_task(&t, json!({}));

    // mac cannot lead, and cannot act in mini's term either.
    let mac = sync(&t, "mac-standby", "mac", Some(term), 0, json!({}));
    assert_eq!(mac["lease"]["is_leader"], false);
    assert_eq!(mac["lease"]["holder_id"], "mini-main");
    assert_eq!(mac["leader_writes"], "fenced");
    assert_eq!(mac["claimed_tasks"], json!([]));
    assert_eq!(task(&t, &task_id)["status"], "queued", "a fenced sync claims nothing");

    // mini claims; then its lease runs out and mac takes over in term + 1.
    let claimed = sync(&t, "mini-main", "mini", Some(term), 0, json!({}));
    assert_eq!(claimed["claimed_tasks"][0]["task_id"], task_id.as_str());
    t.advance(31);
    let took = sync(&t, "mac-standby", "mac", None, 0, json!({}));
    assert_eq!(took["lease"]["is_leader"], true, "{took}");
    assert_eq!(took["lease"]["term"], term + 1);

    // mini's plan in its old term is refused by the fence and writes nothing.
    let mut plan = two_steps(1);
    plan["task_id"] = task_id.clone().into();
    let stale = sync(&t, "mini-main", "mini", Some(term), 1, json!({"plans": [plan.clone()]}));
    assert_eq!(stale["lease"]["is_leader"], false);
    assert_eq!(stale["leader_writes"], "fenced");
    assert_eq!(verdicts(&stale, "plans"), ["refused"]);
    assert_eq!(stale["plans"][0]["code"], "stale_term");
    assert_eq!(stale["granted"], json!([]));
    assert_eq!(task(&t, &task_id)["steps"], json!([]), "no step was written");

    // That sync was also the primary's wish for the lease back: mac's next renewal hands it
    // over, and once the lease mac was granted has run out (no instant with two nodes that
    // believe they lead), mini acquires in a new term.
    let handed = sync(&t, "mac-standby", "mac", Some(term + 1), 0, json!({}));
    assert_eq!(handed["lease"]["operation"], "hand_over", "{handed}");
    assert_eq!(handed["lease"]["is_leader"], false);
    assert_eq!(handed["leader_writes"], "fenced");
    let expires_at = handed["lease"]["lease_expires_at"].as_i64().unwrap();
    let waiting = sync(&t, "mini-main", "mini", None, 0, json!({}));
    assert_eq!(waiting["lease"]["is_leader"], false, "{waiting}");
    let pace = waiting["next_sync_ms"].as_i64().unwrap();
    let idle_ms = 10_000;
    assert_eq!(pace, ((expires_at - t.now()) * 1000 + 500).min(idle_ms), "the primary comes back at the expiry, or idle: {waiting}");
    t.advance(expires_at - t.now());
    let back = sync(&t, "mini-main", "mini", None, 0, json!({}));
    assert_eq!(back["lease"]["is_leader"], true);
    let new_term = back["lease"]["term"].as_i64().unwrap();
    assert_eq!(new_term, term + 2);

    // mini's reaping in the new term returns its old claim to the queue, claims it again in the
    // same batch, and the plan in the new term is accepted and granted.
    let reaped = sync(&t, "mini-main", "mini", Some(new_term), 0, json!({}));
    assert_eq!(reaped["leader_writes"], "applied");
    assert_eq!(reaped["reaped"]["requeued_tasks"], json!([task_id.clone()]), "{reaped}");
    assert_eq!(reaped["claimed_tasks"][0]["task_id"], task_id.as_str(), "requeued and claimed in one batch: {reaped}");
    assert_eq!(reaped["claimed_tasks"][0]["claim_term"], new_term);
    let planned = sync(&t, "mini-main", "mini", Some(new_term), 1, json!({"plans": [plan]}));
    assert_eq!(verdicts(&planned, "plans"), ["accepted"]);
    assert_eq!(planned["granted"][0]["task"]["task_id"], task_id.as_str());
}

#[test]
fn a_reaped_run_is_stale_and_its_late_reports_count_for_nothing() {
    let t = Target::new();
    let term = sync(&t, "mini-main", "mini", None, 0, json!({}))["lease"]["term"].as_i64().unwrap();
    sync(&t, "mac-standby", "mac", None, 0, json!({}));
    let task_id = create_task(&t, json!({}));
    sync(&t, "mini-main", "mini", Some(term), 0, json!({}));
    let mut plan = two_steps(2);
    plan["task_id"] = task_id.clone().into();
    // mac's runner holds the step; then mac goes quiet past the heartbeat deadline.
    sync(&t, "mini-main", "mini", Some(term), 0, json!({"plans": [plan]}));
    let granted = sync(&t, "mac-standby", "mac", None, 1, json!({}));
    let (step0, run0) = run_of(&granted["granted"][0]);
    // mini keeps leading and reaps the lost attempt; mac stays registered (its host is alive).
    for _ in 0..7 {
        t.advance(10);
        sync(&t, "mini-main", "mini", Some(term), 0, json!({}));
        sync(&t, "mac-standby", "mac", None, 0, json!({}));
    }
    let read = task(&t, &task_id);
    assert_eq!(read["runs"][0]["status"], "lost", "{read}");
    assert_eq!(read["steps"][0]["status"], "ready", "requeued for another attempt");
    let late = sync(
        &t,
        "mac-standby",
        "mac",
        None,
        0,
        json!({"runs": [{"step_id": step0, "run_id": run0}],
               "completions": [{"step_id": step0, "run_id": run0, "summary": "late", "exit_code": 0}],
               "logs": [{"step_id": step0, "run_id": run0, "chunks": [{"seq": 1, "stream": "stdout", "text": "late\n"}]}]}),
    );
    assert_eq!(verdicts(&late, "runs"), ["stale"], "{late}");
    assert_eq!(verdicts(&late, "completions"), ["stale"]);
    assert_eq!(verdicts(&late, "logs"), ["accepted"], "a lost run's output is still kept: it is this node's run");
    let read = task(&t, &task_id);
    assert_eq!(read["steps"][0]["status"], "ready", "the late completion counted for nothing: {read}");
    assert_eq!(read["runs"][0]["status"], "lost");
}

#[test]
fn a_sync_never_exceeds_fifty_statements_and_defers_what_does_not_fit() {
    let t = Target::new();
    let term = sync(&t, "mini-main", "mini", None, 0, json!({}))["lease"]["term"].as_i64().unwrap();
    let logs: Vec<Value> = (0..40)
        .map(|index| json!({"step_id": format!("s{index}"), "run_id": format!("s{index}.a1"), "chunks": [{"seq": 1, "stream": "stdout", "text": "x"}]}))
        .collect();
    let data = sync(&t, "mini-main", "mini", Some(term), 2, json!({"logs": logs}));
    // Each log item takes two statements: filled to within one of the limit, never beyond.
    let statements = data["statements"].as_u64().unwrap();
    assert!((MAX_STATEMENTS - 1..=MAX_STATEMENTS).contains(&statements), "filled to the limit, not beyond: {statements}");
    let verdicts = verdicts(&data, "logs");
    assert_eq!(verdicts.len(), 40, "a verdict for every item");
    let placed = verdicts.iter().take_while(|verdict| *verdict == "stale").count();
    assert!(placed > 0 && placed < 40, "{verdicts:?}");
    assert!(verdicts[placed..].iter().all(|verdict| verdict == "deferred"), "the rest deferred, in order: {verdicts:?}");
    assert_eq!(data["leader_writes"], "applied", "room was kept for the leader's writes");
    assert!(data["next_sync_ms"].as_i64().unwrap() <= 1_000, "deferred items: soon");
}

#[test]
fn an_outcome_goes_only_with_all_its_runs_checkpoints() {
    let t = Target::new();
    let (term, task_id, step0, run0) = leading_with_a_granted_step(&t, 1);
    let checkpoints: Vec<Value> = (1..=30)
        .map(|seq| {
            let content = format!("checkpoint {seq}");
            json!({"step_id": step0, "run_id": run0, "seq": seq, "checkpoint_type": "summary", "format": "text",
                   "content": content, "size": content.len(), "sha256": sha256_hex(&content)})
        })
        .collect();
    let completion = json!([{"step_id": step0, "run_id": run0, "summary": "built", "exit_code": 0}]);
    let full = sync(&t, "mini-main", "mini", Some(term), 0, json!({"checkpoints": checkpoints, "completions": completion}));
    let placed = verdicts(&full, "checkpoints").iter().filter(|verdict| *verdict == "accepted").count();
    assert!(placed > 0 && placed < 30, "the batch had room for some: {placed}");
    assert_eq!(verdicts(&full, "completions"), ["deferred"], "not without all its checkpoints: {full}");
    assert_eq!(task(&t, &task_id)["steps"][0]["status"], "claimed", "not settled");
    // As the runner does: what was deferred goes again, with the outcome, until all is in.
    let mut sent = placed;
    for _ in 0..5 {
        let rest = sync(&t, "mini-main", "mini", Some(term), 0, json!({"checkpoints": checkpoints[sent..], "completions": completion}));
        let accepted = verdicts(&rest, "checkpoints").iter().filter(|verdict| *verdict == "accepted").count();
        sent += accepted;
        let outcome = verdicts(&rest, "completions");
        if sent < 30 {
            assert_eq!(outcome, ["deferred"], "{sent} of 30 checkpoints in: {rest}");
        }
        if outcome == ["accepted"] {
            break;
        }
    }
    assert_eq!(task(&t, &task_id)["steps"][0]["status"], "succeeded");
}

#[test]
fn a_bad_item_refuses_the_whole_sync_naming_the_field_and_writes_nothing() {
    let t = Target::new();
    let (term, task_id, step0, run0) = leading_with_a_granted_step(&t, 1);
    let good = json!({"step_id": step0, "run_id": run0, "summary": "ok", "exit_code": 0});
    let bad = json!({"step_id": step0, "run_id": run0, "exit_code": 1});
    let post = |extra: Value| t.post("/v1/agents/sync", SHARED, sync_body("mini-main", "mini", Some(term), 0, extra));
    invalid(
        &post(json!({"completions": [good.clone()], "failures": [{"step_id": step0, "run_id": run0, "error": "x"}, bad]})),
        "failures[1].error",
    );
    assert_eq!(task(&t, &task_id)["steps"][0]["status"], "claimed", "nothing of the refused sync was written");
    invalid(
        &post(json!({"logs": [{"step_id": step0, "run_id": run0, "chunks": [{"seq": -1, "stream": "stdout", "text": "x"}]}]})),
        "logs[0].chunks[0].seq",
    );
    invalid(&post(json!({"capacity": 33})), "capacity");
    let mut body = sync_body("mini-main", "mini", Some(term), 0, json!({}));
    body["lease"]["wish"] = "grab".into();
    invalid(&t.post("/v1/agents/sync", SHARED, body), "lease.wish");
    let mut body = sync_body("mini-main", "mini", None, 0, json!({"plans": [two_steps(1)]}));
    body["plans"][0]["task_id"] = task_id.clone().into();
    invalid(&t.post("/v1/agents/sync", SHARED, body), "plans");
    let mut body = sync_body("mini-main", "mini", Some(term), 0, json!({}));
    body.as_object_mut().unwrap().remove("lease");
    invalid(&t.post("/v1/agents/sync", SHARED, body), "lease");
    assert_eq!(task(&t, &task_id)["steps"][0]["status"], "claimed");
    let done = sync(&t, "mini-main", "mini", Some(term), 0, json!({"completions": [good]}));
    assert_eq!(verdicts(&done, "completions"), ["accepted"]);
}

#[test]
fn only_a_node_may_sync_and_a_node_token_only_for_itself() {
    let t = Target::new();
    let body = sync_body("mini-main", "mini", None, 0, json!({}));
    err(&t.post("/v1/agents/sync", CONTROLLER, body.clone()), 403, "forbidden");
    err(&t.post("/v1/agents/sync", WORKER, body.clone()), 403, "forbidden");
    err(&t.post("/v1/agents/sync", BROWSER_ADMIN, body.clone()), 403, "forbidden");
    let mini = node_token("mini-main", "mini");
    let mut unnamed = body.clone();
    unnamed.as_object_mut().unwrap().remove("node_id");
    let data = ok(&t.post("/v1/agents/sync", &mini, unnamed), 200);
    assert_eq!(data["node_id"], "mini-main", "the node token names the node");
    let details = err(&t.post("/v1/agents/sync", &mini, sync_body("mini-main", "mac", None, 0, json!({}))), 403, "forbidden");
    assert_eq!(details["field"], "host");
    let details = err(&t.post("/v1/agents/sync", &mini, sync_body("mac-standby", "mini", None, 0, json!({}))), 403, "forbidden");
    assert_eq!(details["field"], "node_id");
}
