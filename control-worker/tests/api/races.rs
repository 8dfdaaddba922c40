//! Concurrent step claimers over separate connections, and what happens to a lost attempt.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::client::request;
use crate::support::*;

#[test]
fn concurrent_claimers_claim_each_step_exactly_once_per_attempt() {
    let t = Target::new();
    let leader = leader(&t);
    const STEPS: usize = 40;
    for _ in 0..STEPS {
        create_task(&t, json!({}));
    }
    let claimed_tasks = ok(&claim_tasks(&t, &leader, 20), 200)["tasks"].as_array().unwrap().len()
        + ok(&claim_tasks(&t, &leader, 20), 200)["tasks"].as_array().unwrap().len();
    assert_eq!(claimed_tasks, STEPS);
    for task in ok(&t.get("/v1/tasks?status=planning&limit=200", READONLY), 200)["tasks"].as_array().unwrap() {
        ok(&plan(&t, &leader, task["task_id"].as_str().unwrap(), json!([shell_step("true", 2)])), 200);
    }
    let siblings = t.siblings(3);
    let bases: Vec<String> = std::iter::once(t.base.clone()).chain(siblings.bases.iter().cloned()).collect();
    let claims: Arc<Mutex<Vec<(String, i64, String)>>> = Arc::default();
    let threads: Vec<_> = (0..8)
        .map(|index| {
            let base = bases[index % bases.len()].clone();
            let claims = claims.clone();
            std::thread::spawn(move || {
                let auth = format!("Bearer {SHARED}");
                let body = json!({"worker_id": format!("worker-{index}"), "host": "mini", "capacity": 3}).to_string();
                for _ in 0..40 {
                    let response = request(
                        &base,
                        "POST",
                        "/v1/steps/claim",
                        &[("authorization", &auth), ("content-type", "application/json")],
                        body.as_bytes(),
                    );
                    let data = ok(&response, 200);
                    let steps = data["steps"].as_array().unwrap();
                    let mut claims = claims.lock().unwrap();
                    for claimed in steps {
                        claims.push((
                            claimed["step"]["step_id"].as_str().unwrap().to_string(),
                            claimed["attempt"].as_i64().unwrap(),
                            format!("worker-{index}"),
                        ));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let claims = claims.lock().unwrap();
    let unique: HashSet<(&String, i64)> = claims.iter().map(|(step, attempt, _)| (step, *attempt)).collect();
    assert_eq!(unique.len(), claims.len(), "a step was claimed twice in one attempt");
    assert_eq!(claims.len(), STEPS, "every ready step was claimed");
    let runs_per_step: HashSet<&String> = claims.iter().map(|(step, _, _)| step).collect();
    assert_eq!(runs_per_step.len(), STEPS);
}

#[test]
fn a_reaped_attempt_cannot_complete_late() {
    let t = Target::new();
    let leader = leader(&t);
    let task_id = running_task(&t, &leader, json!([shell_step("long", 2)]));
    let claimed = ok(&t.post("/v1/steps/claim", SHARED, json!({"worker_id": "mini-main", "host": "mini", "heartbeat_ttl_sec": 15})), 200);
    let step_id = claimed["steps"][0]["step"]["step_id"].as_str().unwrap().to_string();
    let lost_run = claimed["steps"][0]["run_id"].as_str().unwrap().to_string();
    let reap = || t.post("/v1/steps/reap", SHARED, json!({"controller_id": leader.id, "term": leader.term}));

    t.advance(14);
    assert_eq!(ok(&reap(), 200)["reaped"], json!([]), "the deadline has not passed");
    t.advance(1);
    let reaped = ok(&reap(), 200);
    assert_eq!(reaped["reaped"], json!([{"step_id": step_id, "run_id": lost_run, "requeued": true, "step_status": "ready"}]));
    assert_eq!(ok(&reap(), 200)["reaped"], json!([]), "reaped once");

    let (_, new_run) = {
        assert!(claim_steps(&t, "mac-standby", "mac", 1).is_empty(), "the task is mini's");
        let claimed = claim_steps(&t, "mini-main", "mini", 1);
        (claimed[0]["step"]["step_id"].as_str().unwrap().to_string(), claimed[0]["run_id"].as_str().unwrap().to_string())
    };
    let before = task(&t, &task_id);
    let details = err(&complete(&t, "mini-main", &step_id, &lost_run), 409, "conflict");
    assert_eq!(details["run_status"], "lost");
    err(&t.post(&format!("/v1/steps/{step_id}/heartbeat"), SHARED, json!({"worker_id": "mini-main", "run_id": lost_run})), 409, "conflict");
    err(&fail(&t, "mini-main", &step_id, &lost_run, json!({})), 409, "conflict");
    assert_eq!(task(&t, &task_id), before, "the late answers changed nothing");

    ok(&complete(&t, "mini-main", &step_id, &new_run), 200);
    let detail = task(&t, &task_id);
    assert_eq!(detail["status"], "succeeded");
    let statuses: Vec<&str> = detail["runs"].as_array().unwrap().iter().map(|run| run["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["lost", "succeeded"]);

    // The last attempt lost fails the task.
    let task_id = running_task(&t, &leader, json!([shell_step("once", 1)]));
    claim_steps(&t, "mini-main", "mini", 1);
    // The leader renews while time passes, so it still leads in its term when it reaps; its
    // host heartbeats, so the host is up and only the step's own heartbeat is missing.
    for _ in 0..4 {
        ok(&heartbeat(&t, SHARED, "mini-main", "mini", "primary"), 200);
        assert_eq!(acquire(&t, &leader.id, &leader.host, 30, true)["term"], leader.term);
        t.advance(16);
    }
    acquire(&t, &leader.id, &leader.host, 30, true);
    let reaped = ok(&reap(), 200);
    assert_eq!(reaped["reaped"][0]["step_status"], "failed");
    assert_eq!(task(&t, &task_id)["status"], "failed");
}

#[test]
fn a_canceled_steps_silent_run_is_closed_by_the_reaper() {
    let t = Target::new();
    let leader = leader(&t);
    let task_id = running_task(&t, &leader, json!([shell_step("sleep 100", 1)]));
    claim_steps(&t, "mini-main", "mini", 1);
    ok(&t.post(&format!("/v1/tasks/{task_id}/cancel"), BROWSER_ADMIN, json!({})), 200);
    for _ in 0..4 {
        acquire(&t, &leader.id, &leader.host, 30, true);
        t.advance(16);
    }
    acquire(&t, &leader.id, &leader.host, 30, true);
    ok(&t.post("/v1/steps/reap", SHARED, json!({"controller_id": leader.id, "term": leader.term})), 200);
    let detail = task(&t, &task_id);
    assert_eq!(detail["runs"][0]["status"], "canceled");
    assert!(detail["runs"][0]["error"].as_str().unwrap().contains("did not report"));
}
