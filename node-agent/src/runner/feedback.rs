//! What a coding agent's next round is told (SPEC §13): `{feedback_file}` (`BAA_FEEDBACK_FILE`)
//! holds the failed acceptance command, its exit code and the tail of its output, or a
//! reviewer's reason; it is empty in the first round. The control plane puts the facts in the
//! agent step's `metadata.feedback`; the output comes from the failed run's directory, which
//! is on this host (every round of a task runs on its one host).

use serde_json::Value;

/// At most this much of the failed command's output.
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024;

/// The feedback file's text from `metadata.feedback`, with `output` the failed run's test
/// output (when the host still has it).
pub fn text(feedback: Option<&Value>, output: Option<&str>) -> String {
    let Some(feedback) = feedback.filter(|feedback| feedback.is_object()) else { return String::new() };
    let field = |name: &str| match &feedback[name] {
        Value::String(text) => text.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    };
    if feedback["kind"] == "review" {
        return format!(
            "# Feedback from review\n\nA reviewer ({}) rejected the last round's work:\n\n{}\n{}\nKeep what was right, address this, and make the acceptance commands pass again.\n",
            field("reviewer"),
            field("reason"),
            line_comments(&feedback["comments"])
        );
    }
    let mut text = format!(
        "# Feedback from round {}\n\nThe acceptance command failed:\n\n    {}\n\nexit code: {}\nerror: {}\n",
        field("round"),
        field("command"),
        field("exit_code"),
        field("error")
    );
    if let Some(output) = output {
        let start = output.len().saturating_sub(MAX_OUTPUT_BYTES);
        let start = (start..output.len()).find(|index| output.is_char_boundary(*index)).unwrap_or(output.len());
        text.push_str(&format!("\n## Its output{}\n\n{}\n", if start > 0 { " (the end)" } else { "" }, output[start..].trim_end()));
    }
    text.push_str("\nThe changes of the earlier rounds are on the branch. Fix what made the command fail.\n");
    text
}

/// The reviewer's comments on lines of the diff, one `path:line: comment` each (a comment's
/// further lines indented), under their own heading; empty without any.
fn line_comments(comments: &Value) -> String {
    let Some(comments) = comments.as_array().filter(|comments| !comments.is_empty()) else { return String::new() };
    let mut text = String::from("\n## Comments on lines of the diff\n\n");
    for comment in comments {
        let (path, line) = (comment["path"].as_str().unwrap_or("?"), comment["line"].as_i64().unwrap_or(0));
        let body = comment["comment"].as_str().unwrap_or("").trim().replace('\n', "\n    ");
        text.push_str(&format!("{path}:{line}: {body}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failed_acceptance_command_with_its_output() {
        let feedback =
            json!({"kind": "acceptance", "round": 1, "command": "sh test.sh", "exit_code": 1, "error": "exit code 1", "run_id": "t.s1.a1"});
        let text = text(Some(&feedback), Some("$ sh test.sh\n--- stdout ---\n2 + 3 is not -1\n"));
        assert!(text.starts_with("# Feedback from round 1\n"), "{text}");
        assert!(text.contains("    sh test.sh\n\nexit code: 1\n"), "{text}");
        assert!(text.contains("2 + 3 is not -1"), "{text}");
        let long = "é".repeat(MAX_OUTPUT_BYTES);
        let cut = super::text(Some(&feedback), Some(&long));
        assert!(cut.contains("## Its output (the end)") && cut.len() < MAX_OUTPUT_BYTES + 500, "{}", cut.len());
    }

    #[test]
    fn a_reviewers_reason_and_the_first_round() {
        let text = text(Some(&json!({"kind": "review", "reviewer": "browser-admin", "reason": "too slow"})), None);
        assert!(text.contains("(browser-admin) rejected") && text.contains("too slow"), "{text}");
        assert_eq!(super::text(None, None), "");
        assert!(!text.contains("Comments on lines"), "{text}");
    }

    #[test]
    fn a_reviewers_line_comments_as_path_line_comment() {
        let comments = json!([{"path": "src/add.rs", "line": 3, "comment": "off by one"}, {"path": "README.md", "line": 10, "comment": "say why\nand how"}]);
        let text = text(Some(&json!({"kind": "review", "reviewer": "ann", "reason": "see lines", "comments": comments})), None);
        assert!(
            text.contains("\n## Comments on lines of the diff\n\nsrc/add.rs:3: off by one\nREADME.md:10: say why\n    and how\n"),
            "{text}"
        );
    }
}
