//! Reading request input with errors that name the field and the rule broken.

use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};
use shared::ids::{is_valid_node_id, MAX_ID_LEN};

/// Longest free-text field accepted (goal, prompt, command, summary, error).
pub const MAX_TEXT_LEN: usize = 65_536;
/// Longest short text (title, repo, host, names).
pub const MAX_SHORT_TEXT_LEN: usize = 1_024;

/// Parses a JSON body that must be an object; an empty body reads as `{}` when allowed.
pub fn parse_object(body: &[u8], empty_allowed: bool) -> ApiResult<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if empty_allowed {
            Ok(Map::new())
        } else {
            Err(ApiError::new(shared::ErrorCode::InvalidJson, "the request body is empty; a JSON object is required"))
        };
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::new(shared::ErrorCode::InvalidJson, "the request body must be a JSON object")),
        Err(error) => Err(ApiError::new(shared::ErrorCode::InvalidJson, format!("the request body is not valid JSON: {error}"))),
    }
}

/// Typed access to the fields of one JSON object; `prefix` names nested objects in errors
/// (`steps[2].title`).
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Fields { map, prefix: String::new() }
    }

    pub fn nested(map: &'a Map<String, Value>, prefix: String) -> Self {
        Fields { map, prefix }
    }

    pub fn name(&self, field: &str) -> String {
        if self.prefix.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.prefix)
        }
    }

    fn error(&self, field: &str, rule: &str) -> ApiError {
        ApiError::invalid_field(&self.name(field), rule)
    }

    fn present(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|value| !value.is_null())
    }

    pub fn opt_str(&self, field: &str, max_len: usize) -> ApiResult<Option<String>> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => Err(self.error(field, "must be a non-empty string")),
            Some(Value::String(text)) if text.len() > max_len => Err(self.error(field, &format!("must be at most {max_len} bytes"))),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(self.error(field, "must be a non-empty string")),
        }
    }

    pub fn str(&self, field: &str, max_len: usize) -> ApiResult<String> {
        self.opt_str(field, max_len)?.ok_or_else(|| self.error(field, "must be a non-empty string"))
    }

    /// A string that may be empty (log text, checkpoint content).
    pub fn raw_str(&self, field: &str, max_len: usize) -> ApiResult<String> {
        match self.present(field) {
            Some(Value::String(text)) if text.len() > max_len => Err(self.error(field, &format!("must be at most {max_len} bytes"))),
            Some(Value::String(text)) => Ok(text.clone()),
            _ => Err(self.error(field, "must be a string")),
        }
    }

    pub fn opt_node_id(&self, field: &str) -> ApiResult<Option<String>> {
        match self.opt_str(field, MAX_ID_LEN)? {
            Some(id) if !is_valid_node_id(&id) => {
                Err(self.error(field, "must be 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit"))
            }
            other => Ok(other),
        }
    }

    pub fn id(&self, field: &str) -> ApiResult<String> {
        self.str(field, MAX_ID_LEN)
    }

    pub fn opt_i64(&self, field: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Number(number)) => match number.as_i64() {
                Some(value) if (min..=max).contains(&value) => Ok(Some(value)),
                _ => Err(self.error(field, &format!("must be an integer from {min} to {max}"))),
            },
            Some(_) => Err(self.error(field, &format!("must be an integer from {min} to {max}"))),
        }
    }

    pub fn i64(&self, field: &str, min: i64, max: i64) -> ApiResult<i64> {
        self.opt_i64(field, min, max)?.ok_or_else(|| self.error(field, &format!("is required: an integer from {min} to {max}")))
    }

    pub fn bool_or_false(&self, field: &str) -> ApiResult<bool> {
        match self.present(field) {
            None => Ok(false),
            Some(Value::Bool(value)) => Ok(*value),
            Some(_) => Err(self.error(field, "must be true or false")),
        }
    }

    pub fn opt_object(&self, field: &str) -> ApiResult<Option<Map<String, Value>>> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map.clone())),
            Some(_) => Err(self.error(field, "must be a JSON object")),
        }
    }

    pub fn opt_value(&self, field: &str) -> Option<Value> {
        self.present(field).cloned()
    }

    pub fn opt_array(&self, field: &str) -> ApiResult<Option<&'a Vec<Value>>> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(self.error(field, "must be an array")),
        }
    }

    /// The objects of an optional array, each as nested fields named `field[i]`.
    pub fn objects(&self, field: &str, max_items: usize) -> ApiResult<Vec<Fields<'a>>> {
        let Some(items) = self.opt_array(field)? else { return Ok(Vec::new()) };
        if items.len() > max_items {
            return Err(self.error(field, &format!("must have at most {max_items} entries")));
        }
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let name = format!("{}[{index}]", self.name(field));
                match item {
                    Value::Object(map) => Ok(Fields::nested(map, name)),
                    _ => Err(ApiError::invalid_field(&name, "must be an object")),
                }
            })
            .collect()
    }

    /// A required object, as nested fields.
    pub fn object(&self, field: &str) -> ApiResult<Fields<'a>> {
        match self.present(field) {
            Some(Value::Object(map)) => Ok(Fields::nested(map, self.name(field))),
            _ => Err(self.error(field, "is required: a JSON object")),
        }
    }

    /// An array of non-empty strings.
    pub fn opt_string_list(&self, field: &str, max_items: usize, max_len: usize) -> ApiResult<Option<Vec<String>>> {
        let Some(items) = self.opt_array(field)? else { return Ok(None) };
        if items.len() > max_items {
            return Err(self.error(field, &format!("must have at most {max_items} entries")));
        }
        items
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(text) if !text.trim().is_empty() && text.len() <= max_len => Ok(text.clone()),
                _ => Err(ApiError::invalid_field(
                    &format!("{}[{index}]", self.name(field)),
                    &format!("must be a non-empty string of at most {max_len} bytes"),
                )),
            })
            .collect::<ApiResult<Vec<String>>>()
            .map(Some)
    }

    /// A string that must be one of an enum's spellings.
    pub fn enumerated<T>(&self, field: &str, parse: fn(&str) -> Option<T>, choices: &str) -> ApiResult<T> {
        self.opt_enumerated(field, parse, choices)?.ok_or_else(|| self.error(field, &format!("is required: one of {choices}")))
    }

    pub fn opt_enumerated<T>(&self, field: &str, parse: fn(&str) -> Option<T>, choices: &str) -> ApiResult<Option<T>> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(text)) => parse(text).map(Some).ok_or_else(|| self.error(field, &format!("must be one of {choices}"))),
            Some(_) => Err(self.error(field, &format!("must be one of {choices}"))),
        }
    }
}

/// The query string's parameters, percent-decoded. A parameter given twice keeps the last.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (shared::percent::decode(key, true), shared::percent::decode(value, true))
        })
        .collect()
}

/// An integer query parameter within `min..=max`, or `default` when absent or empty.
pub fn query_i64(params: &[(String, String)], name: &str, default: i64, min: i64, max: i64) -> ApiResult<i64> {
    match query_param(params, name) {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|value| (min..=max).contains(value))
            .ok_or_else(|| ApiError::invalid_field(name, &format!("must be an integer from {min} to {max}"))),
    }
}

/// An enum-valued query parameter, or `None` when absent or empty.
pub fn query_enum<T>(params: &[(String, String)], name: &str, parse: fn(&str) -> Option<T>, choices: &str) -> ApiResult<Option<T>> {
    match query_param(params, name) {
        None | Some("") => Ok(None),
        Some(text) => parse(text).map(Some).ok_or_else(|| ApiError::invalid_field(name, &format!("must be one of {choices}"))),
    }
}

pub fn query_param<'q>(params: &'q [(String, String)], name: &str) -> Option<&'q str> {
    params.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let params = parse_query("status=queued&cursor=a%3Ab&x=%zz&y=caf%C3%A9+ok&z=%");
        assert_eq!(query_param(&params, "status"), Some("queued"));
        assert_eq!(query_param(&params, "cursor"), Some("a:b"));
        assert_eq!(query_param(&params, "x"), Some("%zz"));
        assert_eq!(query_param(&params, "y"), Some("café ok"));
        assert_eq!(query_param(&params, "z"), Some("%"));
    }
}
