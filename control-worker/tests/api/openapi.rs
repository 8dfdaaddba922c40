//! `docs/openapi.json`: the OpenAPI 3.1 document of the Control API, generated from the route
//! table (paths, methods, roles, body limits, summaries) and the wire types (their JSON
//! Schemas, derived with `schemars` from the same serde types the handlers and the agent use).
//! The test fails when the committed document drifts; `BAA_WRITE_OPENAPI=1 cargo test -p
//! control-worker --test api openapi` writes it anew.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};
use shared::wire::*;
use shared::{Action, ErrorCode, ROUTES};

/// The request body (`None` for a GET, or a body that is optional) and the `data` of the
/// success envelope of each action. A match, so a new action cannot be left out.
fn bodies(action: Action, generator: &mut SchemaGenerator) -> (Option<Value>, bool, Value) {
    fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
        generator.subschema_for::<T>().to_value()
    }
    use Action::*;
    let (request, optional, response) = match action {
        ControllersHeartbeat => {
            (Some(schema::<ControllerHeartbeatRequest>(generator)), false, schema::<ControllerHeartbeatResponse>(generator))
        }
        ControllersList => (None, false, schema::<shared::wire::ControllersList>(generator)),
        LeaderAcquire => (Some(schema::<LeaderAcquireRequest>(generator)), false, schema::<LeaderAcquireResponse>(generator)),
        LeaderRelease => (Some(schema::<LeaderReleaseRequest>(generator)), false, schema::<LeaderReleaseResponse>(generator)),
        TasksCreate => (Some(schema::<TaskCreateRequest>(generator)), false, schema::<TaskCreated>(generator)),
        TasksList => (None, false, schema::<TaskPage>(generator)),
        TasksRead => (None, false, schema::<TaskDetail>(generator)),
        TasksCancel => (Some(schema::<ChangeReason>(generator)), true, schema::<TaskCanceled>(generator)),
        TasksApprove => (Some(schema::<TaskApproveRequest>(generator)), true, schema::<TaskReviewed>(generator)),
        TasksReject => (Some(schema::<TaskRejectRequest>(generator)), false, schema::<TaskReviewed>(generator)),
        TasksReport => (None, false, schema::<TaskReportPage>(generator)),
        TasksDiff => (None, false, schema::<TaskDiff>(generator)),
        TasksClaim => (Some(schema::<TasksClaimRequest>(generator)), false, schema::<TasksClaimed>(generator)),
        TasksPlan => (Some(schema::<TaskPlanRequest>(generator)), false, schema::<TaskDetail>(generator)),
        StepsClaim => (Some(schema::<StepsClaimRequest>(generator)), false, schema::<StepsClaimed>(generator)),
        StepsHeartbeat => (Some(schema::<StepHeartbeatRequest>(generator)), false, schema::<StepHeartbeatResponse>(generator)),
        StepsCheckpoint => (Some(schema::<CheckpointRequest>(generator)), false, schema::<CheckpointStored>(generator)),
        StepsLogs => (Some(schema::<StepLogsRequest>(generator)), false, schema::<StepLogsStored>(generator)),
        StepsComplete => (Some(schema::<StepCompleteRequest>(generator)), false, schema::<StepSettled>(generator)),
        StepsFail => (Some(schema::<StepFailRequest>(generator)), false, schema::<StepSettled>(generator)),
        StepsReap => (Some(schema::<StepsReapRequest>(generator)), false, schema::<StepsReaped>(generator)),
        TasksLogsRead => (None, false, schema::<LogPage>(generator)),
        RunsRead => (None, false, schema::<RunDetail>(generator)),
        RunsList => (None, false, schema::<TimelinePage>(generator)),
        SystemPause | SystemResume | SystemDrain => (Some(schema::<ChangeReason>(generator)), true, schema::<SystemChanged>(generator)),
        SystemState => (None, false, schema::<shared::wire::SystemState>(generator)),
        SystemMaintain => (None, false, schema::<shared::wire::MaintenanceReport>(generator)),
        AccountsResume => (None, false, schema::<shared::wire::AccountResumed>(generator)),
        EventsList => (None, false, schema::<shared::wire::EventPage>(generator)),
        AgentsSync => (Some(schema::<AgentSyncRequest>(generator)), false, schema::<AgentSyncResponse>(generator)),
    };
    (request, optional, response)
}

/// Query parameters of the GET routes that take any.
fn query(action: Action) -> Vec<Value> {
    let parameter = |name: &str, schema: Value, description: &str| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description});
    match action {
        Action::TasksList => vec![
            parameter("status", json!({"type": "string"}), "only tasks in this status"),
            parameter("limit", json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50}), "page size"),
            parameter("cursor", json!({"type": "string"}), "`next_cursor` of the previous page"),
        ],
        Action::TasksLogsRead => vec![
            parameter("after", json!({"type": "integer", "minimum": 0, "default": 0}), "chunks after this cursor"),
            parameter("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 500}), "page size"),
            parameter("step_id", json!({"type": "string"}), "only this step's chunks"),
            parameter("run_id", json!({"type": "string"}), "only this run's chunks"),
            parameter("stream", json!({"type": "string", "enum": ["stdout", "stderr", "worker"]}), "only this stream"),
        ],
        Action::RunsList => vec![
            parameter("since", json!({"type": "integer", "minimum": 0}), "window start, unix seconds (default: until − 6 hours)"),
            parameter(
                "until",
                json!({"type": "integer", "minimum": 0}),
                "window end, unix seconds (default: now); at most 31 days after since",
            ),
            parameter("limit", json!({"type": "integer", "minimum": 1, "maximum": 5000, "default": 2000}), "most runs answered"),
        ],
        _ => Vec::new(),
    }
}

/// `/v1/tasks/:task_id` as OpenAPI writes it: `/v1/tasks/{task_id}`.
fn openapi_path(path: &str) -> String {
    path.split('/')
        .map(|segment| segment.strip_prefix(':').map_or(segment.to_string(), |name| format!("{{{name}}}")))
        .collect::<Vec<_>>()
        .join("/")
}

fn envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["ok", "request_id", "data"],
        "properties": {"ok": {"const": true}, "request_id": {"type": "string"}, "data": data},
    })
}

pub fn document() -> Value {
    let mut generator =
        SchemaSettings::draft2020_12().with(|settings| settings.definitions_path = "/components/schemas".into()).into_generator();
    let mut paths = Map::new();
    let mut requests = Vec::new();
    let mut responses = Vec::new();
    for route in ROUTES {
        let (request, optional, response) = bodies(route.action, &mut generator);
        if let Some(request) = &request {
            requests.push((route, request.clone()));
        }
        responses.push(response.clone());
        let path = openapi_path(route.path);
        let mut parameters: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|segment| segment.strip_prefix(':'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(query(route.action));
        let roles: Vec<&str> = route.roles.iter().map(|role| role.as_str()).collect();
        let mut operation = json!({
            "operationId": route.id,
            "summary": route.summary,
            "description": format!(
                "Roles: {} ({}). Largest body: {} bytes.",
                roles.join(if route.every_role { " and " } else { ", " }),
                if route.every_role { "every one of them" } else { "any of them" },
                route.body_limit
            ),
            "x-roles": roles,
            "security": [{"bearer": []}],
            "responses": {
                "2XX": {"description": "success", "content": {"application/json": {"schema": envelope(response)}}},
                "default": {"description": "an error envelope", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}},
            },
        });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some(request) = request {
            operation["requestBody"] = json!({"required": !optional, "content": {"application/json": {"schema": request}}});
        }
        let method = route.method.as_str().to_ascii_lowercase();
        paths.entry(path).or_insert_with(|| json!({})).as_object_mut().unwrap().insert(method, operation);
    }
    generator.subschema_for::<ErrorEnvelope>();
    generator.subschema_for::<ErrorCode>();
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    close_request_bodies(&requests, &responses, &mut schemas);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "baa-conductor Control API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Generated from the route table (shared/src/routes.rs) and the wire types (shared/src/wire/) by control-worker/tests/api/openapi.rs. Every answer is an envelope: {ok: true, request_id, data} or {ok: false, request_id, error, message, details}; see docs/api.md.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    })
}

/// Holds every request schema to `shared::body_fields` (the same field names at every depth the
/// table describes) and says `additionalProperties: false` where the control plane refuses
/// unknown fields — except on types that are also answers (`Usage`, `TaskResult`, ...), which
/// may grow fields a client should tolerate.
fn close_request_bodies(requests: &[(&shared::Route, Value)], responses: &[Value], schemas: &mut Map<String, Value>) {
    let mut in_answers = std::collections::BTreeSet::new();
    for response in responses {
        collect_refs(response, schemas, &mut in_answers);
    }
    collect_refs(&json!({"$ref": "#/components/schemas/ErrorEnvelope"}), schemas, &mut in_answers);
    for (route, request) in requests {
        let fields = shared::body_fields::request_fields(route.action).unwrap_or_else(|| panic!("{}: a body without fields", route.id));
        close(request, fields, schemas, &in_answers, route.id);
    }
}

fn ref_name(schema: &Value) -> Option<String> {
    schema["$ref"].as_str().and_then(|reference| reference.strip_prefix("#/components/schemas/")).map(str::to_string)
}

fn collect_refs(schema: &Value, schemas: &Map<String, Value>, found: &mut std::collections::BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = ref_name(schema) {
                if found.insert(name.clone()) {
                    collect_refs(&schemas[&name], schemas, found);
                }
            }
            map.values().for_each(|value| collect_refs(value, schemas, found));
        }
        Value::Array(items) => items.iter().for_each(|value| collect_refs(value, schemas, found)),
        _ => {}
    }
}

/// The object schema a field's schema stands for: through `$ref`, `Option`'s `anyOf` and a
/// list's `items`.
fn object_schema(schema: &Value) -> Value {
    if let Some(variants) = schema["anyOf"].as_array() {
        return variants.iter().find(|variant| variant["type"] != "null").map(object_schema).unwrap_or(Value::Null);
    }
    if schema["type"] == "array" {
        return object_schema(&schema["items"]);
    }
    schema.clone()
}

fn close(
    schema: &Value,
    fields: &[shared::body_fields::Field],
    schemas: &mut Map<String, Value>,
    in_answers: &std::collections::BTreeSet<String>,
    at: &str,
) {
    let schema = object_schema(schema);
    let name = ref_name(&schema).unwrap_or_else(|| panic!("{at}: request objects are named types"));
    let definition = schemas[&name].clone();
    let mut properties: Vec<&str> =
        definition["properties"].as_object().map(|map| map.keys().map(String::as_str).collect()).unwrap_or_default();
    let mut names: Vec<&str> = fields.iter().map(|field| field.name).collect();
    properties.sort_unstable();
    names.sort_unstable();
    assert_eq!(properties, names, "{at} ({name}): shared::body_fields and the wire type disagree");
    if !in_answers.contains(&name) {
        schemas[&name]["additionalProperties"] = Value::Bool(false);
    }
    for field in fields {
        if let shared::body_fields::Shape::Object(inner) | shared::body_fields::Shape::Objects(inner) = field.shape {
            close(&definition["properties"][field.name], inner, schemas, in_answers, &format!("{at}.{}", field.name));
        }
    }
}

#[test]
fn the_openapi_document_is_generated_from_the_route_table_and_the_wire_types() {
    let path = crate::tidy::repo_root().join("docs/openapi.json");
    let generated = serde_json::to_string_pretty(&document()).unwrap() + "\n";
    if std::env::var_os("BAA_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json drifted from the route table or the wire types: run BAA_WRITE_OPENAPI=1 cargo test -p control-worker --test api openapi"
    );
    // Every route is in it, with its method.
    let document: Value = serde_json::from_str(&committed).unwrap();
    for route in ROUTES {
        let path = openapi_path(route.path);
        let operation = &document["paths"][&path][route.method.as_str().to_ascii_lowercase()];
        assert_eq!(operation["operationId"], route.id, "{path}");
    }
    // Every reference resolves.
    let text = committed.as_str();
    for reference in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(document["components"]["schemas"].get(name).is_some(), "unresolved $ref {name}");
    }
}
