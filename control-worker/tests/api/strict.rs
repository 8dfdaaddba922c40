//! SPEC §18: every request body is checked against its fields. Generated from the route table
//! (like the auth matrix): an unknown field is refused on every route that takes a body, before
//! anything is looked up or written; a misplaced one names where it belongs.

use serde_json::{json, Value};
use shared::body_fields::{request_fields, Field, Shape};
use shared::{Role, ROUTES};

use crate::support::*;

fn token_for(route: &shared::Route) -> &'static str {
    if route.admits(&[Role::BrowserAdmin]) {
        BROWSER_ADMIN
    } else {
        SHARED
    }
}

fn concrete_path(pattern: &str) -> String {
    pattern.split('/').map(|segment| if segment.starts_with(':') { "x" } else { segment }).collect::<Vec<_>>().join("/")
}

/// A body with every object of the table present (one item in each list), an unknown field
/// placed at `depth` objects down the first nested path, and where it must be named.
fn body_with_unknown(fields: &[Field], depth: usize) -> (Value, String) {
    let mut body = serde_json::Map::new();
    for field in fields {
        if let Shape::Object(inner) | Shape::Objects(inner) = field.shape {
            if depth > 0 && !inner.is_empty() {
                let (nested, path) = body_with_unknown(inner, depth - 1);
                return match field.shape {
                    Shape::Objects(_) => {
                        body.insert(field.name.into(), json!([nested]));
                        (Value::Object(body), format!("{}[0].{path}", field.name))
                    }
                    _ => {
                        body.insert(field.name.into(), nested);
                        (Value::Object(body), format!("{}.{path}", field.name))
                    }
                };
            }
        }
    }
    body.insert("zz_unknown".into(), json!(1));
    (Value::Object(body), "zz_unknown".into())
}

#[test]
fn every_route_with_a_body_refuses_an_unknown_field_at_every_depth() {
    let t = Target::new();
    let mut checked = 0;
    for route in ROUTES.iter().filter(|route| route.method == shared::Method::Post) {
        let fields = request_fields(route.action).unwrap_or_else(|| panic!("{} takes a body: it needs its fields", route.id));
        for depth in 0..3 {
            let (body, path) = body_with_unknown(fields, depth);
            let response = t.post(&concrete_path(route.path), token_for(route), body.clone());
            let details = invalid(&response, &path);
            assert!(details["rule"].as_str().unwrap().starts_with("unknown field"), "{}: {details}", route.id);
            checked += 1;
            if !path.contains('.') {
                break;
            }
        }
    }
    assert!(checked >= 20, "{checked} bodies checked");
    for route in ROUTES.iter().filter(|route| route.method == shared::Method::Get) {
        assert!(request_fields(route.action).is_none(), "{} reads no body", route.id);
    }
}

#[test]
fn a_misplaced_base_ref_is_refused_with_where_it_belongs_and_nothing_is_created() {
    let t = Target::new();
    let body = json!({"repo": "/srv/repo", "task_type": "shell", "title": "t", "goal": "g", "base_ref": "task:T-A"});
    let details = invalid(&t.post("/v1/tasks", BROWSER_ADMIN, body), "base_ref");
    assert_eq!(details["rule"], "unknown field; did you mean constraints.base_ref?");
    let listed = ok(&t.get("/v1/tasks", BROWSER_ADMIN), 200);
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 0, "nothing half-written: {listed}");

    let typo = json!({"repo": "/srv/repo", "task_type": "shell", "title": "t", "goal": "g", "constraints": {"max_round": 2}});
    let details = invalid(&t.post("/v1/tasks", BROWSER_ADMIN, typo), "constraints.max_round");
    assert_eq!(details["rule"], "unknown field; did you mean max_rounds?");
    let message = t.post("/v1/tasks", BROWSER_ADMIN, json!({"titel": "t"})).json()["message"].clone();
    assert_eq!(message, "unknown field titel; did you mean title?");
}

#[test]
fn fields_clients_send_on_purpose_stay_accepted() {
    let t = Target::new();
    let body =
        json!({"repo": "/srv/repo", "task_type": "shell", "title": "t", "goal": "g", "now": 1, "metadata": {"free": {"form": true}}});
    ok(&t.post("/v1/tasks", BROWSER_ADMIN, body), 201);
    ok(&t.post("/v1/system/pause", BROWSER_ADMIN, json!({"reason": "r", "now": 2})), 200);
}
