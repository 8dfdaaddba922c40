//! SPEC §5: the leader lease, case by case in the style of client-go's leader election table,
//! then concurrent acquirers over separate connections to one database.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::request;
use crate::support::*;

struct Case {
    name: &'static str,
    /// Prepares the lease: each entry is (controller, preferred, seconds to advance after).
    setup: &'static [(&'static str, bool, i64)],
    caller: &'static str,
    preferred: bool,
    expect_leader: bool,
    expect_operation: &'static str,
    expect_holder: Option<&'static str>,
    expect_term: i64,
}

const TTL: i64 = 10;

#[test]
fn acquire_table() {
    let cases = [
        Case {
            name: "no row",
            setup: &[],
            caller: "a",
            preferred: false,
            expect_leader: true,
            expect_operation: "acquire",
            expect_holder: Some("a"),
            expect_term: 1,
        },
        Case {
            name: "held and live by another",
            setup: &[("a", false, 1)],
            caller: "b",
            preferred: false,
            expect_leader: false,
            expect_operation: "none",
            expect_holder: Some("a"),
            expect_term: 1,
        },
        Case {
            name: "renew own keeps the term",
            setup: &[("a", false, 5)],
            caller: "a",
            preferred: false,
            expect_leader: true,
            expect_operation: "renew",
            expect_holder: Some("a"),
            expect_term: 1,
        },
        Case {
            name: "expired: another takes it with term + 1",
            setup: &[("a", false, TTL)],
            caller: "b",
            preferred: false,
            expect_leader: true,
            expect_operation: "acquire",
            expect_holder: Some("b"),
            expect_term: 2,
        },
        Case {
            name: "expired: even the old holder gets a new term",
            setup: &[("a", false, TTL + 3)],
            caller: "a",
            preferred: false,
            expect_leader: true,
            expect_operation: "acquire",
            expect_holder: Some("a"),
            expect_term: 2,
        },
        Case {
            name: "preferred asking does not take a live lease",
            setup: &[("s", false, 1)],
            caller: "p",
            preferred: true,
            expect_leader: false,
            expect_operation: "none",
            expect_holder: Some("s"),
            expect_term: 1,
        },
        Case {
            name: "holder yields to a fresh preferred wish",
            setup: &[("s", false, 1), ("p", true, 1)],
            caller: "s",
            preferred: false,
            expect_leader: false,
            expect_operation: "hand_over",
            expect_holder: None,
            expect_term: 1,
        },
        Case {
            name: "a stale preferred wish is ignored",
            setup: &[("s", false, 1), ("p", true, TTL + 1), ("s", false, 1)],
            caller: "s",
            preferred: false,
            expect_leader: true,
            expect_operation: "renew",
            expect_holder: Some("s"),
            expect_term: 2,
        },
        Case {
            name: "a freed lease waits for the preferred one while its wish is fresh",
            setup: &[("s", false, 1), ("p", true, 1), ("s", false, 1)],
            caller: "c",
            preferred: false,
            expect_leader: false,
            expect_operation: "none",
            expect_holder: None,
            expect_term: 1,
        },
        Case {
            name: "the preferred one waits for the handed-over lease to expire",
            setup: &[("s", false, 1), ("p", true, 1), ("s", false, 1)],
            caller: "p",
            preferred: true,
            expect_leader: false,
            expect_operation: "none",
            expect_holder: None,
            expect_term: 1,
        },
        Case {
            name: "the preferred one takes the handed-over lease once it expired",
            setup: &[("s", false, 1), ("p", true, 1), ("s", false, TTL)],
            caller: "p",
            preferred: true,
            expect_leader: true,
            expect_operation: "acquire",
            expect_holder: Some("p"),
            expect_term: 2,
        },
    ];
    for case in cases {
        let t = Target::new();
        for (controller, preferred, advance) in case.setup {
            acquire(&t, controller, "host", TTL, *preferred);
            t.advance(*advance);
        }
        let answer = acquire(&t, case.caller, "host", TTL, case.preferred);
        assert_eq!(answer["is_leader"], case.expect_leader, "{}: {answer}", case.name);
        assert_eq!(answer["operation"], case.expect_operation, "{}: {answer}", case.name);
        assert_eq!(answer["holder_id"].as_str(), case.expect_holder, "{}: {answer}", case.name);
        assert_eq!(answer["term"], case.expect_term, "{}: {answer}", case.name);
        assert_eq!(answer["lease"]["term"], answer["term"], "{}", case.name);
        if case.expect_leader {
            assert_eq!(answer["lease_expires_at"], t.now() + TTL, "{}: expiry from the server clock", case.name);
        }
    }
}

#[test]
fn the_server_clock_decides_not_the_client() {
    let t = Target::new();
    let answer = ok(&t.post("/v1/leader/acquire", SHARED, json!({"controller_id": "a", "host": "h", "ttl_sec": 10, "now": 1})), 200);
    assert_eq!(answer["renewed_at"], START_TIME);
    assert_eq!(answer["lease_expires_at"], START_TIME + 10);
}

#[test]
fn release_lets_another_lead_at_once_and_refuses_non_holders() {
    let t = Target::new();
    let a = acquire(&t, "a", "ha", TTL, false);
    let release = |id: &str, term: Option<i64>| {
        let mut body = json!({"controller_id": id});
        if let Some(term) = term {
            body["term"] = json!(term);
        }
        t.post("/v1/leader/release", SHARED, body)
    };
    err(&release("b", None), 409, "not_leader");
    err(&release("a", Some(7)), 409, "stale_term");
    assert_eq!(acquire(&t, "b", "hb", TTL, false)["is_leader"], false);
    let released = ok(&release("a", Some(a["term"].as_i64().unwrap())), 200);
    assert_eq!(released["released"], true);
    assert_eq!(released["lease"]["holder_id"], Value::Null);
    // No waiting for the TTL: the next caller leads in the next term.
    let b = acquire(&t, "b", "hb", TTL, false);
    assert_eq!((b["is_leader"].clone(), b["term"].clone()), (json!(true), json!(2)));
    err(&release("a", None), 409, "not_leader");
}

#[test]
fn a_released_preferred_leader_does_not_block_the_standby() {
    let t = Target::new();
    acquire(&t, "primary", "mini", TTL, true);
    ok(&t.post("/v1/leader/release", SHARED, json!({"controller_id": "primary"})), 200);
    let standby = acquire(&t, "standby", "mac", TTL, false);
    assert_eq!(standby["is_leader"], true, "{standby}");
}

#[test]
fn stale_terms_are_refused_on_every_leader_write_and_change_nothing() {
    let t = Target::new();
    let old = leader(&t);
    let task_id = create_task(&t, json!({}));
    t.advance(31);
    let new = acquire(&t, "mac-standby", "mac", 30, false);
    assert_eq!(new["term"], old.term + 1);

    let details = err(&claim_tasks(&t, &old, 5), 409, "stale_term");
    assert_eq!(details["current_term"], old.term + 1);
    assert_eq!(task(&t, &task_id)["status"], "queued");
    err(&t.post("/v1/steps/reap", SHARED, json!({"controller_id": old.id, "term": old.term})), 409, "stale_term");
    // The current term but the wrong controller is not a leader.
    err(&t.post("/v1/steps/reap", SHARED, json!({"controller_id": old.id, "term": old.term + 1})), 409, "not_leader");

    // A task claimed in the old term cannot be planned by the old leader after it lost the lease.
    let t = Target::new();
    let old = leader(&t);
    let task_id = create_task(&t, json!({}));
    ok(&claim_tasks(&t, &old, 1), 200);
    t.advance(31);
    let new = acquire(&t, "mac-standby", "mac", 30, false);
    err(&plan(&t, &old, &task_id, json!([shell_step("true", 1)])), 409, "stale_term");
    let detail = task(&t, &task_id);
    assert_eq!(detail["status"], "planning");
    assert_eq!(detail["steps"].as_array().unwrap().len(), 0, "no steps written");
    // The new leader reaps the orphaned planning task back to the queue and plans it itself.
    let new_leader = Leader { id: "mac-standby".into(), host: "mac".into(), term: new["term"].as_i64().unwrap() };
    let reaped = ok(&t.post("/v1/steps/reap", SHARED, json!({"controller_id": new_leader.id, "term": new_leader.term})), 200);
    assert_eq!(reaped["requeued_tasks"], json!([task_id]));
    ok(&claim_tasks(&t, &new_leader, 1), 200);
    ok(&plan(&t, &new_leader, &task_id, json!([shell_step("true", 1)])), 200);
}

#[test]
fn a_task_left_planning_by_a_restarted_leader_is_requeued_in_the_same_term() {
    // The leader claims a task and dies before planning it; restarted under the same id it
    // renews the same term, so only the claim's age tells the task is orphaned.
    let t = Target::new();
    let leader = leader(&t);
    let task_id = create_task(&t, json!({}));
    ok(&claim_tasks(&t, &leader, 1), 200);
    let reap = |t: &Target| ok(&t.post("/v1/steps/reap", SHARED, json!({"controller_id": leader.id, "term": leader.term})), 200);
    t.advance(20);
    assert_eq!(acquire(&t, "mini-main", "mini", 30, true)["term"], leader.term, "renewed, same term");
    assert_eq!(reap(&t)["requeued_tasks"], json!([]), "a fresh claim is left alone");
    t.advance(11);
    assert_eq!(acquire(&t, "mini-main", "mini", 30, true)["term"], leader.term);
    assert_eq!(reap(&t)["requeued_tasks"], json!([task_id]));
    assert_eq!(task(&t, &task_id)["status"], "queued");
    ok(&claim_tasks(&t, &leader, 1), 200);
    ok(&plan(&t, &leader, &task_id, json!([shell_step("true", 1)])), 200);
}

#[test]
fn preferred_hand_back_never_has_two_leaders() {
    let t = Target::new();
    // The standby leads while the primary is away.
    let standby = acquire(&t, "mac-standby", "mac", TTL, false);
    assert_eq!(standby["is_leader"], true);
    let mut timeline: Vec<(i64, String, i64)> = vec![(t.now(), "mac-standby".into(), 1)];
    // The primary returns: it is refused while the standby's lease is live...
    t.advance(1);
    let primary = acquire(&t, "mini-main", "mini", TTL, true);
    assert_eq!(primary["is_leader"], false);
    assert_eq!(primary["holder_id"], "mac-standby");
    // ...the standby's next renewal hands over instead of renewing...
    t.advance(1);
    let standby = acquire(&t, "mac-standby", "mac", TTL, false);
    assert_eq!((standby["is_leader"].clone(), standby["operation"].clone()), (json!(false), json!("hand_over")));
    // ...the lease it was granted runs out first (the standby may hear of the hand-over late,
    // and believes it leads until then)...
    let until = standby["lease_expires_at"].as_i64().unwrap();
    assert!(until > t.now(), "the hand-over keeps the expiry the standby was granted");
    t.advance(until - t.now() - 1);
    let early = acquire(&t, "mini-main", "mini", TTL, true);
    assert_eq!((early["is_leader"].clone(), early["holder_id"].clone()), (json!(false), Value::Null));
    assert_eq!(acquire(&t, "mac-standby", "mac", TTL, false)["is_leader"], false, "nor does the standby take it back");
    // ...and only then does the primary lead, in a new term.
    t.advance(1);
    let primary = acquire(&t, "mini-main", "mini", TTL, true);
    assert_eq!((primary["is_leader"].clone(), primary["term"].clone()), (json!(true), json!(2)));
    timeline.push((t.now(), "mini-main".into(), 2));
    // No flapping: the standby keeps asking and never gets it while the primary renews.
    for _ in 0..20 {
        t.advance(2);
        assert_eq!(acquire(&t, "mac-standby", "mac", TTL, false)["is_leader"], false);
        assert_eq!(acquire(&t, "mini-main", "mini", TTL, true)["operation"], "renew");
    }
    assert_eq!(timeline.len(), 2);
}

/// N threads acquire through separate servers (separate SQLite connections) on one database
/// while the clock jumps past the TTL: every term has exactly one leader.
#[test]
fn concurrent_acquirers_get_exactly_one_leader_per_term() {
    let t = Target::new();
    let siblings = t.siblings(3);
    let bases: Vec<String> = std::iter::once(t.base.clone()).chain(siblings.bases.iter().cloned()).collect();
    let grants: Arc<Mutex<HashMap<i64, Vec<String>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(20);
    let threads: Vec<_> = (0..8)
        .map(|index| {
            let base = bases[index % bases.len()].clone();
            let grants = grants.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let id = format!("controller-{index}");
                let auth = format!("Bearer {SHARED}");
                let mut renewals_in_a_row = 0;
                for _ in 0..150 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let body = json!({"controller_id": id, "host": "h", "ttl_sec": 3}).to_string();
                    let response = request(
                        &base,
                        "POST",
                        "/v1/leader/acquire",
                        &[("authorization", &auth), ("content-type", "application/json")],
                        body.as_bytes(),
                    );
                    let answer = ok(&response, 200);
                    if answer["is_leader"] == true {
                        grants.lock().unwrap().entry(answer["term"].as_i64().unwrap()).or_default().push(id.clone());
                        renewals_in_a_row += 1;
                        // A leader that goes quiet lets its lease expire, so terms change hands.
                        if renewals_in_a_row == 5 {
                            renewals_in_a_row = 0;
                            std::thread::sleep(Duration::from_millis(120));
                        }
                    }
                }
            })
        })
        .collect();
    // Move time on so leases keep expiring while the threads race.
    let mover = {
        let clock = t.clock.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(15));
                clock.advance(1);
            }
        })
    };
    for thread in threads {
        thread.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    mover.join().unwrap();
    let grants = grants.lock().unwrap();
    assert!(grants.len() >= 5, "leases expired and changed hands several times: {} terms", grants.len());
    for (term, holders) in grants.iter() {
        let first = &holders[0];
        assert!(holders.iter().all(|holder| holder == first), "term {term} had two leaders: {holders:?}");
    }
}
