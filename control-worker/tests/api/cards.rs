//! SPEC §12: task cards — keys, dependencies (validation, waiting, blocking), `base_ref:
//! task:<id>`, write scopes (validation, no overlapping tasks at once).

use serde_json::{json, Value};

use crate::client::Response;
use crate::support::*;

fn create(t: &Target, extra: Value) -> Response {
    let mut body = json!({"repo": "/srv/repo", "task_type": "shell", "title": "a card", "goal": "echo hello"});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    t.post("/v1/tasks", BROWSER_ADMIN, body)
}

fn claimed_ids(t: &Target, leader: &Leader) -> Vec<String> {
    let claimed = ok(&claim_tasks(t, leader, 5), 200);
    claimed["tasks"].as_array().unwrap().iter().map(|task| task["task_id"].as_str().unwrap().to_string()).collect()
}

/// Plans `task_id` with one shell step, runs it on `mini` and reports it succeeded or failed.
fn run_to_end(t: &Target, leader: &Leader, task_id: &str, succeed: bool) {
    ok(&plan(t, leader, task_id, json!([shell_step("make", 1)])), 200);
    let steps = claim_steps(t, "mini-main", "mini", 1);
    assert_eq!(steps[0]["task"]["task_id"], task_id, "{steps:?}");
    let (step_id, run_id) = (steps[0]["step"]["step_id"].as_str().unwrap(), steps[0]["run_id"].as_str().unwrap());
    if succeed {
        ok(&complete(t, "mini-main", step_id, run_id), 200);
    } else {
        ok(&fail(t, "mini-main", step_id, run_id, json!({})), 200);
    }
}

fn task_count(t: &Target) -> usize {
    ok(&t.get("/v1/tasks?limit=200", READONLY), 200)["tasks"].as_array().unwrap().len()
}

#[test]
fn a_key_names_one_task_per_repo_and_creating_it_again_answers_that_task() {
    let t = Target::new();
    let first = create(&t, json!({"key": "T-013", "write_scope": ["src/**"], "review": true}));
    let first = ok(&first, 201);
    assert_eq!(first["task"]["key"], "T-013");
    assert_eq!(first["task"]["write_scope"], json!(["src/**"]));
    assert_eq!(first["task"]["review"], true);
    let again = create(&t, json!({"key": "T-013", "title": "edited card"}));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let again = ok(&again, 201);
    assert_eq!(again["task_id"], first["task_id"], "the same key answers the same task");
    assert_eq!(again["task"]["title"], "a card", "nothing was changed");
    let elsewhere = ok(&create(&t, json!({"key": "T-013", "repo": "/srv/other"})), 201);
    assert_ne!(elsewhere["task_id"], first["task_id"], "keys are per repo");
    assert_eq!(task_count(&t), 2);
}

#[test]
fn card_fields_are_checked_naming_the_field_and_nothing_is_created() {
    let t = Target::new();
    let dependency = ok(&create(&t, json!({"key": "T-1"})), 201)["task_id"].as_str().unwrap().to_string();
    ok(&create(&t, json!({"key": "X-1", "repo": "/srv/other"})), 201);
    let cases = [
        (json!({"depends_on": ["T-404"]}), "depends_on"),
        (json!({"key": "T-2", "depends_on": ["T-2"]}), "depends_on"),
        (json!({"depends_on": ["T-1", dependency]}), "depends_on"),
        (json!({"depends_on": ["T-1", "T-1"]}), "depends_on"),
        (json!({"depends_on": ["X-1"]}), "depends_on"),
        (json!({"depends_on": "T-1"}), "depends_on"),
        (json!({"depends_on": ["T-1"], "constraints": {"base_ref": "task:T-9"}}), "constraints.base_ref"),
        (json!({"write_scope": ["src/**", "../etc"]}), "write_scope[1]"),
        (json!({"write_scope": ["/abs"]}), "write_scope[0]"),
        (json!({"write_scope": ["src/[ab].rs"]}), "write_scope[0]"),
        (json!({"key": "-bad"}), "key"),
        (json!({"branch": "a..b"}), "branch"),
        (json!({"review": "yes"}), "review"),
    ];
    for (fields, field) in cases {
        let error = err(&create(&t, fields.clone()), 400, "invalid_request");
        assert_eq!(error["field"], field, "{fields}: {error}");
    }
    assert_eq!(task_count(&t), 2, "no bad card created anything");
}

#[test]
fn a_task_waits_for_its_dependencies_and_starts_from_their_result() {
    let t = Target::new();
    let leader = leader(&t);
    let a = ok(&create(&t, json!({"key": "T-A"})), 201)["task_id"].as_str().unwrap().to_string();
    let b =
        ok(&create(&t, json!({"key": "T-B", "depends_on": ["T-A"], "constraints": {"base_ref": "task:T-A"}, "branch": "cards/b"})), 201);
    let b_id = b["task_id"].as_str().unwrap().to_string();
    assert_eq!(b["task"]["depends_on"], json!([a]), "keys are resolved to task ids");
    assert_eq!(b["task"]["base_ref"], format!("task:{a}"));
    assert_eq!(b["task"]["branch_name"], "cards/b");
    assert_eq!(claimed_ids(&t, &leader), [a.as_str()], "B waits for A");
    assert_eq!(task(&t, &b_id)["status"], "queued");
    run_to_end(&t, &leader, &a, true);
    assert_eq!(task(&t, &a)["status"], "succeeded");
    assert_eq!(claimed_ids(&t, &leader), [b_id.as_str()], "A succeeded: B starts");
    let b = task(&t, &b_id);
    assert_eq!(b["assigned_host"], "mini", "B stays on A's host: {b}");
}

#[test]
fn a_failed_dependency_blocks_its_dependents_naming_it() {
    let t = Target::new();
    let leader = leader(&t);
    let a = ok(&create(&t, json!({"key": "T-A"})), 201)["task_id"].as_str().unwrap().to_string();
    let b = ok(&create(&t, json!({"key": "T-B", "depends_on": ["T-A"]})), 201)["task_id"].as_str().unwrap().to_string();
    let c = ok(&create(&t, json!({"key": "T-C", "depends_on": [b.clone()]})), 201)["task_id"].as_str().unwrap().to_string();
    assert_eq!(claimed_ids(&t, &leader), [a.as_str()]);
    run_to_end(&t, &leader, &a, false);
    assert_eq!(task(&t, &a)["status"], "failed");
    assert!(claimed_ids(&t, &leader).is_empty());
    let blocked = task(&t, &b);
    assert_eq!(blocked["status"], "blocked");
    assert_eq!(blocked["status_reason"], format!("dependency T-A ({a}) is failed"), "{blocked}");
    claimed_ids(&t, &leader);
    let blocked = task(&t, &c);
    assert_eq!(blocked["status"], "blocked", "blocked in turn: {blocked}");
    assert!(blocked["status_reason"].as_str().unwrap().contains("T-B"), "{blocked}");
}

#[test]
fn tasks_whose_write_scopes_may_overlap_never_run_at_once() {
    let t = Target::new();
    let leader = leader(&t);
    let a = ok(&create(&t, json!({"key": "T-A", "write_scope": ["src/**"]})), 201)["task_id"].as_str().unwrap().to_string();
    t.advance(1);
    let c = ok(&create(&t, json!({"key": "T-C", "write_scope": ["src/main.rs"]})), 201)["task_id"].as_str().unwrap().to_string();
    let d = ok(&create(&t, json!({"key": "T-D", "write_scope": ["docs/**"]})), 201)["task_id"].as_str().unwrap().to_string();
    let e = ok(&create(&t, json!({"key": "T-E"})), 201)["task_id"].as_str().unwrap().to_string();
    let mut first = claimed_ids(&t, &leader);
    first.sort();
    let mut expected = vec![a.clone(), d, e];
    expected.sort();
    assert_eq!(first, expected, "C overlaps A, which is ahead of it: C waits");
    run_to_end(&t, &leader, &a, true);
    assert_eq!(claimed_ids(&t, &leader), [c.as_str()], "A finished: C starts");
}

#[test]
fn a_reviewed_task_waits_for_a_person_and_its_dependents_wait_for_the_approval() {
    let t = Target::new();
    let leader = leader(&t);
    let a = ok(&create(&t, json!({"key": "T-A", "review": true})), 201)["task_id"].as_str().unwrap().to_string();
    let b = ok(&create(&t, json!({"key": "T-B", "depends_on": ["T-A"]})), 201)["task_id"].as_str().unwrap().to_string();
    let early = t.post(&format!("/v1/tasks/{a}/approve"), BROWSER_ADMIN, json!({}));
    assert_eq!(err(&early, 409, "invalid_transition")["status"], "queued", "only a task in review");
    assert_eq!(claimed_ids(&t, &leader), [a.as_str()]);
    run_to_end(&t, &leader, &a, true);
    let waiting = task(&t, &a);
    assert_eq!(waiting["status"], "review", "its steps passed: it waits for a person: {waiting}");
    assert!(claimed_ids(&t, &leader).is_empty(), "B waits for the approval");
    let readonly = t.post(&format!("/v1/tasks/{a}/approve"), READONLY, json!({}));
    err(&readonly, 403, "forbidden");
    let approved = ok(&t.post(&format!("/v1/tasks/{a}/approve"), BROWSER_ADMIN, json!({"comment": "looks right"})), 200);
    assert_eq!(approved["decision"], "approved");
    assert_eq!(approved["task"]["status"], "succeeded");
    let history = task(&t, &a)["history"].clone();
    let decision = history.as_array().unwrap().iter().find(|event| event["kind"] == "approved").expect("audited");
    assert!(
        decision["message"].as_str().unwrap().contains("looks right") && decision["message"].as_str().unwrap().contains("req_"),
        "{decision}"
    );
    assert_eq!(claimed_ids(&t, &leader), [b.as_str()], "approved: B starts");
}

#[test]
fn a_rejected_task_fails_with_the_reason_and_blocks_its_dependents() {
    let t = Target::new();
    let leader = leader(&t);
    let a = ok(&create(&t, json!({"key": "T-A", "review": true})), 201)["task_id"].as_str().unwrap().to_string();
    let b = ok(&create(&t, json!({"key": "T-B", "depends_on": ["T-A"]})), 201)["task_id"].as_str().unwrap().to_string();
    claimed_ids(&t, &leader);
    run_to_end(&t, &leader, &a, true);
    let missing = t.post(&format!("/v1/tasks/{a}/reject"), BROWSER_ADMIN, json!({}));
    assert_eq!(err(&missing, 400, "invalid_request")["field"], "reason");
    let rejected = ok(&t.post(&format!("/v1/tasks/{a}/reject"), BROWSER_ADMIN, json!({"reason": "tests are thin", "retry": true})), 200);
    assert_eq!((rejected["decision"].as_str(), rejected["retried"].as_bool()), (Some("rejected"), Some(false)));
    let failed = task(&t, &a);
    assert_eq!(failed["status"], "failed");
    assert!(failed["status_reason"].as_str().unwrap().ends_with(": tests are thin"), "{failed}");
    claimed_ids(&t, &leader);
    assert_eq!(task(&t, &b)["status"], "blocked");
    let again = t.post(&format!("/v1/tasks/{a}/reject"), BROWSER_ADMIN, json!({"reason": "twice"}));
    err(&again, 409, "invalid_transition");
}

#[test]
fn a_task_that_ran_has_a_report_in_the_cards_sections() {
    let t = Target::new();
    let leader = leader(&t);
    let a = ok(&create(&t, json!({"key": "T-R", "title": "the adder"})), 201)["task_id"].as_str().unwrap().to_string();
    let early = t.get(&format!("/v1/tasks/{a}/report"), READONLY);
    err(&early, 409, "invalid_transition");
    assert_eq!(task(&t, &a)["report"], Value::Null);
    claimed_ids(&t, &leader);
    ok(&plan(&t, &leader, &a, json!([shell_step("make fix", 1), shell_step("make test", 1)])), 200);
    for _ in 0..2 {
        let steps = claim_steps(&t, "mini-main", "mini", 1);
        let (step_id, run_id) = (steps[0]["step"]["step_id"].as_str().unwrap(), steps[0]["run_id"].as_str().unwrap());
        let body = json!({"worker_id": "mini-main", "run_id": run_id, "summary": "done", "exit_code": 0,
            "report": {"result": "the adder adds", "next_handoff": "merge it"}});
        ok(&t.post(&format!("/v1/steps/{step_id}/complete"), SHARED, body), 200);
    }
    let page = ok(&t.get(&format!("/v1/tasks/{a}/report"), READONLY), 200);
    assert_eq!(page["key"], "T-R");
    assert_eq!(page["report"]["commands_run"], json!(["make fix", "make test"]));
    assert_eq!(page["report"]["result"], "the adder adds");
    assert_eq!(page["report"]["next_handoff"], "merge it");
    assert_eq!(page["report"]["risks"], "");
    let markdown = page["markdown"].as_str().unwrap();
    assert!(markdown.starts_with("# T-R: the adder\n"), "{markdown}");
    assert!(markdown.contains("## commands_run\n\n- `make fix`\n- `make test`\n"), "{markdown}");
    assert!(markdown.contains("## risks\n\n(none)\n"), "{markdown}");
    assert_eq!(task(&t, &a)["report"], page["report"], "tasks.read carries the same");
    let bad = json!({"worker_id": "mini-main", "run_id": "x", "summary": "s", "exit_code": 0, "report": {"risks": 3}});
    assert_eq!(err(&t.post(&format!("/v1/steps/{a}.s0/complete"), SHARED, bad), 400, "invalid_request")["field"], "report.risks");
}

/// Completes the claimed step of `task_id` on `host` with the branch's head as the result.
fn complete_with_head(t: &Target, host: &str, task_id: &str, branch: &str, head: &str, pushed_to: Option<&str>) {
    let worker = format!("{host}-main");
    let steps = claim_steps(t, &worker, host, 1);
    assert_eq!(steps[0]["task"]["task_id"], task_id, "{steps:?}");
    let (step_id, run_id) = (steps[0]["step"]["step_id"].as_str().unwrap(), steps[0]["run_id"].as_str().unwrap());
    let mut result = json!({"base_commit": "0".repeat(40), "head_commit": head, "branch": branch, "commits": 1,
        "files_changed": ["a.txt"], "insertions": 1, "deletions": 0, "host": host, "repo": "/srv/repo"});
    if let Some(pushed_to) = pushed_to {
        result["pushed_to"] = json!(pushed_to);
    }
    let body = json!({"worker_id": worker, "run_id": run_id, "summary": "done", "exit_code": 0, "task_result": result});
    ok(&t.post(&format!("/v1/steps/{step_id}/complete"), SHARED, body), 200);
}

#[test]
fn an_integrate_task_merges_its_dependencies_branches_in_order() {
    let t = Target::new();
    let leader = leader(&t);
    let refused = create(&t, json!({"task_type": "integrate", "key": "W-1"}));
    assert_eq!(err(&refused, 400, "invalid_request")["field"], "depends_on");
    let a = ok(&create(&t, json!({"key": "T-A", "branch": "cards/a"})), 201)["task_id"].as_str().unwrap().to_string();
    let b = ok(&create(&t, json!({"key": "T-B", "branch": "cards/b"})), 201)["task_id"].as_str().unwrap().to_string();
    let wave = create(&t, json!({"task_type": "integrate", "key": "W-1", "depends_on": ["T-B", "T-A"], "branch": "integration/w1"}));
    let wave = ok(&wave, 201)["task_id"].as_str().unwrap().to_string();
    let mut claimed = claimed_ids(&t, &leader);
    claimed.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(claimed, expected, "the wave waits for its tasks");
    for (task_id, host, branch, head, pushed) in
        [(&a, "mini", "cards/a", "a".repeat(40), None), (&b, "mac", "cards/b", "b".repeat(40), Some("file:///srv/origin.git"))]
    {
        let step = json!([{"step_kind": "agent", "worker_kind": "codex", "title": "agent", "prompt": "do it", "timeout_sec": 60}]);
        ok(&plan(&t, &leader, task_id, step), 200);
        complete_with_head(&t, host, task_id, branch, &head, pushed);
    }
    assert_eq!(claimed_ids(&t, &leader), [wave.as_str()]);
    let merge = json!([{"step_kind": "merge", "worker_kind": "shell", "title": "merge 2 branches", "timeout_sec": 60},
        shell_step("make test", 1)]);
    let planned = ok(&plan(&t, &leader, &wave, merge), 200);
    let sources = &planned["steps"][0]["metadata"]["merge"];
    assert_eq!(
        *sources,
        json!([
            {"task_id": b, "key": "T-B", "branch": "cards/b", "head_commit": "b".repeat(40), "host": "mac", "pushed_to": "file:///srv/origin.git"},
            {"task_id": a, "key": "T-A", "branch": "cards/a", "head_commit": "a".repeat(40), "host": "mini", "pushed_to": null},
        ]),
        "in depends_on order, as each ended"
    );
    assert_eq!(planned["steps"][1]["metadata"], json!({}), "only the merge step lists them");
    let claimed = claim_steps(&t, "mini-main", "mini", 1);
    assert_eq!(claimed[0]["step"]["metadata"]["merge"], *sources, "the host gets them with the step");
}
