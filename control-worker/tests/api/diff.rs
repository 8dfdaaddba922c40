//! SPEC §18: `tasks.diff`: the task's branch against its base, from the runner's newest
//! `branch_diff` checkpoint, read the same after compaction moved it to object storage.

use serde_json::json;

use crate::storage::{data, line, maintain, two_runs, via_http};
use crate::support::*;

#[test]
fn the_newest_branch_diff_is_the_tasks_diff_before_and_after_compaction() {
    let t = Target::new();
    let call = via_http(&t);
    let (task_id, first_run, second_step, second_run) = two_runs(&call, "mini-main");
    let empty = data(call("GET", &format!("/v1/tasks/{task_id}/diff"), READONLY, None), 200);
    assert_eq!((empty["available"].as_bool(), empty["patch"].as_str()), (Some(false), None), "{empty}");
    assert!(empty["reason"].as_str().unwrap().contains("no step of this task has committed"), "{empty}");

    let upload = |step_id: &str, run_id: &str, seq: i64, content: &str| {
        let body = json!({"worker_id": "mini-main", "run_id": run_id, "seq": seq, "checkpoint_type": "branch_diff", "format": "patch",
            "content": content, "size": content.len(), "sha256": sha256_hex(content)});
        data(call("POST", &format!("/v1/steps/{step_id}/checkpoint"), SHARED, Some(body)), 201);
    };
    // The first run's diff is large enough to move to an object when its run is compacted.
    let first_step =
        data(call("GET", &format!("/v1/runs/{first_run}"), READONLY, None), 200)["run"]["step_id"].as_str().unwrap().to_string();
    let first_patch = format!("diff --git a/a.txt b/a.txt\n+++ b/a.txt\n+{}", line(1, 1, 6_000));
    upload(&first_step, &first_run, 5, &first_patch);
    let read = || data(call("GET", &format!("/v1/tasks/{task_id}/diff"), READONLY, None), 200);
    let before = read();
    assert_eq!((before["available"].as_bool(), before["patch"].as_str()), (Some(true), Some(first_patch.as_str())), "{before}");
    assert_eq!(before["run_id"], first_run.as_str());
    t.advance(301);
    assert_eq!(maintain(&call)["compacted_runs"], json!([first_run]));
    assert_eq!(read(), before, "read back from its object");

    let second_patch = "diff --git a/b.txt b/b.txt\n+++ b/b.txt\n+two\n";
    upload(&second_step, &second_run, 5, second_patch);
    assert_eq!(read()["patch"], second_patch, "the newest diff is the branch as it stands");
    err(&t.get("/v1/tasks/task_missing/diff", READONLY), 404, "task_not_found");
}
