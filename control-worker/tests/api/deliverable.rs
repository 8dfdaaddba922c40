//! SPEC §11 through the API alone: `repo` and `deliver` validation, one host per task, the
//! base commit recorded once, the task's `result`, the seed's read shape, and a lost host.

use serde_json::{json, Value};

use crate::support::*;

const BASE: &str = "1111111111111111111111111111111111111111";
const HEAD: &str = "2222222222222222222222222222222222222222";

fn result_body(head: &str) -> Value {
    json!({"base_commit": BASE, "head_commit": head, "branch": "baa/x", "commits": 1, "files_changed": ["fix.py"],
           "insertions": 3, "deletions": 1, "host": "mini", "repo": "/srv/repo"})
}

#[test]
fn repo_is_an_absolute_path_or_a_git_url_and_deliver_a_known_mode() {
    let t = Target::new();
    let body = |repo: &str| json!({"repo": repo, "task_type": "shell", "title": "t", "goal": "true"});
    for refused in ["relative/path", "repo", "http://example.test/app.git", "~/src/app"] {
        let details = invalid(&t.post("/v1/tasks", BROWSER_ADMIN, body(refused)), "repo");
        assert!(details.is_object());
    }
    for accepted in
        ["/srv/app", "https://example.test/me/app.git", "ssh://git@example.test/app", "file:///srv/app.git", "git@example.test:me/app.git"]
    {
        ok(&t.post("/v1/tasks", BROWSER_ADMIN, body(accepted)), 201);
    }
    let with =
        |constraints: Value| json!({"repo": "/srv/app", "task_type": "shell", "title": "t", "goal": "true", "constraints": constraints});
    invalid(&t.post("/v1/tasks", BROWSER_ADMIN, with(json!({"deliver": "email"}))), "constraints.deliver");
    invalid(&t.post("/v1/tasks", BROWSER_ADMIN, with(json!({"remote": 7}))), "constraints.remote");
    let created = ok(&t.post("/v1/tasks", BROWSER_ADMIN, with(json!({"deliver": "pr", "remote": "upstream"}))), 201);
    assert_eq!(created["task"]["constraints"]["deliver"], "pr");
}

#[test]
fn the_read_shape_one_host_per_task_and_the_result() {
    let t = Target::new();
    let leader = leader(&t);
    let task_id = running_task(
        &t,
        &leader,
        json!([shell_step("fix", 2), {"step_kind": "test", "worker_kind": "shell", "title": "acceptance 1", "command": "pytest"}]),
    );

    // The seed's read shape: the task's own fields at the top, steps, runs and history beside.
    let detail = task(&t, &task_id);
    assert_eq!(detail["task_id"], task_id.as_str());
    assert_eq!(detail["title"], "a task");
    assert_eq!(detail["status"], "running");
    assert_eq!(detail["current_step_index"], 0);
    assert_eq!(detail["steps"].as_array().unwrap().len(), 2);
    assert_eq!(detail["runs"], json!([]));
    assert_eq!(detail["assigned_host"], Value::Null);
    assert_eq!(detail["result"], Value::Null, "no step has run");
    assert!(detail.get("task").is_none(), "no nested copy of the task");

    // The first claim assigns the task to its host; another host never gets its steps.
    let claimed = claim_steps(&t, "mini-main", "mini", 1);
    let (step_id, run_id) =
        (claimed[0]["step"]["step_id"].as_str().unwrap().to_string(), claimed[0]["run_id"].as_str().unwrap().to_string());
    let heartbeat = |body: Value| t.post(&format!("/v1/steps/{step_id}/heartbeat"), SHARED, body);
    invalid(&heartbeat(json!({"worker_id": "mini-main", "run_id": run_id, "base_commit": "HEAD"})), "base_commit");
    ok(&heartbeat(json!({"worker_id": "mini-main", "run_id": run_id, "base_commit": BASE})), 200);
    ok(&heartbeat(json!({"worker_id": "mini-main", "run_id": run_id, "base_commit": HEAD})), 200);
    let detail = task(&t, &task_id);
    assert_eq!(detail["assigned_host"], "mini");
    assert_eq!(detail["base_commit"], BASE, "resolved once: the first answer stands");
    assert_eq!(detail["history"][0]["kind"], "assigned");
    assert!(detail["history"][0]["message"].as_str().unwrap().contains("mini"));

    // A failed attempt reports the branch as it stands; the retry is mini's alone.
    let failed = json!({"task_result": result_body(BASE)});
    ok(&fail(&t, "mini-main", &step_id, &run_id, failed), 200);
    assert!(claim_steps(&t, "mac-standby", "mac", 4).is_empty());
    let claimed = claim_steps(&t, "mini-main", "mini", 1);
    let run_id = claimed[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(claimed[0]["task"]["base_commit"], BASE, "the retry builds on the recorded base");

    // A bad result is refused whole, naming the field; a good one becomes the task's result.
    let complete_with = |result: Value| {
        t.post(
            &format!("/v1/steps/{step_id}/complete"),
            SHARED,
            json!({"worker_id": "mini-main", "run_id": run_id, "summary": "done", "exit_code": 0, "task_result": result}),
        )
    };
    invalid(&complete_with(json!({"head_commit": "abc"})), "task_result.head_commit");
    invalid(&complete_with(json!("a string")), "task_result");
    invalid(&complete_with(json!({"commits": "many"})), "task_result");
    assert_eq!(task(&t, &task_id)["steps"][0]["status"], "claimed", "nothing half-written");
    assert_eq!(task(&t, &task_id)["result"]["head_commit"], BASE, "the failed attempt's result stands");
    ok(&complete_with(result_body(HEAD)), 200);
    let detail = task(&t, &task_id);
    assert_eq!(detail["current_step_index"], 1);
    assert_eq!(detail["result"]["head_commit"], HEAD);
    assert_eq!(detail["result"]["base_commit"], BASE);
    assert_eq!(detail["result"]["files_changed"], json!(["fix.py"]));
    assert_eq!((detail["result"]["insertions"].clone(), detail["result"]["deletions"].clone()), (json!(3), json!(1)));
    assert_eq!(detail["result"]["host"], "mini");
    assert!(detail["result"].get("pr_url").is_none());

    // The test step, claimed by mini as the task's host; the task's result lists it too.
    assert!(claim_steps(&t, "mac-standby", "mac", 4).is_empty());
    let claimed = claim_steps(&t, "mini-main", "mini", 1);
    let (test_step, test_run) =
        (claimed[0]["step"]["step_id"].as_str().unwrap().to_string(), claimed[0]["run_id"].as_str().unwrap().to_string());
    let mut delivered = result_body(HEAD);
    delivered["pushed_to"] = json!("file:///srv/remote.git");
    delivered["pr_url"] = json!("https://example.test/pr/1");
    ok(
        &t.post(
            &format!("/v1/steps/{test_step}/complete"),
            SHARED,
            json!({"worker_id": "mini-main", "run_id": test_run, "summary": "ok", "exit_code": 0, "task_result": delivered}),
        ),
        200,
    );
    let detail = task(&t, &task_id);
    assert_eq!(detail["status"], "succeeded");
    assert_eq!(detail["current_step_index"], 1, "the last step that ran");
    assert_eq!(detail["result"]["pr_url"], "https://example.test/pr/1");
    let listed = ok(&t.get("/v1/tasks", READONLY), 200);
    assert_eq!(listed["tasks"][0]["result"]["head_commit"], HEAD, "tasks.list shows the result too");
}

#[test]
fn target_host_assigns_the_task_before_any_claim() {
    let t = Target::new();
    let leader = leader(&t);
    ok(&heartbeat(&t, SHARED, "mac-standby", "mac", "standby"), 200);
    let task_id = create_task(&t, json!({"constraints": {"target_host": "mac"}}));
    assert_eq!(task(&t, &task_id)["assigned_host"], "mac");
    ok(&claim_tasks(&t, &leader, 1), 200);
    ok(&plan(&t, &leader, &task_id, json!([shell_step("true", 1)])), 200);
    assert!(claim_steps(&t, "mini-main", "mini", 4).is_empty());
    assert_eq!(claim_steps(&t, "mac-standby", "mac", 4).len(), 1);
}

/// A task whose host has been silent for `host_lost_after_sec` starts over elsewhere, with
/// the reason in its history; a late write from the lost host is refused; a task pinned by
/// `target_host` waits instead, saying why.
#[test]
fn a_lost_host_hands_its_task_to_another_host() {
    let t = Target::new();
    let mini = leader(&t);
    ok(&heartbeat(&t, SHARED, "mac-standby", "mac", "standby"), 200);
    let task_id = running_task(&t, &mini, json!([shell_step("fix", 1), shell_step("test", 1)]));
    let pinned = create_task(&t, json!({"constraints": {"target_host": "mini"}}));
    let claimed_pinned = ok(&claim_tasks(&t, &mini, 1), 200);
    assert_eq!(claimed_pinned["tasks"][0]["task_id"], pinned.as_str());
    ok(&plan(&t, &mini, &pinned, json!([shell_step("pinned", 1)])), 200);
    let claimed = claim_steps(&t, "mini-main", "mini", 2);
    assert_eq!(claimed.len(), 2);
    let of = |task: &str| claimed.iter().find(|claim| claim["task"]["task_id"] == task).unwrap().clone();
    let (step_id, lost_run) =
        (of(&task_id)["step"]["step_id"].as_str().unwrap().to_string(), of(&task_id)["run_id"].as_str().unwrap().to_string());
    ok(
        &t.post(
            &format!("/v1/steps/{step_id}/heartbeat"),
            SHARED,
            json!({"worker_id": "mini-main", "run_id": lost_run, "base_commit": BASE}),
        ),
        200,
    );

    // mini goes silent; mac takes the lease and keeps heartbeating while it leads.
    let mut mac_term = 0;
    let mut reaped = json!({});
    for _ in 0..21 {
        t.advance(30);
        ok(&heartbeat(&t, SHARED, "mac-standby", "mac", "standby"), 200);
        let lease = acquire(&t, "mac-standby", "mac", 60, false);
        if lease["is_leader"] != true {
            continue;
        }
        mac_term = lease["term"].as_i64().unwrap();
        reaped = ok(&t.post("/v1/steps/reap", SHARED, json!({"controller_id": "mac-standby", "term": mac_term})), 200);
        if !reaped["restarted_tasks"].as_array().unwrap().is_empty() {
            break;
        }
        // Before host_lost_after_sec the step is left alone: only its host may run it.
        assert_eq!(reaped["reaped"], json!([]), "{reaped}");
        assert_eq!(task(&t, &task_id)["waiting_reason"]["code"], "host_lost");
    }
    assert!(mac_term > 0);
    assert_eq!(reaped["restarted_tasks"], json!([task_id]));
    assert!(t.now() - START_TIME >= 600, "not before host_lost_after_sec");

    let detail = task(&t, &task_id);
    assert_eq!(detail["status"], "running");
    assert_eq!(detail["assigned_host"], Value::Null);
    assert_eq!(detail["base_commit"], BASE, "it starts over from the same base");
    assert_eq!(detail["steps"][0]["status"], "ready");
    assert_eq!(detail["steps"][1]["status"], "pending");
    assert_eq!(detail["runs"][0]["status"], "lost");
    let lost = detail["history"].as_array().unwrap().iter().find(|event| event["kind"] == "host_lost").unwrap();
    assert!(lost["message"].as_str().unwrap().contains("host mini lost"), "{lost}");
    assert!(detail["status_reason"].as_str().unwrap().contains("mini"));

    // The lost host's late answer changes nothing; mac runs the task from the start.
    err(&complete(&t, "mini-main", &step_id, &lost_run), 409, "conflict");
    let claimed = claim_steps(&t, "mac-standby", "mac", 4);
    assert_eq!(claimed.len(), 1, "the pinned task is not mac's: {claimed:?}");
    assert_eq!(claimed[0]["task"]["task_id"], task_id.as_str());
    assert_eq!(claimed[0]["task"]["base_commit"], BASE);
    let run_id = claimed[0]["run_id"].as_str().unwrap().to_string();
    assert_ne!(run_id, lost_run);
    ok(&complete(&t, "mac-standby", &step_id, &run_id), 200);
    assert_eq!(task(&t, &task_id)["assigned_host"], "mac");

    // The pinned task waits for mini, saying so.
    let waiting = task(&t, &pinned);
    assert_eq!(waiting["status"], "running");
    assert_eq!(waiting["assigned_host"], "mini");
    assert_eq!(waiting["waiting_reason"]["code"], "host_lost");
    assert!(waiting["waiting_reason"]["message"].as_str().unwrap().contains("target_host"));
}
