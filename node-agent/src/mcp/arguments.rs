//! A tool call's arguments held to the tool's schema before anything is sent: an unknown
//! field (with the one meant, when it can be told), a missing one, a value of the wrong type
//! or out of range is a tool error naming the field and the rule, as the API's strict input
//! does (SPEC §18). The schemas here are the plain ones of [`super::tools`]: `type`,
//! `properties`, `required`, `additionalProperties`, `items`, `enum`, `minimum`, `maximum`,
//! `minItems`.

use serde_json::{Map, Value};

use crate::people::api::Failure;

fn invalid(field: &str, rule: String) -> Failure {
    Failure::new("invalid_request", format!("{field} {rule}")).with_field(field).with_rule(&rule)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Checks `value` at `path` against `schema`.
pub fn check(schema: &Value, value: &Value, path: &str) -> Result<(), Failure> {
    let shown = if path.is_empty() { "the arguments" } else { path };
    let expected = schema["type"].as_str();
    let fits = match expected {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.as_i64().is_some(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !fits {
        return Err(invalid(shown, format!("must be {}", article(expected.unwrap_or("value")))));
    }
    if let Some(choices) = schema["enum"].as_array() {
        if !choices.contains(value) {
            let names: Vec<&str> = choices.iter().filter_map(Value::as_str).collect();
            return Err(invalid(shown, format!("must be one of {}", names.join(", "))));
        }
    }
    if let Some(number) = value.as_i64() {
        let (low, high) = (schema["minimum"].as_i64(), schema["maximum"].as_i64());
        if low.is_some_and(|low| number < low) || high.is_some_and(|high| number > high) {
            return Err(invalid(shown, format!("must be from {} to {}", low.unwrap_or(i64::MIN), high.unwrap_or(i64::MAX))));
        }
    }
    match value {
        Value::Object(map) => check_object(schema, map, path),
        Value::Array(items) => {
            if schema["minItems"].as_u64().is_some_and(|least| (items.len() as u64) < least) {
                return Err(invalid(shown, "must not be empty".to_string()));
            }
            for (index, item) in items.iter().enumerate() {
                check(&schema["items"], item, &format!("{path}[{index}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Checks the object `map` at `path` (`""`: the arguments themselves) against `schema`.
pub fn check_object(schema: &Value, map: &Map<String, Value>, path: &str) -> Result<(), Failure> {
    let empty = Map::new();
    let properties = schema["properties"].as_object().unwrap_or(&empty);
    for (key, value) in map {
        match properties.get(key) {
            Some(property) => check(property, value, &join(path, key))?,
            None if schema["additionalProperties"] == false => return Err(unknown(&join(path, key), key, properties)),
            None => {}
        }
    }
    for required in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if map.get(required).is_none_or(Value::is_null) {
            return Err(invalid(&join(path, required), "is required".to_string()));
        }
    }
    Ok(())
}

fn unknown(field: &str, key: &str, properties: &Map<String, Value>) -> Failure {
    let rule = match shared::body_fields::nearest_name(key, properties.keys().map(String::as_str)) {
        Some(near) => format!("unknown field; did you mean {near}?"),
        None if properties.is_empty() => "unknown field; this tool takes no arguments".to_string(),
        None => format!("unknown field; the fields here are {}", properties.keys().cloned().collect::<Vec<_>>().join(", ")),
    };
    let explanation = rule.strip_prefix("unknown field").unwrap_or(&rule).to_string();
    Failure::new("invalid_request", format!("unknown field {field}{explanation}")).with_field(field).with_rule(&rule)
}

fn article(kind: &str) -> String {
    match kind {
        "object" | "array" | "integer" => format!("an {kind}"),
        other => format!("a {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::tools::Tool;
    use serde_json::json;

    fn failure(tool: Tool, arguments: Value) -> Failure {
        check(&tool.input_schema(), &arguments, "").unwrap_err()
    }

    #[test]
    fn unknown_missing_and_mistyped_fields_are_named() {
        let misspelt = failure(Tool::TasksShow, json!({"tas": "T-1"}));
        assert_eq!(misspelt.field(), Some("tas"));
        assert!(misspelt.message.contains("did you mean task?"), "{}", misspelt.message);
        assert_eq!(failure(Tool::TasksShow, json!({})).field(), Some("task"));
        let typed = failure(Tool::TasksLogs, json!({"task": "T", "lines": "ten"}));
        assert_eq!((typed.field(), typed.message.as_str()), (Some("lines"), "lines must be an integer"));
        let range = failure(Tool::TasksLogs, json!({"task": "T", "lines": 5000}));
        assert_eq!(range.message, "lines must be from 1 to 1000");
        let nested = failure(Tool::TasksReject, json!({"task": "T", "reason": "r", "comments": [{"path": "a", "line": 1, "coment": "x"}]}));
        assert_eq!(nested.field(), Some("comments[0].coment"));
        let choice = failure(Tool::TasksList, json!({"status": "done"}));
        assert!(choice.message.starts_with("status must be one of queued"), "{}", choice.message);
        assert!(failure(Tool::SystemState, json!({"x": 1})).message.contains("takes no arguments"));
    }

    #[test]
    fn good_arguments_pass() {
        let reject = json!({"task": "T", "reason": "r", "retry": true, "comments": [{"path": "a.rs", "line": 3, "comment": "x"}]});
        assert!(check(&Tool::TasksReject.input_schema(), &reject, "").is_ok());
        assert!(check(&Tool::WaitFor.input_schema(), &json!({"wave": "W-", "timeout_sec": 30}), "").is_ok());
    }
}
