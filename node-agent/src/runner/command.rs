//! What a step runs, as one `sh -c` command: the goal or acceptance command as written, or,
//! for a coding-agent step, the host's template (`BAA_AGENT_COMMAND`) with its variables
//! (`{goal_file}` …) filled in, shell-quoted. Pure.

use shared::status::StepKind;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum CommandError {
    #[error("step {0} has no command to run")]
    MissingCommand(String),
    #[error("no coding-agent command is configured on this host (set BAA_AGENT_COMMAND or --agent-command)")]
    NoAgentCommand,
}

pub struct TemplateValues<'a> {
    pub goal_file: &'a str,
    pub worktree: &'a str,
    pub task_id: &'a str,
    pub step_id: &'a str,
    pub run_id: &'a str,
    pub run_dir: &'a str,
}

/// `text` as one single-quoted shell word.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

pub fn render_agent_command(template: &str, values: &TemplateValues<'_>) -> String {
    let pairs = [
        ("{goal_file}", values.goal_file),
        ("{worktree}", values.worktree),
        ("{task_id}", values.task_id),
        ("{step_id}", values.step_id),
        ("{run_id}", values.run_id),
        ("{run_dir}", values.run_dir),
    ];
    // One pass, left to right, so a value that happens to contain a `{name}` stays as is.
    let mut rendered = String::with_capacity(template.len() + 64);
    let mut rest = template;
    'scan: while !rest.is_empty() {
        for (name, value) in pairs {
            if let Some(after) = rest.strip_prefix(name) {
                rendered.push_str(&shell_quote(value));
                rest = after;
                continue 'scan;
            }
        }
        let next = rest.chars().next().map(char::len_utf8).unwrap_or(1);
        rendered.push_str(&rest[..next]);
        rest = &rest[next..];
    }
    rendered
}

/// The shell command of a step.
pub fn shell_command(
    step_kind: StepKind,
    step_id: &str,
    command: Option<&str>,
    agent_template: Option<&str>,
    values: &TemplateValues<'_>,
) -> Result<String, CommandError> {
    match step_kind {
        StepKind::Agent => agent_template.map(|template| render_agent_command(template, values)).ok_or(CommandError::NoAgentCommand),
        StepKind::Shell | StepKind::Test => {
            command.filter(|command| !command.trim().is_empty()).map(str::to_string).ok_or_else(|| CommandError::MissingCommand(step_id.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TemplateValues<'static> {
        TemplateValues { goal_file: "/runs/t/r/goal.md", worktree: "/w/it's", task_id: "t", step_id: "t.s0", run_id: "t.s0.a1", run_dir: "/runs/t/r" }
    }

    #[test]
    fn template_variables_become_quoted_words() {
        let rendered = render_agent_command("codex exec --cd {worktree} \"$(cat {goal_file})\" # {unknown}", &values());
        assert_eq!(rendered, r#"codex exec --cd '/w/it'\''s' "$(cat '/runs/t/r/goal.md')" # {unknown}"#);
    }

    #[test]
    fn an_agent_step_needs_a_template_and_a_shell_step_a_command() {
        assert_eq!(shell_command(StepKind::Agent, "s", None, None, &values()), Err(CommandError::NoAgentCommand));
        assert_eq!(shell_command(StepKind::Shell, "s", Some(" "), None, &values()), Err(CommandError::MissingCommand("s".into())));
        assert_eq!(shell_command(StepKind::Test, "s", Some("make test"), None, &values()).unwrap(), "make test");
    }
}
