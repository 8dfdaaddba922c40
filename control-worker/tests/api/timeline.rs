//! SPEC §18: `runs.list`, the console's fleet timeline: the runs live in a window, on every host;
//! `tasks.list` carries each task's round for the board.

use serde_json::json;

use crate::storage::{data, two_runs, via_http};
use crate::support::*;

#[test]
fn the_runs_of_a_window_are_listed_with_their_step_and_task() {
    let t = Target::new();
    let call = via_http(&t);
    let (task_id, first_run, _, second_run) = two_runs(&call, "mini-main");
    t.advance(60);
    let now = t.now();
    let page = data(call("GET", "/v1/runs", READONLY, None), 200);
    let runs = page["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|run| run["run_id"].as_str().unwrap()).collect::<Vec<_>>(), [first_run.as_str(), second_run.as_str()]);
    assert_eq!(
        (page["since"].as_i64(), page["until"].as_i64(), page["truncated"].as_bool()),
        (Some(now - 6 * 3600), Some(now), Some(false))
    );
    let first = &runs[0];
    assert_eq!(
        (first["host"].as_str(), first["step_kind"].as_str(), first["task_title"].as_str()),
        (Some("mini"), Some("shell"), Some("chatty"))
    );
    assert_eq!(
        (first["status"].as_str(), first["round"].as_i64(), first["task_id"].as_str()),
        (Some("succeeded"), Some(1), Some(task_id.as_str()))
    );
    assert!(first["finished_at"].is_i64() && runs[1]["finished_at"].is_null(), "the second still runs: {page}");

    // A window that ends before the claims has none; one long after the first ended has the
    // second only (it still runs).
    let before = data(call("GET", &format!("/v1/runs?since={}&until={}", now - 7200, now - 3600), READONLY, None), 200);
    assert_eq!(before["runs"], json!([]));
    t.advance(3600);
    let later = data(call("GET", &format!("/v1/runs?since={}", t.now() - 600), READONLY, None), 200);
    assert_eq!(later["runs"].as_array().unwrap().len(), 1, "{later}");
    let too_wide = invalid(&t.get("/v1/runs?since=0", READONLY), "since");
    assert!(too_wide["rule"].as_str().unwrap().contains("31 days"), "{too_wide}");
    invalid(&t.get(&format!("/v1/runs?since={}&until={}", now, now - 1), READONLY), "since");
    invalid(&t.get("/v1/runs?limit=0", READONLY), "limit");
    let truncated = data(call("GET", &format!("/v1/runs?since={}&limit=1", now - 7200), READONLY, None), 200);
    assert_eq!((truncated["runs"].as_array().unwrap().len(), truncated["truncated"].as_bool()), (1, Some(true)));

    let listed = data(call("GET", "/v1/tasks", READONLY, None), 200);
    assert_eq!(listed["tasks"][0]["round"], 1, "the board's round: {listed}");
}
