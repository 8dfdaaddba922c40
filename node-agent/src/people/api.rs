//! The admin calls of `node-agent tasks` and `node-agent mcp`: JSON over HTTP with a bearer
//! token; an error answer becomes a [`Failure`] with the API's code, message and details (the
//! token is never shown).

use std::time::Duration;

use serde_json::{json, Value};

/// A call that did not succeed: the API's error envelope, or why there was no answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The envelope's `error` (`invalid_request`, `forbidden` …), or `unreachable`.
    pub code: String,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    pub message: String,
    /// The envelope's `details` (`field`, `rule` …); an empty object when it had none.
    pub details: Value,
}

impl Failure {
    pub fn new(code: &str, message: impl Into<String>) -> Failure {
        Failure { code: code.to_string(), status: None, message: message.into(), details: json!({}) }
    }

    pub fn with_field(mut self, field: &str) -> Failure {
        self.details["field"] = json!(field);
        self
    }

    pub fn with_rule(mut self, rule: &str) -> Failure {
        self.details["rule"] = json!(rule);
        self
    }

    /// The field the API named, if any.
    pub fn field(&self) -> Option<&str> {
        self.details["field"].as_str()
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} ({status}): {}", self.code, self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl From<Failure> for String {
    fn from(failure: Failure) -> String {
        failure.to_string()
    }
}

pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
    /// Where the address came from, said when it does not answer.
    source: String,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Result<Api, String> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(|error| error.to_string())?;
        Ok(Api { base: base.trim_end_matches('/').to_string(), token: token.to_string(), http, source: String::new() })
    }

    pub fn with_source(mut self, source: &str) -> Self {
        self.source = source.to_string();
        self
    }

    async fn answer(&self, response: Result<reqwest::Response, reqwest::Error>) -> Result<(Value, bool), Failure> {
        let response = response.map_err(|error| {
            let from = if self.source.is_empty() { String::new() } else { format!(" (address from {})", self.source) };
            Failure::new("unreachable", format!("the control plane at {}{from} did not answer: {}", self.base, error.without_url()))
        })?;
        let replayed = response.headers().get("idempotent-replayed").is_some_and(|value| value == "true");
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| Failure::new("unreachable", format!("the answer broke off ({status}): {}", error.without_url())))?;
        let envelope: Value = serde_json::from_slice(&bytes)
            .map_err(|error| Failure::new("unreachable", format!("an answer that is not JSON ({status}): {error}")))?;
        if envelope["ok"] == Value::Bool(true) {
            return Ok((envelope["data"].clone(), replayed));
        }
        Err(Failure {
            code: envelope["error"].as_str().unwrap_or("error").to_string(),
            status: Some(status.as_u16()),
            message: envelope["message"].as_str().unwrap_or("").to_string(),
            details: if envelope["details"].is_object() { envelope["details"].clone() } else { json!({}) },
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        Ok(self.answer(self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await).await?.0)
    }

    async fn send(&self, path: &str, body: &Value) -> Result<(Value, bool), Failure> {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(without_nulls(body).to_string());
        self.answer(request.send().await).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        Ok(self.send(path, body).await?.0)
    }

    /// Creates a task; whether it existed already (the same key).
    pub async fn create(&self, body: &Value) -> Result<(Value, bool), Failure> {
        self.send("/v1/tasks", body).await
    }

    /// The newest tasks, up to `most`, newest first.
    pub async fn recent_tasks(&self, most: usize) -> Result<Vec<Value>, Failure> {
        let mut tasks = Vec::new();
        let mut cursor = String::new();
        while tasks.len() < most {
            let page = self.get(&format!("/v1/tasks?limit=200{cursor}")).await?;
            tasks.extend(page["tasks"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        tasks.truncate(most);
        Ok(tasks)
    }

    /// A task id as given, or the task of a key (searched among the newest 1,000 tasks).
    pub async fn task_id(&self, task: &str) -> Result<String, Failure> {
        if task.starts_with("task_") {
            return Ok(task.to_string());
        }
        let mut cursor = String::new();
        for _ in 0..5 {
            let page = self.get(&format!("/v1/tasks?limit=200{cursor}")).await?;
            if let Some(found) = page["tasks"].as_array().into_iter().flatten().find(|candidate| candidate["key"] == task) {
                return Ok(found["task_id"].as_str().unwrap_or_default().to_string());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        Err(Failure::new("task_not_found", format!("no task with id or key {task} (among the newest 1,000 tasks)")).with_field("task"))
    }
}

/// `body` without its null fields: an option not given is left out, not sent as null.
fn without_nulls(body: &Value) -> Value {
    match body {
        Value::Object(map) => {
            Value::Object(map.iter().filter(|(_, value)| !value.is_null()).map(|(key, value)| (key.clone(), value.clone())).collect())
        }
        other => other.clone(),
    }
}
