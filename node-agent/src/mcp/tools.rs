//! The tools `node-agent mcp` offers: each one's name, a one-line description written for a
//! model, its input's JSON Schema, and whether it only reads (all a read-only token is
//! offered).

use serde_json::{json, Map, Value};
use shared::status::{LogStream, TaskStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    TasksCreate,
    CardsImport,
    TasksList,
    TasksShow,
    TasksLogs,
    TasksReport,
    TasksDiff,
    TasksCancel,
    TasksApprove,
    TasksReject,
    SystemState,
    AccountsResume,
    WaitFor,
}

pub const ALL: [Tool; 13] = [
    Tool::TasksCreate,
    Tool::CardsImport,
    Tool::TasksList,
    Tool::TasksShow,
    Tool::TasksLogs,
    Tool::TasksReport,
    Tool::TasksDiff,
    Tool::TasksCancel,
    Tool::TasksApprove,
    Tool::TasksReject,
    Tool::SystemState,
    Tool::AccountsResume,
    Tool::WaitFor,
];

/// The most lines `tasks_logs` answers, and its default.
pub const MAX_LOG_LINES: i64 = 1_000;
pub const DEFAULT_LOG_LINES: i64 = 100;
/// The most bytes of a patch `tasks_diff` answers, and its default.
pub const MAX_DIFF_BYTES: i64 = 200_000;
pub const DEFAULT_DIFF_BYTES: i64 = 40_000;
/// `wait_for`'s longest wait, and its default.
pub const MAX_WAIT_SEC: i64 = 3_600;
pub const DEFAULT_WAIT_SEC: i64 = 600;

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::TasksCreate => "tasks_create",
            Tool::CardsImport => "cards_import",
            Tool::TasksList => "tasks_list",
            Tool::TasksShow => "tasks_show",
            Tool::TasksLogs => "tasks_logs",
            Tool::TasksReport => "tasks_report",
            Tool::TasksDiff => "tasks_diff",
            Tool::TasksCancel => "tasks_cancel",
            Tool::TasksApprove => "tasks_approve",
            Tool::TasksReject => "tasks_reject",
            Tool::SystemState => "system_state",
            Tool::AccountsResume => "accounts_resume",
            Tool::WaitFor => "wait_for",
        }
    }

    pub fn named(name: &str) -> Option<Tool> {
        ALL.into_iter().find(|tool| tool.name() == name)
    }

    /// Whether the tool changes nothing (a read-only token is offered these alone).
    pub fn reads_only(self) -> bool {
        matches!(
            self,
            Tool::TasksList | Tool::TasksShow | Tool::TasksLogs | Tool::TasksReport | Tool::TasksDiff | Tool::SystemState | Tool::WaitFor
        )
    }

    pub fn description(self) -> &'static str {
        match self {
            Tool::TasksCreate => {
                "Create a task (a card) on the fleet: a coding agent's goal, a shell command, or an integrate task merging the branches \
                 it depends on; depends_on names other tasks' keys, so a card waits for them. Answers its id, status and branch."
            }
            Tool::CardsImport => {
                "Create the tasks of task cards written as markdown (front matter between --- lines, then the goal; an ## acceptance \
                 list), in dependency order; a card imported before is left as it is."
            }
            Tool::TasksList => {
                "List the newest tasks with their status, host and why they wait, filtered by status, repository, key prefix or text."
            }
            Tool::TasksShow => {
                "One task (by id or key): status and why, branch, base and head commit, commits and files, delivery, usage, steps and \
                 its report."
            }
            Tool::TasksLogs => "The last lines of a task's output (its newest run's stdout and stderr unless told otherwise).",
            Tool::TasksReport => "A task's report as markdown: what was done, files changed, acceptance, risks, next handoff.",
            Tool::TasksDiff => "The diff of a task's branch against where it started (cut at max_bytes).",
            Tool::TasksCancel => "Cancel a task; its running steps are told to stop.",
            Tool::TasksApprove => "Approve a task waiting in review: it succeeds.",
            Tool::TasksReject => {
                "Reject a task in review with a reason: it fails, or with retry the agent gets another round with the reason and the \
                 line comments as feedback."
            }
            Tool::SystemState => "The fleet: mode (running, paused, draining), leader, task and step counts, hosts, parked accounts.",
            Tool::AccountsResume => "End a coding-agent account's usage-limit wait now: its waiting steps are ready again.",
            Tool::WaitFor => {
                "Wait until a task, or a wave of cards (a key prefix or its integrate task), has ended or needs review, or until \
                 timeout_sec; reports progress meanwhile and answers each task's outcome."
            }
        }
    }

    /// The JSON Schema of the tool's arguments.
    pub fn input_schema(self) -> Value {
        let task = json!({"type": "string", "description": "The task's id (task_…) or its key"});
        let object = |properties: Value, required: &[&str]| json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});
        match self {
            Tool::TasksCreate => create_schema(),
            Tool::CardsImport => object(
                json!({
                    "cards": {"type": "array", "minItems": 1, "items": {"type": "string"},
                        "description": "Each item one card file's whole text: front matter (task_id, title, repo, depends_on, write_scope, task_type, deliver …) between --- lines, then the goal"},
                    "repo": {"type": "string", "description": "The repository of cards without a repo: line"},
                    "deliver": {"type": "string", "enum": ["none", "push", "pr"], "description": "For cards without a deliver: line"},
                }),
                &["cards"],
            ),
            Tool::TasksList => object(
                json!({
                    "status": {"type": "string", "enum": TaskStatus::choices().split(", ").collect::<Vec<_>>()},
                    "repo": {"type": "string", "description": "Only this repository's tasks"},
                    "key_prefix": {"type": "string", "description": "Only tasks whose key starts so (a wave's cards)"},
                    "text": {"type": "string", "description": "Only tasks whose title or goal holds this"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                }),
                &[],
            ),
            Tool::TasksShow | Tool::TasksReport => object(json!({"task": task}), &["task"]),
            Tool::TasksLogs => object(
                json!({
                    "task": task,
                    "lines": {"type": "integer", "minimum": 1, "maximum": MAX_LOG_LINES, "default": DEFAULT_LOG_LINES},
                    "run_id": {"type": "string", "description": "A run of the task (default: its newest)"},
                    "stream": {"type": "string", "enum": LogStream::choices().split(", ").collect::<Vec<_>>(),
                        "description": "One stream only (default: stdout and stderr)"},
                }),
                &["task"],
            ),
            Tool::TasksDiff => object(
                json!({"task": task, "max_bytes": {"type": "integer", "minimum": 1_000, "maximum": MAX_DIFF_BYTES, "default": DEFAULT_DIFF_BYTES}}),
                &["task"],
            ),
            Tool::TasksCancel => object(json!({"task": task, "reason": {"type": "string"}}), &["task"]),
            Tool::TasksApprove => object(json!({"task": task, "comment": {"type": "string"}}), &["task"]),
            Tool::TasksReject => object(
                json!({
                    "task": task,
                    "reason": {"type": "string", "description": "Why; the agent's next round reads it"},
                    "retry": {"type": "boolean", "default": false, "description": "Another agent round instead of failing the task"},
                    "comments": {"type": "array", "description": "Comments on lines of the branch's diff", "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},
                            "line": {"type": "integer", "minimum": 1, "description": "A line of the file as the branch has it"},
                            "comment": {"type": "string"},
                        },
                        "required": ["path", "line", "comment"],
                        "additionalProperties": false,
                    }},
                }),
                &["task", "reason"],
            ),
            Tool::SystemState => object(json!({}), &[]),
            Tool::AccountsResume => object(
                json!({"account": {"type": "string", "description": "The account as system_state lists it under parked accounts"}}),
                &["account"],
            ),
            Tool::WaitFor => object(
                json!({
                    "task": {"type": "string", "description": "A task's id or key (give task or wave)"},
                    "wave": {"type": "string", "description": "A wave: its integrate task's id or key, or its cards' key prefix"},
                    "timeout_sec": {"type": "integer", "minimum": 1, "maximum": MAX_WAIT_SEC, "default": DEFAULT_WAIT_SEC},
                }),
                &[],
            ),
        }
    }
}

/// `tasks.create`'s body as its wire type says, every field described: subschemas inlined
/// (some clients do not follow `$ref`), objects closed as the API is (SPEC §18).
fn create_schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<shared::wire::TaskCreateRequest>().to_value();
    if let Some(map) = schema.as_object_mut() {
        map.remove("title");
        map.insert("description".into(), json!("The body of tasks.create"));
    }
    // The fields every task has, which the wire type leaves to the API's documentation.
    for (field, description) in [
        ("repo", "The repository, as the hosts know it: a path on the host or a git URL"),
        ("task_type", "codex (a coding agent works toward the goal), shell (the goal is a shell command), or integrate (merges the branches of depends_on)"),
        ("title", "A short title"),
        ("goal", "What to do: the agent's instructions in markdown, or the shell command"),
        ("acceptance", "Shell commands that must pass in the worktree for the task to succeed"),
        ("review", "Wait in review for a person's approve or reject once acceptance passed"),
        ("priority", "Higher runs first"),
        ("metadata", "Anything to keep with the task"),
    ] {
        if let Some(property) = schema["properties"].get_mut(field).and_then(Value::as_object_mut) {
            property.entry("description").or_insert(json!(description));
        }
    }
    if let Some(task_type) = schema["properties"].get_mut("task_type").and_then(Value::as_object_mut) {
        task_type.insert("enum".into(), json!(shared::status::TaskType::choices().split(", ").collect::<Vec<_>>()));
    }
    close_objects(&mut schema, true);
    schema
}

/// `additionalProperties: false` on every object with properties, but free-form maps
/// (`metadata`) stay open; an optional field is its one type (left out when not given), not
/// "this or null", which clients with a single-`type` dialect (Gemini's function
/// declarations) cannot take.
fn close_objects(schema: &mut Value, top: bool) {
    let Some(map) = schema.as_object_mut() else { return };
    if let Some(Value::Array(types)) = map.get("type") {
        let types: Vec<Value> = types.iter().filter(|kind| *kind != "null").cloned().collect();
        if types.len() == 1 {
            map.insert("type".into(), types[0].clone());
        }
    }
    if let Some(Value::Array(choices)) = map.get_mut("enum") {
        choices.retain(|choice| !choice.is_null());
    }
    if let Some(Value::Array(branches)) = map.get("anyOf") {
        let branches: Vec<Value> = branches.iter().filter(|branch| branch["type"] != "null").cloned().collect();
        if let [Value::Object(only)] = branches.as_slice() {
            let only = only.clone();
            map.remove("anyOf");
            for (key, value) in only {
                map.entry(key).or_insert(value);
            }
        }
    }
    if map.contains_key("properties") || top {
        map.entry("additionalProperties").or_insert(Value::Bool(false));
    }
    for (key, value) in map.iter_mut() {
        match (key.as_str(), value) {
            ("properties", Value::Object(properties)) => properties.values_mut().for_each(|property| close_objects(property, false)),
            (_, Value::Array(items)) => items.iter_mut().for_each(|item| close_objects(item, false)),
            (_, value @ Value::Object(_)) => close_objects(value, false),
            _ => {}
        }
    }
}

/// A tool's schema as an object (MCP's `inputSchema`).
pub fn schema_object(tool: Tool) -> Map<String, Value> {
    match tool.input_schema() {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_distinct_name_and_an_object_schema() {
        let mut names: Vec<&str> = ALL.iter().map(|tool| tool.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for tool in ALL {
            assert_eq!(Tool::named(tool.name()), Some(tool));
            assert_eq!(tool.input_schema()["type"], "object", "{}", tool.name());
            assert!(tool.description().len() < 400, "{}: one line for a model", tool.name());
        }
    }

    #[test]
    fn the_create_schema_holds_every_field_of_the_wire_type_and_is_closed() {
        let schema = create_schema();
        let properties = schema["properties"].as_object().unwrap();
        for field in shared::body_fields::request_fields(shared::routes::Action::TasksCreate).unwrap() {
            assert!(properties.contains_key(field.name), "tasks_create lacks {}", field.name);
        }
        assert_eq!(schema["additionalProperties"], false);
        assert!(!schema.to_string().contains("$ref"), "subschemas are inlined");
        assert!(!schema.to_string().contains("\"null\""), "an optional field is its one type: {schema}");
        assert_eq!(schema["properties"]["constraints"]["type"], "object");
        assert_eq!(schema["properties"]["constraints"]["additionalProperties"], false);
        assert_eq!(schema["properties"]["constraints"]["properties"]["deliver"]["enum"], json!(["none", "push", "pr"]));
        let required: Vec<&str> = schema["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(required.contains(&"repo") && required.contains(&"goal"), "{required:?}");
    }
}
