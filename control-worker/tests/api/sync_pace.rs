//! SPEC §14: the pace of `agents.sync` — a standby paced to the lease's expiry, held syncs, a
//! full batch that does not hurry the next sync — and the terms a holder gets through syncs.

use serde_json::{json, Value};

use crate::support::*;
use crate::sync::{sync, sync_body, verdicts};

#[test]
fn a_standby_is_paced_to_the_lease_expiry_and_takes_over_just_after_it() {
    let t = Target::new();
    let term = sync(&t, "mini-main", "mini", None, 0, json!({}))["lease"]["term"].as_i64().unwrap();
    let idle = sync(&t, "mini-main", "mini", Some(term), 0, json!({}));
    assert_eq!(idle["next_sync_ms"], 10_000, "an idle leader: the idle interval (TTL 30 s)");
    let far = sync(&t, "mac-standby", "mac", None, 0, json!({}));
    assert_eq!(far["next_sync_ms"], 10_000, "{far}");
    t.advance(26);
    let near = sync(&t, "mac-standby", "mac", None, 0, json!({}));
    assert_eq!(near["next_sync_ms"], 4_500, "back half a second after the expiry: {near}");
    t.advance(4);
    let took = sync(&t, "mac-standby", "mac", None, 0, json!({}));
    assert_eq!(took["lease"]["is_leader"], true);
    assert_eq!(took["lease"]["term"], term + 1);
    // The old leader hears it did not renew in time, and the release of a node that does not
    // hold the lease changes nothing.
    let late = sync(&t, "mini-main", "mini", Some(term), 0, json!({}));
    assert_eq!(late["lease"]["is_leader"], false);
    assert_eq!(late["leader_writes"], "fenced");
    let mut release = sync_body("mini-main", "mini", Some(term), 0, json!({}));
    release["lease"]["wish"] = "release".into();
    let released = ok(&t.post("/v1/agents/sync", SHARED, release), 200);
    assert_eq!(released["lease"]["holder_id"], "mac-standby");
    let mut release = sync_body("mac-standby", "mac", Some(term + 1), 0, json!({}));
    release["lease"]["wish"] = "release".into();
    let released = ok(&t.post("/v1/agents/sync", SHARED, release), 200);
    assert_eq!(released["lease"]["holder_id"], Value::Null, "a graceful release frees the lease at once");
}

#[test]
fn heartbeats_left_out_of_a_full_batch_do_not_hurry_the_next_sync() {
    let t = Target::new();
    let term = sync(&t, "mini-main", "mini", None, 0, json!({}))["lease"]["term"].as_i64().unwrap();
    let runs: Vec<Value> = (0..30).map(|index| json!({"step_id": format!("s{index}"), "run_id": format!("s{index}.a1")})).collect();
    let data = sync(&t, "mini-main", "mini", Some(term), 1, json!({"runs": runs}));
    let verdicts = verdicts(&data, "runs");
    assert!(verdicts.contains(&"deferred".to_string()), "{verdicts:?}");
    assert_eq!(data["next_sync_ms"], 5_000, "a host running steps: the busy pace, not at once");
}

#[test]
fn a_quiet_standby_is_held_for_what_it_allows_and_comes_back_for_the_rest() {
    let t = Target::new();
    sync(&t, "mini-main", "mini", None, 0, json!({}));
    let busy = sync(&t, "mac-standby", "mac", None, 0, json!({"hold_ms": 8_000, "more_output": true}));
    assert_eq!(busy["next_sync_ms"], 3_000, "output waiting: not held, paced at 3 s: {busy}");
    let not_asked = sync(&t, "mac-standby", "mac", None, 0, json!({}));
    assert_eq!(not_asked["next_sync_ms"], 10_000, "{not_asked}");
    // Held 8 s (the lease stayed with the leader), then back after the rest of the 10 s pace.
    let held = sync(&t, "mac-standby", "mac", None, 0, json!({"hold_ms": 8_000}));
    assert_eq!(held["next_sync_ms"], 2_000, "{held}");
    assert_eq!(held["lease"]["holder_id"], "mini-main");
}

#[test]
fn a_held_standby_is_answered_at_once_when_the_lease_expires_and_then_takes_it() {
    let t = Target::new();
    let term = sync(&t, "mini-main", "mini", None, 0, json!({}))["lease"]["term"].as_i64().unwrap();
    t.advance(27);
    // Due half a second after the expiry (3.5 s): held, and answered when the lease ran out.
    let held = sync(&t, "mac-standby", "mac", None, 0, json!({"hold_ms": 8_000}));
    assert_eq!(held["next_sync_ms"], 0, "come back at once: {held}");
    let took = sync(&t, "mac-standby", "mac", None, 0, json!({"hold_ms": 8_000}));
    assert_eq!(took["lease"]["is_leader"], true, "{took}");
    assert_eq!(took["lease"]["term"], term + 1);
}

#[test]
fn a_hold_longer_than_the_limit_is_refused_naming_the_field() {
    let t = Target::new();
    let response = t.post("/v1/agents/sync", SHARED, sync_body("mac-standby", "mac", None, 0, json!({"hold_ms": 25_001})));
    let error = err(&response, 400, "invalid_request");
    assert_eq!(error["field"], "hold_ms", "{error}");
}

/// A holder that no longer knows its term (it restarted, or its local deadline passed) is given
/// a new term, not a renewal: a release it sent in its earlier life, arriving late, is refused
/// and the lease stays with the node that now believes it leads (the simulation's seed 18651).
#[test]
fn a_holder_that_lost_its_term_gets_a_new_one_and_its_late_release_is_refused() {
    let t = Target::new();
    let first = sync(&t, "mini-main", "mini", None, 0, json!({}));
    assert_eq!((first["lease"]["is_leader"].clone(), first["lease"]["operation"].clone()), (json!(true), json!("acquire")));
    let term = first["lease"]["term"].as_i64().unwrap();
    let renewed = sync(&t, "mini-main", "mini", Some(term), 0, json!({}));
    assert_eq!((renewed["lease"]["operation"].clone(), renewed["lease"]["term"].clone()), (json!("renew"), json!(term)));
    // A new life asks without a term.
    let again = sync(&t, "mini-main", "mini", None, 0, json!({}));
    assert_eq!(again["lease"]["operation"], "acquire", "{again}");
    assert_eq!((again["lease"]["is_leader"].clone(), again["lease"]["term"].clone()), (json!(true), json!(term + 1)));
    // The earlier life's release of its term comes in late: nothing is released.
    let release = json!({"lease": {"wish": "release", "ttl_sec": 30, "term": term}});
    let late = sync(&t, "mini-main", "mini", None, 0, release);
    assert_eq!((late["lease"]["holder_id"].clone(), late["lease"]["term"].clone()), (json!("mini-main"), json!(term + 1)), "{late}");
    let renewed = sync(&t, "mini-main", "mini", Some(term + 1), 0, json!({}));
    assert_eq!((renewed["lease"]["operation"].clone(), renewed["lease"]["is_leader"].clone()), (json!("renew"), json!(true)));
}
