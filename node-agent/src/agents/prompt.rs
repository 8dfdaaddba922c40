//! What the coding agent is told: the runner writes the prompt itself (SPEC §16). A new
//! session gets the whole of it: the goal, the previous round's feedback when there is one, and
//! where to write the report. A resumed session already knows the goal: it gets the feedback.

/// The pieces of a prompt.
pub struct PromptParts<'a> {
    pub goal: &'a str,
    /// What the last round's failure or a reviewer said; empty in the first round.
    pub feedback: &'a str,
    pub report_file: &'a str,
}

fn report_instructions(report_file: &str) -> String {
    format!(
        "When you are done, write a short report in markdown to {report_file} with the sections \
         `## result` (what you did), `## risks` and `## next_handoff`. Do not commit: the runner \
         commits your changes on the task's branch. Nobody will answer questions: decide and act."
    )
}

/// The prompt of a new session.
pub fn whole(parts: &PromptParts<'_>) -> String {
    let mut prompt = parts.goal.trim().to_string();
    if !parts.feedback.trim().is_empty() {
        prompt.push_str("\n\n---\n\nAn earlier round of this task did not pass. What it was told:\n\n");
        prompt.push_str(parts.feedback.trim());
    }
    prompt.push_str("\n\n---\n\n");
    prompt.push_str(&report_instructions(parts.report_file));
    prompt
}

/// The prompt of a resumed session: the feedback of the round before.
pub fn resumed(parts: &PromptParts<'_>) -> String {
    format!(
        "Your last round's work did not pass.\n\n{}\n\n---\n\nFix it in the same worktree. {}",
        parts.feedback.trim(),
        report_instructions(parts.report_file)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_session_gets_everything_a_resumed_one_the_feedback() {
        let parts = PromptParts { goal: "Fix the parser.\n", feedback: "", report_file: "/r/agent-report.md" };
        let first = whole(&parts);
        assert!(first.starts_with("Fix the parser.\n\n---\n\nWhen you are done"));
        assert!(first.contains("/r/agent-report.md") && !first.contains("did not pass"));
        let parts = PromptParts { feedback: "# Feedback from round 1\n\nexit code: 1", ..parts };
        let again = whole(&parts);
        assert!(again.starts_with("Fix the parser.") && again.contains("exit code: 1"));
        let resumed = resumed(&parts);
        assert!(!resumed.contains("Fix the parser.") && resumed.contains("exit code: 1") && resumed.contains("/r/agent-report.md"));
    }
}
