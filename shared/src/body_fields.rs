//! The fields each request body may carry (SPEC §18): anything else is refused with a 400 naming
//! it, so a misplaced field (`base_ref` at the top of `tasks.create` instead of under
//! `constraints`) is not silently dropped. The table follows the wire types; the OpenAPI test
//! holds it to their JSON Schemas, and the API suite sends an unknown field to every route.

use serde_json::{Map, Value};

use crate::Action;

/// What a field may hold, as far as unknown fields go (its type is the handler's to check).
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Any JSON value, never looked into: `metadata`, `result`, `progress`, scalars, lists.
    Value,
    /// An object with only these fields.
    Object(&'static [Field]),
    /// An array of objects with only these fields.
    Objects(&'static [Field]),
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub shape: Shape,
}

const fn v(name: &'static str) -> Field {
    Field { name, shape: Shape::Value }
}

const fn object(name: &'static str, fields: &'static [Field]) -> Field {
    Field { name, shape: Shape::Object(fields) }
}

const fn objects(name: &'static str, fields: &'static [Field]) -> Field {
    Field { name, shape: Shape::Objects(fields) }
}

/// Accepted at the top of every body and ignored: clients of the seed send their clock, and the
/// control plane keeps time by its own.
pub const IGNORED_FIELDS: &[&str] = &["now"];

const CONSTRAINTS: &[Field] = &[
    v("target_host"),
    v("base_ref"),
    v("timeout_sec"),
    v("max_attempts"),
    v("deliver"),
    v("remote"),
    v("allow_no_change"),
    v("stall_after_sec"),
    v("max_rounds"),
    v("setup"),
];
const TASK_CREATE: &[Field] = &[
    v("repo"),
    v("task_type"),
    v("title"),
    v("goal"),
    v("priority"),
    object("constraints", CONSTRAINTS),
    v("acceptance"),
    v("metadata"),
    v("key"),
    v("branch"),
    v("depends_on"),
    v("write_scope"),
    v("review"),
];
const CHANGE_REASON: &[Field] = &[v("reason"), v("requested_by")];
const APPROVE: &[Field] = &[v("comment")];
const LINE_COMMENT: &[Field] = &[v("path"), v("line"), v("comment")];
const REJECT: &[Field] = &[v("reason"), v("retry"), objects("comments", LINE_COMMENT)];
const TASKS_CLAIM: &[Field] = &[v("controller_id"), v("host"), v("term"), v("limit")];
const PLANNED_STEP: &[Field] =
    &[v("step_kind"), v("worker_kind"), v("title"), v("command"), v("prompt"), v("timeout_sec"), v("max_attempts"), v("metadata")];
const PLAN_FIELDS: [Field; 5] =
    [v("planner_provider"), v("planning_strategy"), v("base_ref"), v("branch_name"), objects("steps", PLANNED_STEP)];
const TASK_PLAN: &[Field] =
    &[v("controller_id"), v("term"), PLAN_FIELDS[0], PLAN_FIELDS[1], PLAN_FIELDS[2], PLAN_FIELDS[3], PLAN_FIELDS[4]];
const STEPS_CLAIM: &[Field] = &[v("worker_id"), v("host"), v("capacity"), v("worker_kinds"), v("heartbeat_ttl_sec"), v("account")];
const STEP_HEARTBEAT: &[Field] = &[v("worker_id"), v("run_id"), v("heartbeat_ttl_sec"), v("progress"), v("base_commit")];
const CHECKPOINT_FIELDS: [Field; 6] = [v("seq"), v("checkpoint_type"), v("format"), v("content"), v("size"), v("sha256")];
const STEP_CHECKPOINT: &[Field] = &[
    v("worker_id"),
    v("run_id"),
    CHECKPOINT_FIELDS[0],
    CHECKPOINT_FIELDS[1],
    CHECKPOINT_FIELDS[2],
    CHECKPOINT_FIELDS[3],
    CHECKPOINT_FIELDS[4],
    CHECKPOINT_FIELDS[5],
];
const LOG_CHUNK: &[Field] = &[v("seq"), v("stream"), v("text")];
const STEP_LOGS: &[Field] = &[v("worker_id"), v("run_id"), objects("chunks", LOG_CHUNK)];
const TASK_RESULT: &[Field] = &[
    v("base_commit"),
    v("head_commit"),
    v("branch"),
    v("commits"),
    v("files_changed"),
    v("insertions"),
    v("deletions"),
    v("host"),
    v("repo"),
    v("pushed_to"),
    v("pr_url"),
];
const REPORT: &[Field] = &[v("result"), v("risks"), v("next_handoff")];
const USAGE: &[Field] = &[v("input_tokens"), v("output_tokens"), v("cost_usd"), v("model"), v("session_id"), v("agent")];
const QUOTA: &[Field] = &[v("account"), v("resets_at"), v("message")];
const COMPLETION_FIELDS: [Field; 6] =
    [v("summary"), v("exit_code"), v("result"), object("task_result", TASK_RESULT), object("report", REPORT), object("usage", USAGE)];
const STEP_COMPLETE: &[Field] = &[
    v("worker_id"),
    v("run_id"),
    COMPLETION_FIELDS[0],
    COMPLETION_FIELDS[1],
    COMPLETION_FIELDS[2],
    COMPLETION_FIELDS[3],
    COMPLETION_FIELDS[4],
    COMPLETION_FIELDS[5],
];
const FAILURE_FIELDS: [Field; 9] = [
    v("error"),
    v("exit_code"),
    v("blocked"),
    v("needs_human"),
    v("timed_out"),
    object("task_result", TASK_RESULT),
    object("report", REPORT),
    object("usage", USAGE),
    object("quota", QUOTA),
];
const STEP_FAIL: &[Field] = &[
    v("worker_id"),
    v("run_id"),
    FAILURE_FIELDS[0],
    FAILURE_FIELDS[1],
    FAILURE_FIELDS[2],
    FAILURE_FIELDS[3],
    FAILURE_FIELDS[4],
    FAILURE_FIELDS[5],
    FAILURE_FIELDS[6],
    FAILURE_FIELDS[7],
    FAILURE_FIELDS[8],
];
const STEPS_REAP: &[Field] = &[v("controller_id"), v("term")];
const CONTROLLER_HEARTBEAT: &[Field] =
    &[v("controller_id"), v("host"), v("role"), v("priority"), v("status"), v("version"), v("started_at"), v("metadata")];
const LEADER_ACQUIRE: &[Field] = &[v("controller_id"), v("host"), v("ttl_sec"), v("preferred")];
const LEADER_RELEASE: &[Field] = &[v("controller_id"), v("term")];
const LEASE_INTENT: &[Field] = &[v("wish"), v("ttl_sec"), v("preferred"), v("term")];
const RUN_BEAT: &[Field] = &[v("step_id"), v("run_id"), v("progress"), v("base_commit")];
const RUN_COMPLETION: &[Field] = &[
    v("step_id"),
    v("run_id"),
    COMPLETION_FIELDS[0],
    COMPLETION_FIELDS[1],
    COMPLETION_FIELDS[2],
    COMPLETION_FIELDS[3],
    COMPLETION_FIELDS[4],
    COMPLETION_FIELDS[5],
];
const RUN_FAILURE: &[Field] = &[
    v("step_id"),
    v("run_id"),
    FAILURE_FIELDS[0],
    FAILURE_FIELDS[1],
    FAILURE_FIELDS[2],
    FAILURE_FIELDS[3],
    FAILURE_FIELDS[4],
    FAILURE_FIELDS[5],
    FAILURE_FIELDS[6],
    FAILURE_FIELDS[7],
    FAILURE_FIELDS[8],
];
const RUN_LOGS: &[Field] = &[v("step_id"), v("run_id"), objects("chunks", LOG_CHUNK)];
const RUN_CHECKPOINT: &[Field] = &[
    v("step_id"),
    v("run_id"),
    CHECKPOINT_FIELDS[0],
    CHECKPOINT_FIELDS[1],
    CHECKPOINT_FIELDS[2],
    CHECKPOINT_FIELDS[3],
    CHECKPOINT_FIELDS[4],
    CHECKPOINT_FIELDS[5],
];
const TASK_PLAN_ITEM: &[Field] = &[v("task_id"), PLAN_FIELDS[0], PLAN_FIELDS[1], PLAN_FIELDS[2], PLAN_FIELDS[3], PLAN_FIELDS[4]];
const AGENT_SYNC: &[Field] = &[
    v("node_id"),
    v("host"),
    v("role"),
    v("priority"),
    v("status"),
    v("version"),
    v("started_at"),
    object("lease", LEASE_INTENT),
    v("capacity"),
    v("worker_kinds"),
    v("disk_low"),
    v("account"),
    v("agent_cli"),
    v("sandbox"),
    v("heartbeat_ttl_sec"),
    objects("runs", RUN_BEAT),
    objects("completions", RUN_COMPLETION),
    objects("failures", RUN_FAILURE),
    objects("logs", RUN_LOGS),
    objects("checkpoints", RUN_CHECKPOINT),
    objects("plans", TASK_PLAN_ITEM),
    v("more_output"),
    v("events_after"),
    v("events_delivered"),
    v("hold_ms"),
];

/// The fields of each route's body; `None` for a route that reads no body (a GET). A `POST`
/// that takes nothing has no fields, so any field it is sent is unknown.
pub fn request_fields(action: Action) -> Option<&'static [Field]> {
    use Action::*;
    Some(match action {
        ControllersList | TasksList | TasksRead | TasksReport | TasksDiff | TasksLogsRead | RunsRead | RunsList | SystemState
        | EventsList => return None,
        ControllersHeartbeat => CONTROLLER_HEARTBEAT,
        LeaderAcquire => LEADER_ACQUIRE,
        LeaderRelease => LEADER_RELEASE,
        TasksCreate => TASK_CREATE,
        TasksCancel | SystemPause | SystemResume | SystemDrain => CHANGE_REASON,
        TasksApprove => APPROVE,
        TasksReject => REJECT,
        TasksClaim => TASKS_CLAIM,
        TasksPlan => TASK_PLAN,
        StepsClaim => STEPS_CLAIM,
        StepsHeartbeat => STEP_HEARTBEAT,
        StepsCheckpoint => STEP_CHECKPOINT,
        StepsLogs => STEP_LOGS,
        StepsComplete => STEP_COMPLETE,
        StepsFail => STEP_FAIL,
        StepsReap => STEPS_REAP,
        SystemMaintain | AccountsResume => &[],
        AgentsSync => AGENT_SYNC,
    })
}

/// A field the body's object does not have, and the rule broken ("unknown field; did you
/// mean constraints.base_ref?").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    pub field: String,
    pub rule: String,
}

/// Checks a body's fields (at every depth the table describes) against the route's table.
pub fn check(action: Action, body: &Map<String, Value>) -> Result<(), UnknownField> {
    let Some(fields) = request_fields(action) else { return Ok(()) };
    check_object(fields, body, "", fields)
}

fn check_object(fields: &[Field], object: &Map<String, Value>, prefix: &str, root: &[Field]) -> Result<(), UnknownField> {
    for (key, value) in object {
        if prefix.is_empty() && IGNORED_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let path = join(prefix, key);
        let Some(field) = fields.iter().find(|field| field.name == key) else {
            return Err(UnknownField { rule: rule_for(key, fields, root), field: path });
        };
        match (field.shape, value) {
            (Shape::Object(inner), Value::Object(map)) => check_object(inner, map, &path, root)?,
            (Shape::Objects(inner), Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    if let Value::Object(map) = item {
                        check_object(inner, map, &format!("{path}[{index}]"), root)?;
                    }
                }
            }
            // A value of the wrong type is the handler's to name.
            _ => {}
        }
    }
    Ok(())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// "unknown field", with the field meant where it can be told: the same name elsewhere in the
/// body's table (a misplaced field), else a near spelling among the object's own fields.
fn rule_for(key: &str, siblings: &[Field], root: &[Field]) -> String {
    let mut elsewhere = Vec::new();
    paths_named(root, key, "", &mut elsewhere);
    let near = nearest_name(key, siblings.iter().map(|field| field.name));
    match (elsewhere.first(), near) {
        (Some(path), _) => format!("unknown field; did you mean {path}?"),
        (None, Some(name)) => format!("unknown field; did you mean {name}?"),
        (None, None) => {
            let names: Vec<&str> = siblings.iter().map(|field| field.name).collect();
            if names.is_empty() {
                "unknown field; this request takes no fields".to_string()
            } else {
                format!("unknown field; the fields here are {}", names.join(", "))
            }
        }
    }
}

fn paths_named(fields: &[Field], key: &str, prefix: &str, found: &mut Vec<String>) {
    for field in fields {
        let path = join(prefix, field.name);
        match field.shape {
            Shape::Object(inner) => paths_named(inner, key, &path, found),
            Shape::Objects(inner) => paths_named(inner, key, &format!("{path}[]"), found),
            Shape::Value => {}
        }
        if field.name == key && !prefix.is_empty() {
            found.push(path);
        }
    }
}

/// The name among `names` that `key` is a near spelling of (a typo, another case), if any.
pub fn nearest_name<'a>(key: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names.filter(|name| is_near(key, name)).min_by_key(|name| edit_distance(key, name))
}

fn is_near(key: &str, name: &str) -> bool {
    key.eq_ignore_ascii_case(name) || edit_distance(&key.to_ascii_lowercase(), name) <= if name.len() >= 5 { 2 } else { 1 }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_json(action: Action, body: Value) -> Result<(), UnknownField> {
        check(action, body.as_object().unwrap())
    }

    #[test]
    fn a_misplaced_field_names_where_it_belongs() {
        let error = check_json(Action::TasksCreate, json!({"repo": "/r", "base_ref": "task:T-A"})).unwrap_err();
        assert_eq!(error, UnknownField { field: "base_ref".into(), rule: "unknown field; did you mean constraints.base_ref?".into() });
    }

    #[test]
    fn a_misspelt_field_names_its_neighbour_and_nested_paths_carry_indexes() {
        let error = check_json(Action::TasksCreate, json!({"constraints": {"max_round": 2}})).unwrap_err();
        assert_eq!(error.field, "constraints.max_round");
        assert_eq!(error.rule, "unknown field; did you mean max_rounds?");
        let sync = json!({"host": "h", "completions": [{"step_id": "s"}, {"usage": {"input_tokenz": 1}}]});
        let error = check_json(Action::AgentsSync, sync).unwrap_err();
        assert_eq!(error.field, "completions[1].usage.input_tokenz");
        assert_eq!(error.rule, "unknown field; did you mean input_tokens?");
    }

    #[test]
    fn free_form_values_and_the_ignored_clock_pass() {
        let body = json!({"repo": "/r", "now": 5, "metadata": {"anything": {"deep": 1}}, "constraints": "not an object"});
        assert_eq!(check_json(Action::TasksCreate, body), Ok(()));
        assert_eq!(check_json(Action::TasksList, json!({"whatever": 1})), Ok(()));
        let nested_now = check_json(Action::TasksCreate, json!({"constraints": {"now": 1}})).unwrap_err();
        assert_eq!(nested_now.field, "constraints.now");
    }

    #[test]
    fn a_route_without_fields_says_so_and_a_far_name_lists_the_fields() {
        let error = check_json(Action::AccountsResume, json!({"x": 1})).unwrap_err();
        assert_eq!(error.rule, "unknown field; this request takes no fields");
        let error = check_json(Action::TasksApprove, json!({"verdict": "ok"})).unwrap_err();
        assert_eq!(error.rule, "unknown field; the fields here are comment");
    }
}
