//! SPEC §17 with `control-local` as an operator runs it: the timer compacts on its own, into
//! files beside the database, and a compaction killed with SIGKILL at any moment loses nothing.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::process::{start, unsafe_kill};
use crate::storage::{maintain, snapshot, two_runs, via_base};
use crate::support::*;

fn env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("CONTROL_API_BROWSER_ADMIN_TOKEN", BROWSER_ADMIN),
        ("CONTROL_API_OPS_ADMIN_TOKEN", OPS_ADMIN),
        ("CONTROL_API_READONLY_TOKEN", READONLY),
        ("BAA_SHARED_TOKEN", SHARED),
        ("CONTROL_API_COMPACT_AFTER_SEC", "0"),
    ];
    env.extend_from_slice(extra);
    env
}

#[test]
fn the_timer_compacts_finished_runs_into_files_beside_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("control.db");
    let server = start(&db, &env(&[("CONTROL_API_MAINTENANCE_INTERVAL_SEC", "1")]));
    let base = server.base.clone();
    let call = via_base(&base);
    let (task_id, first_run, _, _) = two_runs(&call, "mini-main");
    let before = snapshot(&call, &task_id, &first_run);
    let run_dir = dir.path().join("control.blobs").join("runs").join(&first_run);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&run_dir).map_or(0, |entries| entries.count()) < 3 {
        assert!(Instant::now() < deadline, "no objects in {} after 20 s", run_dir.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The objects appear before their rows go: wait for the timer's own report of the slice.
    let mut log = Vec::new();
    while !log.iter().any(|line: &String| line.contains("storage upkeep: 1 runs compacted")) {
        assert!(Instant::now() < deadline, "the timer did not report: {log:?}");
        log.extend(server.stderr.recv_timeout(Duration::from_secs(1)).ok());
    }
    assert_eq!(snapshot(&call, &task_id, &first_run), before);
    assert_eq!(maintain(&call)["compacted_runs"], json!([]), "the timer did it");
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn a_compaction_killed_at_any_moment_resumes_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("control.db");
    let quiet = env(&[("CONTROL_API_MAINTENANCE_INTERVAL_SEC", "0")]);
    let server = start(&db, &quiet);
    let mut tasks = Vec::new();
    {
        let call = via_base(&server.base);
        for index in 0..6 {
            let (task_id, first_run, _, _) = two_runs(&call, &format!("mini-{index}"));
            tasks.push((snapshot(&call, &task_id, &first_run), task_id, first_run));
        }
    }
    let (status, _) = server.terminate();
    assert!(status.success());
    // Each life asks for a slice and is killed some way into it (a run takes ~200 ms in a dev
    // build): before, during and after object writes, between a write and its batch. What a
    // life finished stays done; the next life goes on from there.
    for delay_ms in [40, 150, 260, 370, 480, 600, 720, 850, 1000, 1200] {
        let server = start(&db, &quiet);
        let base = server.base.clone();
        let asking = std::thread::spawn(move || {
            let auth = format!("Bearer {OPS_ADMIN}");
            crate::client::Connection::open(&base)
                .and_then(|mut connection| connection.send("POST", "/v1/system/maintenance", &[("authorization", &auth)], b"", false))
                .map(|response| response.status)
        });
        std::thread::sleep(Duration::from_millis(delay_ms));
        let mut child = server.child;
        unsafe_kill(child.id(), "KILL");
        child.wait().unwrap();
        let _ = asking.join();
    }
    let server = start(&db, &quiet);
    let base = server.base.clone();
    let call = via_base(&base);
    let mut left_to_compact = 0;
    let started = Instant::now();
    for _ in 0..20 {
        let report = maintain(&call);
        left_to_compact += report["compacted_runs"].as_array().unwrap().len();
        if report["compacted_runs"] == json!([]) && report["more"] == false {
            break;
        }
    }
    eprintln!("runs the killed lives left to compact: {left_to_compact} of {}, in {:?}", tasks.len(), started.elapsed());
    assert!(left_to_compact < tasks.len(), "the killed lives did compact some runs: the kills landed in the middle of the work");
    for (before, task_id, first_run) in &tasks {
        assert_eq!(&snapshot(&call, task_id, first_run), before, "{task_id} reads as before the kills");
    }
    let (status, _) = server.terminate();
    assert!(status.success());
}
