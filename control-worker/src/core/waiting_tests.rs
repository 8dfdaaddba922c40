//! The waiting reasons as a table: each row a situation and the code (and a piece of the
//! message) it must give.

use serde_json::json;
use shared::status::{StepStatus, SystemMode, TaskStatus, WaitingCode};
use shared::wire::{Step, Task};

use super::*;

const NOW: i64 = 10_000;

fn task(status: TaskStatus) -> Task {
    serde_json::from_value(json!({
        "task_id": "task_b", "repo": "/srv/repo", "task_type": "codex", "title": "B", "goal": "g", "priority": 50,
        "status": status, "constraints": {}, "acceptance": [], "metadata": {}, "target_host": null, "base_ref": "HEAD",
        "branch_name": "baa/task_b", "planner_provider": null, "planning_strategy": null, "claimed_by": null,
        "claim_term": null, "created_at": 9_000, "updated_at": 9_000, "started_at": 9_100, "finished_at": null,
        "status_reason": null,
    }))
    .unwrap()
}

fn step(worker_kind: &str) -> Step {
    serde_json::from_value(json!({
        "step_id": "task_b.s0", "task_id": "task_b", "step_index": 0, "step_kind": if worker_kind == "shell" { "shell" } else { "agent" }, "worker_kind": worker_kind,
        "title": "agent", "command": null, "prompt": "p", "timeout_sec": 60, "status": StepStatus::Ready, "attempt": 0,
        "max_attempts": 1, "target_host": null, "worker_id": null, "current_run_id": null, "heartbeat_deadline_at": null,
        "created_at": 9_200, "started_at": null, "finished_at": null, "exit_code": null, "summary": null, "error": null,
        "metadata": {},
    }))
    .unwrap()
}

fn related(key: &str, status: TaskStatus, created_at: i64) -> Related {
    Related { task_id: format!("task_{key}"), key: Some(key.into()), status, created_at, updated_at: 9_500 }
}

fn host(name: &str, last_heard_at: i64, free: i64, kinds: &[&str], disk_low: bool) -> HostFacts {
    HostFacts {
        host: name.into(),
        last_heard_at,
        free,
        worker_kinds: Some(kinds.iter().map(|kind| kind.to_string()).collect()),
        disk_low,
        account: Some(format!("{name}-account")),
    }
}

fn parked(account: &str) -> shared::wire::ParkedAccount {
    shared::wire::ParkedAccount {
        account: account.into(),
        parked_until: NOW + 600,
        message: "usage limit reached".into(),
        parked_at: NOW - 60,
        parked_by: "mini-main".into(),
    }
}

fn fleet() -> Fleet {
    Fleet {
        now: NOW,
        mode: SystemMode::Running,
        mode_since: 0,
        led: true,
        hosts: vec![host("mini", NOW - 5, 1, &["shell", "codex"], false), host("mac", NOW - 5, 1, &["shell"], false)],
        parked: Vec::new(),
        liveness_sec: 90,
        host_lost_after_sec: 600,
    }
}

struct Case {
    what: &'static str,
    status: TaskStatus,
    dependencies: Vec<Related>,
    conflicts: Vec<Related>,
    worker_kind: &'static str,
    assigned: Option<&'static str>,
    target: Option<&'static str>,
    change: fn(&mut Fleet),
    expect: Option<(WaitingCode, &'static str)>,
}

fn case(what: &'static str, status: TaskStatus, expect: Option<(WaitingCode, &'static str)>) -> Case {
    Case {
        what,
        status,
        dependencies: Vec::new(),
        conflicts: Vec::new(),
        worker_kind: "codex",
        assigned: None,
        target: None,
        change: |_| {},
        expect,
    }
}

#[test]
fn every_waiting_reason_from_its_facts() {
    use TaskStatus::{Queued, Running};
    let cases = vec![
        case("nothing holds a queued task", Queued, None),
        Case { change: |fleet| fleet.mode = SystemMode::Paused, ..case("paused", Queued, Some((WaitingCode::Paused, "paused"))) },
        Case { change: |fleet| fleet.mode = SystemMode::Draining, ..case("draining", Queued, Some((WaitingCode::Draining, "draining"))) },
        Case {
            dependencies: vec![related("T-A", TaskStatus::Succeeded, 1), related("T-C", TaskStatus::Running, 2)],
            ..case("a dependency running", Queued, Some((WaitingCode::Dependency, "T-C (task_T-C) to succeed (it is running)")))
        },
        Case {
            dependencies: vec![related("T-A", TaskStatus::Review, 1)],
            ..case("a dependency in review", Queued, Some((WaitingCode::Review, "T-A (task_T-A) to be approved")))
        },
        Case {
            conflicts: vec![related("T-C", TaskStatus::Running, 9_500)],
            ..case("an overlapping scope running", Queued, Some((WaitingCode::Scope, "T-C (task_T-C), whose write scope")))
        },
        Case {
            conflicts: vec![related("T-E", TaskStatus::Queued, 8_000)],
            ..case("an overlapping scope queued earlier", Queued, Some((WaitingCode::Scope, "T-E")))
        },
        Case { conflicts: vec![related("T-L", TaskStatus::Queued, 9_900)], ..case("an overlapping scope queued later", Queued, None) },
        Case { target: Some("ghost"), ..case("a target host never seen", Queued, Some((WaitingCode::HostLost, "never heard from"))) },
        Case { change: |fleet| fleet.led = false, ..case("no leader", Queued, Some((WaitingCode::NoHost, "no host leads"))) },
        case("a ready step with room", Running, None),
        Case {
            change: |fleet| fleet.mode = SystemMode::Paused,
            ..case("a ready step, paused", Running, Some((WaitingCode::Paused, "paused")))
        },
        Case { change: |fleet| fleet.mode = SystemMode::Draining, ..case("a ready step, draining", Running, None) },
        Case {
            worker_kind: "gemini",
            ..case("no host offers the kind", Running, Some((WaitingCode::NoHost, "no live host offers worker kind gemini")))
        },
        Case {
            change: |fleet| fleet.hosts[0].free = 0,
            ..case("the only codex host is full", Running, Some((WaitingCode::HostBusy, "every host offering codex")))
        },
        Case {
            change: |fleet| fleet.hosts[0].disk_low = true,
            ..case("the only codex host is low on disk", Running, Some((WaitingCode::Disk, "minimum free disk")))
        },
        Case {
            assigned: Some("mini"),
            change: |fleet| fleet.hosts[0].free = 0,
            ..case("its host is full", Running, Some((WaitingCode::HostBusy, "host mini is running as many steps")))
        },
        Case {
            assigned: Some("mini"),
            change: |fleet| fleet.hosts[0].last_heard_at = NOW - 300,
            ..case(
                "its host is quiet",
                Running,
                Some((WaitingCode::HostLost, "host mini not heard from since 1970-01-01 02:41 UTC; after 600 s")),
            )
        },
        Case {
            assigned: Some("mac"),
            ..case("its host lacks the kind", Running, Some((WaitingCode::NoHost, "host mac does not offer worker kind codex")))
        },
        Case { assigned: Some("mini"), change: |fleet| fleet.hosts[1].free = 0, ..case("another host is full", Running, None) },
        Case {
            change: |fleet| fleet.parked.push(parked("mini-account")),
            ..case("the only codex host's account is parked", Running, Some((WaitingCode::Quota, "account mini-account is parked")))
        },
        Case {
            assigned: Some("mini"),
            change: |fleet| fleet.parked.push(parked("mini-account")),
            ..case("its host's account is parked", Running, Some((WaitingCode::Quota, "until 1970-01-01 02:56 UTC (usage limit")))
        },
        Case {
            worker_kind: "shell",
            change: |fleet| fleet.parked.push(parked("mini-account")),
            ..case("a shell step goes on while the account is parked", Running, None)
        },
        Case {
            assigned: Some("mini"),
            status: Running,
            change: |fleet| fleet.hosts[0].last_heard_at = NOW - 300,
            ..case("its step runs on a quiet host", TaskStatus::Running, Some((WaitingCode::HostLost, "host mini not heard from")))
        },
    ];
    let mut codes = std::collections::BTreeSet::new();
    for case in cases {
        let mut task = task(case.status);
        task.assigned_host = case.assigned.map(str::to_string);
        task.target_host = case.target.map(str::to_string);
        let step = step(case.worker_kind);
        let mut fleet = fleet();
        (case.change)(&mut fleet);
        let facts = TaskFacts {
            task: &task,
            dependencies: case.dependencies,
            conflicts: case.conflicts,
            ready_step: (case.status == Running && !case.what.contains("runs on")).then_some(&step),
        };
        let got = waiting_reason(&facts, &fleet);
        match (case.expect, got) {
            (None, None) => {}
            (Some((code, text)), Some(reason)) => {
                assert_eq!(reason.code, code, "{}: {reason:?}", case.what);
                assert!(reason.message.contains(text), "{}: {:?} lacks {text:?}", case.what, reason.message);
                codes.insert(code.as_str());
            }
            (expect, got) => panic!("{}: expected {expect:?}, got {got:?}", case.what),
        }
    }
    assert_eq!(codes.len(), WaitingCode::choices().split(", ").count(), "every code is covered: {codes:?}");
}
