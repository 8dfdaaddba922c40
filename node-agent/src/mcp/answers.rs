//! What a tool answers: short text a model can act on (status, branch, head commit, what
//! failed and why, the report), with the control plane's JSON beside it as structured content;
//! and a failure as a tool error carrying the API's message and the field it names.

use serde_json::{json, Value};

use crate::people::api::Failure;
use crate::people::print::{self, text};

/// A tool's answer: the text the model reads, the JSON (an object) for a program.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub data: Value,
}

/// The most of a report shown beside a task.
const REPORT_IN_SHOW: usize = 8_000;

pub fn short_commit(sha: &str) -> String {
    sha.chars().take(12).collect()
}

/// `text` cut to at most `most` bytes at a line's end, and whether it was cut.
pub fn cut(text: &str, most: usize) -> (&str, bool) {
    if text.len() <= most {
        return (text, false);
    }
    let mut end = most;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let end = text[..end].rfind('\n').map_or(end, |newline| newline + 1);
    (&text[..end], true)
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> &str {
    let mut start = text.len();
    let body = text.strip_suffix('\n').unwrap_or(text);
    for _ in 0..lines {
        match body[..start.min(body.len())].rfind('\n') {
            Some(newline) => start = newline,
            None => return text,
        }
    }
    &text[start + 1..]
}

/// `tasks.create`'s answer.
pub fn created(created: &Value, replayed: bool) -> String {
    let task = &created["task"];
    let mut out = format!(
        "{} task {}{}: {}, branch {} from {}, repo {}\n",
        if replayed { "Found the existing" } else { "Created" },
        text(&created["task_id"]),
        task["key"].as_str().map(|key| format!(" (key {key})")).unwrap_or_default(),
        print::status_of(task),
        text(&created["branch_name"]),
        text(&created["base_ref"]),
        text(&task["repo"]),
    );
    for warning in created["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("warning: {}\n", text(warning)));
    }
    out
}

/// A task as `tasks show` prints it, with its report when it has one.
pub fn task(detail: &Value, report: Option<&str>) -> String {
    let mut out = print::task_detail(detail);
    if let Some(report) = report.filter(|report| !report.trim().is_empty()) {
        let (shown, was_cut) = cut(report, REPORT_IN_SHOW);
        out.push_str("\nReport:\n");
        out.push_str(shown);
        if was_cut {
            out.push_str("\n… (the report goes on: tasks_report has all of it)\n");
        }
    }
    out
}

/// A tool error: the API's (or the argument check's) message, with the field and rule it
/// names; the envelope as structured content.
pub fn failure(failure: &Failure) -> Answer {
    let mut text = match failure.status {
        Some(_) => failure.to_string(),
        None => format!("{}: {}", failure.code, failure.message),
    };
    if let Some(field) = failure.field() {
        text.push_str(&format!(" [field: {field}]"));
    }
    let data = json!({"error": failure.code, "status": failure.status, "message": failure.message, "details": failure.details});
    Answer { text, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutting_keeps_whole_lines_and_tails_count_them() {
        assert_eq!(cut("one\ntwo\nthree\n", 9), ("one\ntwo\n", true));
        assert_eq!(cut("short", 10), ("short", false));
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a\nb\n", 5), "a\nb\n");
    }

    #[test]
    fn a_failure_names_its_field() {
        let failure = Failure {
            code: "invalid_request".into(),
            status: Some(400),
            message: "unknown field base_ref; did you mean constraints.base_ref?".into(),
            details: json!({"field": "base_ref", "rule": "unknown field; did you mean constraints.base_ref?"}),
        };
        let answer = super::failure(&failure);
        assert_eq!(answer.text, "invalid_request (400): unknown field base_ref; did you mean constraints.base_ref? [field: base_ref]");
        assert_eq!(answer.data["details"]["field"], "base_ref");
    }
}
