//! SPEC §13: unattended waves, as the control plane answers them.

use serde_json::{json, Value};

use crate::support::*;

fn create(t: &Target, extra: Value) -> Value {
    let mut body = json!({"repo": "/srv/repo", "task_type": "codex", "title": "an agent's task", "goal": "fix it"});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    ok(&t.post("/v1/tasks", BROWSER_ADMIN, body), 201)
}

#[test]
fn a_codex_task_without_acceptance_is_created_with_a_warning() {
    let t = Target::new();
    let warned = create(&t, json!({}));
    let warnings = warned["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warned}");
    assert!(warnings[0].as_str().unwrap().starts_with("no acceptance:"), "{warned}");
    assert_eq!(create(&t, json!({"acceptance": ["make test"]}))["warnings"], json!([]));
    assert_eq!(create(&t, json!({"task_type": "shell", "goal": "true"}))["warnings"], json!([]));
    let bad = t.post(
        "/v1/tasks",
        BROWSER_ADMIN,
        json!({"repo": "/srv/repo", "task_type": "codex", "title": "t", "goal": "g",
        "constraints": {"allow_no_change": "yes"}}),
    );
    assert_eq!(err(&bad, 400, "invalid_request")["field"], "constraints.allow_no_change");
    assert!(create(&t, json!({"constraints": {"allow_no_change": true}}))["task"]["constraints"]["allow_no_change"] == true);
}

fn agent_step() -> Value {
    json!({"step_kind": "agent", "worker_kind": "codex", "title": "coding agent", "prompt": "fix it", "timeout_sec": 60})
}

/// Claims the task's next step on `mini` and completes it, or fails it with exit code 3.
fn run_next(t: &Target, task_id: &str, succeed: bool) -> Value {
    let steps = claim_steps(t, "mini-main", "mini", 1);
    assert_eq!(steps.len(), 1, "one step ready: {steps:?}");
    assert_eq!(steps[0]["task"]["task_id"], task_id);
    let (step_id, run_id) = (steps[0]["step"]["step_id"].as_str().unwrap(), steps[0]["run_id"].as_str().unwrap());
    if succeed {
        ok(&complete(t, "mini-main", step_id, run_id), 200);
    } else {
        ok(&fail(t, "mini-main", step_id, run_id, json!({})), 200);
    }
    steps[0]["step"].clone()
}

fn planned_codex_task(t: &Target, leader: &Leader, extra: Value) -> String {
    let mut body = json!({"acceptance": ["make test"]});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let task_id = create(t, body)["task_id"].as_str().unwrap().to_string();
    ok(&claim_tasks(t, leader, 5), 200);
    let test_step =
        json!({"step_kind": "test", "worker_kind": "shell", "title": "acceptance 1", "command": "make test", "timeout_sec": 60});
    let deliver_step = json!({"step_kind": "deliver", "worker_kind": "shell", "title": "deliver", "timeout_sec": 60});
    ok(&plan(t, leader, &task_id, json!([agent_step(), test_step, deliver_step])), 200);
    task_id
}

fn rounds_of(detail: &Value) -> Vec<(i64, String, String)> {
    detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["round"].as_i64().unwrap(), step["step_kind"].as_str().unwrap().into(), step["status"].as_str().unwrap().into()))
        .collect()
}

#[test]
fn a_failed_acceptance_step_of_a_codex_task_starts_another_agent_round_with_feedback() {
    let t = Target::new();
    let leader = leader(&t);
    let task_id = planned_codex_task(&t, &leader, json!({}));
    run_next(&t, &task_id, true);
    let failed = run_next(&t, &task_id, false);
    let detail = task(&t, &task_id);
    assert_eq!(detail["status"], "running", "the task goes on: {detail:#}");
    let s = |round: i64, kind: &str, status: &str| (round, kind.to_string(), status.to_string());
    assert_eq!(
        rounds_of(&detail),
        [
            s(1, "agent", "succeeded"),
            s(1, "test", "failed"),
            s(1, "deliver", "canceled"),
            s(2, "agent", "ready"),
            s(2, "test", "pending"),
            s(2, "deliver", "pending")
        ]
    );
    let feedback = &detail["steps"][3]["metadata"]["feedback"];
    assert_eq!(feedback["command"], "make test");
    assert_eq!((feedback["round"].as_i64(), feedback["exit_code"].as_i64()), (Some(1), Some(3)));
    assert_eq!(feedback["run_id"], failed["current_run_id"]);
    assert_eq!(detail["steps"][3]["step_id"], format!("{task_id}.s3"));
    let history = detail["history"].as_array().unwrap();
    assert!(
        history.iter().any(|event| event["kind"] == "round_started" && event["message"].as_str().unwrap().starts_with("round 2 started")),
        "{history:?}"
    );
    for _ in 0..3 {
        run_next(&t, &task_id, true);
    }
    let done = task(&t, &task_id);
    assert_eq!(done["status"], "succeeded", "the last round passed: {done:#}");
}

#[test]
fn rounds_end_at_max_rounds_and_one_round_turns_them_off() {
    let t = Target::new();
    let leader = leader(&t);
    let once = planned_codex_task(&t, &leader, json!({"constraints": {"max_rounds": 1}}));
    run_next(&t, &once, true);
    run_next(&t, &once, false);
    let failed = task(&t, &once);
    assert_eq!(failed["status"], "failed", "{failed:#}");
    assert_eq!(failed["steps"].as_array().unwrap().len(), 3);

    let thrice = planned_codex_task(&t, &leader, json!({}));
    for _ in 0..3 {
        run_next(&t, &thrice, true);
        run_next(&t, &thrice, false);
    }
    let failed = task(&t, &thrice);
    assert_eq!(failed["status"], "failed", "the third round was the last: {failed:#}");
    assert!(failed["status_reason"].as_str().unwrap().starts_with("step 7 failed"), "{failed:#}");
    assert_eq!(failed["steps"].as_array().unwrap().last().unwrap()["round"], 3);
    let bad = t.post(
        "/v1/tasks",
        BROWSER_ADMIN,
        json!({"repo": "/srv/repo", "task_type": "codex", "title": "t", "goal": "g",
        "constraints": {"max_rounds": 0}}),
    );
    assert_eq!(err(&bad, 400, "invalid_request")["field"], "constraints.max_rounds");
}

#[test]
fn a_reject_with_retry_starts_another_round_with_the_reviewers_reason() {
    let t = Target::new();
    let leader = leader(&t);
    let task_id = planned_codex_task(&t, &leader, json!({"review": true, "constraints": {"max_rounds": 2}}));
    for _ in 0..3 {
        run_next(&t, &task_id, true);
    }
    assert_eq!(task(&t, &task_id)["status"], "review");
    let reject = |retry: bool| t.post(&format!("/v1/tasks/{task_id}/reject"), BROWSER_ADMIN, json!({"reason": "too slow", "retry": retry}));
    let bad_line = json!({"reason": "r", "retry": true, "comments": [{"path": "src/a.rs", "line": 0, "comment": "x"}]});
    invalid(&t.post(&format!("/v1/tasks/{task_id}/reject"), BROWSER_ADMIN, bad_line), "comments[0].line");
    let comments = json!([{"path": "src/a.rs", "line": 7, "comment": "quadratic here"}]);
    let answer = ok(
        &t.post(&format!("/v1/tasks/{task_id}/reject"), BROWSER_ADMIN, json!({"reason": "too slow", "retry": true, "comments": comments})),
        200,
    );
    assert_eq!(answer["retried"], true, "{answer}");
    assert_eq!(answer["task"]["status"], "running");
    let detail = task(&t, &task_id);
    let feedback = &detail["steps"][3]["metadata"]["feedback"];
    assert_eq!((feedback["kind"].as_str(), feedback["reason"].as_str()), (Some("review"), Some("too slow")), "{detail:#}");
    assert_eq!(feedback["comments"], comments, "the line comments reach the next round: {detail:#}");
    assert_eq!(detail["steps"][3]["round"], 2);
    for _ in 0..3 {
        run_next(&t, &task_id, true);
    }
    assert_eq!(task(&t, &task_id)["status"], "review", "round 2 passed: in review again");
    let last = ok(&reject(true), 200);
    assert_eq!((last["retried"].as_bool(), last["task"]["status"].as_str()), (Some(false), Some("failed")), "no rounds left: {last}");
}

/// One sync of host `mini` saying what room it has, leaving the lease alone.
fn host_says(t: &Target, capacity: i64, disk_low: bool) -> Value {
    let body = json!({"node_id": "mini-main", "host": "mini", "role": "primary", "priority": 100, "status": "ok",
        "lease": {"wish": "keep", "ttl_sec": 30}, "capacity": capacity, "worker_kinds": ["shell", "codex"], "disk_low": disk_low,
        "account": "team"});
    ok(&t.post("/v1/agents/sync", SHARED, body), 200)
}

fn waiting(t: &Target, task_id: &str) -> (String, String) {
    let detail = task(t, task_id);
    let reason = &detail["waiting_reason"];
    (reason["code"].as_str().unwrap_or("none").to_string(), reason["message"].as_str().unwrap_or("").to_string())
}

fn system(t: &Target, action: &str) {
    ok(&t.post(&format!("/v1/system/{action}"), BROWSER_ADMIN, json!({})), 200);
}

#[test]
fn a_waiting_task_says_why_from_the_schedulers_own_facts() {
    let t = Target::new();
    let leader = leader(&t);
    let key = |response: Value| response["task_id"].as_str().unwrap().to_string();
    let a = key(create(&t, json!({"key": "T-A", "write_scope": ["src/**"], "acceptance": ["make test"]})));
    t.advance(1);
    let b = key(create(&t, json!({"key": "T-B", "depends_on": ["T-A"]})));
    let c = key(create(&t, json!({"key": "T-C", "write_scope": ["src/a.rs"]})));
    let claimed = ok(&claim_tasks(&t, &leader, 5), 200);
    assert_eq!(claimed["tasks"].as_array().unwrap().len(), 1, "only A starts: {claimed}");
    let (code, message) = waiting(&t, &b);
    assert_eq!(code, "dependency");
    assert!(message.contains("T-A") && message.contains("planning"), "{message}");
    let (code, message) = waiting(&t, &c);
    assert_eq!(code, "scope");
    assert!(message.contains("T-A"), "{message}");
    let listed = ok(&t.get("/v1/tasks?status=queued", READONLY), 200);
    let codes: Vec<&str> =
        listed["tasks"].as_array().unwrap().iter().map(|task| task["waiting_reason"]["code"].as_str().unwrap()).collect();
    assert_eq!(codes.len(), 2);
    assert!(codes.contains(&"dependency") && codes.contains(&"scope"), "tasks.list says it too: {codes:?}");

    ok(&plan(&t, &leader, &a, json!([agent_step()])), 200);
    // The leader's host, quiet for longer than the liveness window, is no host to run it.
    t.advance(120);
    assert_eq!(waiting(&t, &a).0, "no_host", "no live host runs codex");
    host_says(&t, 0, false);
    let (code, message) = waiting(&t, &a);
    assert_eq!(code, "host_busy", "{message}");
    let detail = task(&t, &a);
    assert_eq!(detail["steps"][0]["waiting_reason"]["code"], "host_busy", "the ready step says it too");
    host_says(&t, 0, true);
    assert_eq!(waiting(&t, &a).0, "disk");
    system(&t, "pause");
    assert_eq!(waiting(&t, &a).0, "paused");
    assert_eq!(waiting(&t, &b).0, "paused");
    system(&t, "drain");
    assert_eq!(waiting(&t, &b).0, "draining");
    system(&t, "resume");
    let granted = host_says(&t, 1, false);
    assert_eq!(granted["granted"].as_array().unwrap().len(), 1, "the host with room gets the step: {granted}");
    assert_eq!(waiting(&t, &a).0, "none", "claimed: not waiting");

    let r = key(create(&t, json!({"key": "T-R", "task_type": "shell", "goal": "true", "review": true})));
    let e = key(create(&t, json!({"key": "T-E", "task_type": "shell", "goal": "true", "depends_on": ["T-R"]})));
    // The lease lapsed while the clock moved on: lead again.
    let leader = crate::support::leader(&t);
    ok(&claim_tasks(&t, &leader, 5), 200);
    ok(&plan(&t, &leader, &r, json!([shell_step("true", 1)])), 200);
    let steps = claim_steps(&t, "mini-main", "mini", 1);
    let (step_id, run_id) = (steps[0]["step"]["step_id"].as_str().unwrap(), steps[0]["run_id"].as_str().unwrap());
    ok(&complete(&t, "mini-main", step_id, run_id), 200);
    let (code, message) = waiting(&t, &e);
    assert_eq!(code, "review");
    assert!(message.contains("T-R") && message.contains("approved"), "{message}");
}

fn parked(t: &Target) -> Vec<Value> {
    ok(&t.get("/v1/system/state", READONLY), 200)["parked_accounts"].as_array().unwrap().clone()
}

/// Claims on `mini` for account `team`: the steps granted.
fn claim_as_team(t: &Target, kinds: &[&str]) -> Vec<Value> {
    let body = json!({"worker_id": "mini-main", "host": "mini", "capacity": 4, "worker_kinds": kinds, "account": "team"});
    ok(&t.post("/v1/steps/claim", SHARED, body), 200)["steps"].as_array().unwrap().clone()
}

#[test]
fn a_usage_limit_parks_the_account_and_the_step_waits_without_spending_an_attempt() {
    let t = Target::new();
    let leader = leader(&t);
    let task_id = planned_codex_task(&t, &leader, json!({}));
    let step = &claim_as_team(&t, &["codex", "shell"])[0];
    let (step_id, run_id) = (step["step"]["step_id"].as_str().unwrap(), step["run_id"].as_str().unwrap());
    let reset = t.now() + 600;
    let body = json!({"worker_id": "mini-main", "run_id": run_id, "error": "exit code 1: usage limit", "exit_code": 1,
        "quota": {"account": "team", "resets_at": reset, "message": "Claude AI usage limit reached|1750708800"}});
    let settled = ok(&t.post(&format!("/v1/steps/{step_id}/fail"), SHARED, body), 200);
    assert_eq!(settled["step"]["status"], "waiting_quota", "{settled}");
    let detail = task(&t, &task_id);
    assert_eq!(detail["status"], "running");
    assert_eq!((detail["steps"][0]["attempt"].as_i64(), detail["steps"][0]["max_attempts"].as_i64()), (Some(1), Some(2)));
    assert_eq!(detail["steps"][1]["status"], "pending", "the rest of the plan stays");
    assert_eq!(detail["waiting_reason"]["code"], "quota", "{detail:#}");
    assert!(detail["history"].as_array().unwrap().iter().any(|event| event["kind"] == "account_parked"));
    let accounts = parked(&t);
    assert_eq!((accounts[0]["account"].as_str(), accounts[0]["parked_until"].as_i64()), (Some("team"), Some(reset)));

    // While parked, a host of the account is granted no agent step; a shell step still goes.
    let other = planned_codex_task(&t, &leader, json!({}));
    let shell = create(&t, json!({"task_type": "shell", "goal": "true"}))["task_id"].as_str().unwrap().to_string();
    ok(&claim_tasks(&t, &leader, 5), 200);
    ok(&plan(&t, &leader, &shell, json!([shell_step("true", 1)])), 200);
    let granted = claim_as_team(&t, &["codex", "shell"]);
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(granted[0]["task"]["task_id"], shell.as_str());
    host_says(&t, 0, false);
    let held = task(&t, &other);
    assert_eq!(held["waiting_reason"]["code"], "quota", "{held:#}");
    assert!(held["waiting_reason"]["message"].as_str().unwrap().starts_with("account team is parked"), "{held:#}");

    // At the reset the leader makes the waiting step ready again.
    t.advance(601);
    let leader = crate::support::leader(&t);
    ok(&t.post("/v1/steps/reap", SHARED, json!({"controller_id": leader.id, "term": leader.term})), 200);
    assert_eq!(task(&t, &task_id)["steps"][0]["status"], "ready");
    assert!(parked(&t).is_empty());
    let again = claim_as_team(&t, &["codex"]);
    assert_eq!(again.len(), 2, "both agent steps go now: {again:?}");
    assert!(again.iter().any(|claimed| claimed["step"]["step_id"] == step_id && claimed["attempt"] == 2));
}

#[test]
fn a_limit_without_a_reset_waits_longer_each_time_and_a_person_can_end_the_wait() {
    let t = Target::new();
    let leader = leader(&t);
    let mut waits = Vec::new();
    for _ in 0..3 {
        let task_id = planned_codex_task(&t, &leader, json!({}));
        let step = claim_as_team(&t, &["codex"]).into_iter().find(|claimed| claimed["task"]["task_id"] == task_id.as_str()).unwrap();
        let (step_id, run_id) = (step["step"]["step_id"].as_str().unwrap(), step["run_id"].as_str().unwrap());
        let body = json!({"worker_id": "mini-main", "run_id": run_id, "error": "429", "quota": {"account": "team", "message": "429 Too Many Requests"}});
        ok(&t.post(&format!("/v1/steps/{step_id}/fail"), SHARED, body), 200);
        waits.push(parked(&t)[0]["parked_until"].as_i64().unwrap() - t.now());
        let resumed = ok(&t.post("/v1/accounts/team/resume", BROWSER_ADMIN, json!({})), 200);
        assert_eq!(resumed["resumed_steps"], json!([step_id]), "{resumed}");
        assert_eq!(task(&t, &task_id)["steps"][0]["status"], "ready");
    }
    assert_eq!(waits, [900, 3_600, 14_400], "15 min, 1 h, 4 h");
    // The account as a path parameter is percent-decoded (the console sends encodeURIComponent's).
    let again = t.post("/v1/accounts/te%61m/resume", BROWSER_ADMIN, json!({}));
    assert_eq!(err(&again, 409, "invalid_transition")["account"], "team", "not parked and no step waits for it");
    let bad = json!({"worker_id": "mini-main", "run_id": "x", "error": "e", "quota": {"message": "no account"}});
    assert_eq!(err(&t.post("/v1/steps/x.s0/fail", SHARED, bad), 400, "invalid_request")["field"], "quota.account");
}

#[test]
fn a_tasks_usage_is_its_runs_usage_files_summed() {
    let t = Target::new();
    let leader = leader(&t);
    let task_id = planned_codex_task(&t, &leader, json!({}));
    assert_eq!(task(&t, &task_id)["usage"], Value::Null, "no run recorded any");
    let step = &claim_as_team(&t, &["codex"])[0];
    let (step_id, run_id) = (step["step"]["step_id"].as_str().unwrap(), step["run_id"].as_str().unwrap());
    let mut body = json!({"worker_id": "mini-main", "run_id": run_id, "summary": "done", "exit_code": 0,
        "usage": {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.25, "model": "gpt-5-codex", "note": "not a usage field"}});
    invalid(&t.post(&format!("/v1/steps/{step_id}/complete"), SHARED, body.clone()), "usage.note");
    body["usage"].as_object_mut().unwrap().remove("note");
    ok(&t.post(&format!("/v1/steps/{step_id}/complete"), SHARED, body), 200);
    let step = &claim_as_team(&t, &["shell"])[0];
    let (step_id, run_id) = (step["step"]["step_id"].as_str().unwrap(), step["run_id"].as_str().unwrap());
    let body = json!({"worker_id": "mini-main", "run_id": run_id, "error": "exit code 1", "exit_code": 1,
        "usage": {"input_tokens": 800, "cost_usd": 0.5, "model": "gpt-5-codex"}});
    ok(&t.post(&format!("/v1/steps/{step_id}/fail"), SHARED, body), 200);
    let detail = task(&t, &task_id);
    assert_eq!(
        detail["usage"],
        json!({"runs": 2, "input_tokens": 2000, "output_tokens": 300, "cost_usd": 0.75, "models": ["gpt-5-codex"]}),
        "{detail:#}"
    );
    assert_eq!(detail["runs"][0]["usage"], json!({"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.25, "model": "gpt-5-codex"}));
    let bad = json!({"worker_id": "mini-main", "run_id": run_id, "summary": "s", "exit_code": 0, "usage": {"cost_usd": "free"}});
    assert_eq!(err(&t.post(&format!("/v1/steps/{step_id}/complete"), SHARED, bad), 400, "invalid_request")["field"], "usage.cost_usd");
}

fn feed(t: &Target, query: &str) -> Vec<(i64, String, String)> {
    let page = ok(&t.get(&format!("/v1/events?{query}"), READONLY), 200);
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (event["event_id"].as_i64().unwrap(), event["kind"].as_str().unwrap().into(), event["subject"].as_str().unwrap().into())
        })
        .collect()
}

#[test]
fn the_event_feed_tells_what_happened_in_order_and_the_leaders_notifier_gets_it_with_its_syncs() {
    let t = Target::new();
    let leader = leader(&t);
    let task_id = planned_codex_task(&t, &leader, json!({"title": "the adder"}));
    run_next(&t, &task_id, true);
    run_next(&t, &task_id, false);
    ok(&t.post("/v1/system/pause", BROWSER_ADMIN, json!({"reason": "lunch"})), 200);
    ok(&t.post("/v1/system/resume", BROWSER_ADMIN, json!({})), 200);
    let events = feed(&t, "after=0");
    let kinds: Vec<&str> = events.iter().map(|(_, kind, _)| kind.as_str()).collect();
    assert_eq!(kinds, ["task_created", "task_started", "round_started", "mode_changed", "mode_changed"], "{events:?}");
    assert!(events.windows(2).all(|pair| pair[0].0 < pair[1].0), "in order");
    assert_eq!(events[0].2, "the adder");
    assert_eq!(events[3].2, "paused");
    assert_eq!(feed(&t, &format!("after={}", events[2].0)), events[3..].to_vec());
    assert_eq!(feed(&t, "last=2"), events[3..].to_vec(), "the newest, oldest first");

    // The leader's notifier: the events after its cursor with its sync, and its progress kept.
    let body = |node: &str, term: Option<i64>, extra: Value| {
        let mut body = json!({"node_id": node, "host": "mini", "role": "primary", "priority": 100, "status": "ok",
            "lease": {"wish": "acquire", "ttl_sec": 30, "term": term}});
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        body
    };
    let first = ok(&t.post("/v1/agents/sync", SHARED, body(&leader.id, Some(leader.term), json!({"events_after": 0}))), 200);
    assert_eq!(first["notified_through"], 0);
    let ids: Vec<i64> = first["events"].as_array().unwrap().iter().map(|event| event["event_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, events.iter().map(|(id, _, _)| *id).collect::<Vec<_>>());
    let through = ids[2];
    let next = ok(
        &t.post(
            "/v1/agents/sync",
            SHARED,
            body(&leader.id, Some(leader.term), json!({"events_after": ids[4], "events_delivered": through})),
        ),
        200,
    );
    assert!(next["events"].as_array().is_none_or(|events| events.is_empty()), "{next}");
    let after = ok(&t.post("/v1/agents/sync", SHARED, body(&leader.id, Some(leader.term), json!({}))), 200);
    assert_eq!(after["notified_through"], through, "kept for the next leader");
    let stale = ok(
        &t.post("/v1/agents/sync", SHARED, body(&leader.id, Some(leader.term + 5), json!({"events_after": 0, "events_delivered": 999}))),
        200,
    );
    assert!(stale["events"].as_array().is_none_or(|events| events.is_empty()), "not the leader in that term: no feed");
    assert_eq!(stale["notified_through"], through, "and no write");
}

#[test]
fn a_host_that_syncs_again_after_being_lost_is_back_in_the_feed() {
    let t = Target::new();
    host_says(&t, 0, false);
    t.advance(30);
    host_says(&t, 0, false);
    assert!(feed(&t, "after=0").iter().all(|(_, kind, _)| kind != "host_back"), "heard from all along");
    t.advance(700);
    host_says(&t, 0, false);
    let back: Vec<_> = feed(&t, "after=0").into_iter().filter(|(_, kind, _)| kind == "host_back").collect();
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(back[0].2, "mini");
}
