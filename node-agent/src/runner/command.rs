//! What a step runs, as one `sh -c` command: the goal or acceptance command as written, or,
//! for a coding-agent step, the host's template (`BAA_AGENT_COMMAND`) with its variables
//! (`{goal_file}` …) filled in, shell-quoted. Pure.

use shared::status::StepKind;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum CommandError {
    #[error("step {0} has no command to run")]
    EmptyCommand(String),
    #[error("no coding-agent command is configured on this host (set BAA_AGENT_COMMAND or --agent-command)")]
    NoAgentTemplate,
    #[error("the merge step lists no branches to merge (its metadata.merge is missing or empty)")]
    NoMergeSources,
    #[error("constraints.deliver is pr but no pull-request command is configured on this host (set BAA_PR_COMMAND or --pr-command)")]
    NoPrTemplate,
}

pub struct TemplateValues<'a> {
    pub goal_file: &'a str,
    pub worktree: &'a str,
    pub task_id: &'a str,
    pub step_id: &'a str,
    pub run_id: &'a str,
    pub run_dir: &'a str,
    /// Where the agent may write its report (the card's headings, SPEC §12).
    pub report_file: &'a str,
    /// What the last round's failure (or a reviewer) said (SPEC §13); empty in the first round.
    pub feedback_file: &'a str,
    /// Where the agent may write what the run cost (JSON, SPEC §13).
    pub usage_file: &'a str,
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
        ("{report_file}", values.report_file),
        ("{feedback_file}", values.feedback_file),
        ("{usage_file}", values.usage_file),
    ];
    render_template(template, &pairs)
}

/// `template` with each `{name}` of `pairs` replaced by its value as one shell word.
pub fn render_template(template: &str, pairs: &[(&str, &str)]) -> String {
    // One pass, left to right, so a value that happens to contain a `{name}` stays as is.
    let mut rendered = String::with_capacity(template.len() + 64);
    let mut rest = template;
    'scan: while !rest.is_empty() {
        for (name, value) in pairs {
            if let Some(after) = rest.strip_prefix(*name) {
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
        StepKind::Agent => agent_template.map(|template| render_agent_command(template, values)).ok_or(CommandError::NoAgentTemplate),
        StepKind::Setup | StepKind::Shell | StepKind::Test | StepKind::Merge | StepKind::Deliver => command
            .filter(|command| !command.trim().is_empty())
            .map(str::to_string)
            .ok_or_else(|| CommandError::EmptyCommand(step_id.to_string())),
    }
}

/// What a deliver step needs: the task's branch and where it goes.
pub struct Delivery<'a> {
    pub pull_request: bool,
    pub remote: &'a str,
    pub branch: &'a str,
    pub base_branch: &'a str,
    pub title: &'a str,
    pub report_file: &'a str,
    pub task_id: &'a str,
    pub worktree: &'a str,
}

/// The deliver step's command: push the branch, then (for `pr`) the host's pull-request
/// template with `{branch} {base_branch} {title} {report_file} {remote} {task_id} {worktree}`.
pub fn deliver_command(delivery: &Delivery<'_>, pr_template: Option<&str>) -> Result<String, CommandError> {
    let push = format!("git push {} {}", shell_quote(delivery.remote), shell_quote(&format!("HEAD:refs/heads/{}", delivery.branch)));
    if !delivery.pull_request {
        return Ok(push);
    }
    let template = pr_template.ok_or(CommandError::NoPrTemplate)?;
    let pairs = [
        ("{branch}", delivery.branch),
        ("{base_branch}", delivery.base_branch),
        ("{title}", delivery.title),
        ("{report_file}", delivery.report_file),
        ("{remote}", delivery.remote),
        ("{task_id}", delivery.task_id),
        ("{worktree}", delivery.worktree),
    ];
    Ok(format!("{push} && {}", render_template(template, &pairs)))
}

/// The first http(s) URL in `text`: what a PR command such as `gh pr create` prints.
pub fn first_url(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '<' || c == '>' || c == '(')
        .find(|word| word.starts_with("https://") || word.starts_with("http://"))
        .map(|word| word.trim_end_matches(['.', ',', ')', ';']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TemplateValues<'static> {
        TemplateValues {
            goal_file: "/runs/t/r/goal.md",
            worktree: "/w/it's",
            task_id: "t",
            step_id: "t.s0",
            run_id: "t.s0.a1",
            run_dir: "/runs/t/r",
            report_file: "/runs/t/r/agent-report.md",
            feedback_file: "/runs/t/r/feedback.md",
            usage_file: "/runs/t/r/usage.json",
        }
    }

    #[test]
    fn template_variables_become_quoted_words() {
        let rendered = render_agent_command("codex exec --cd {worktree} \"$(cat {goal_file})\" # {unknown}", &values());
        assert_eq!(rendered, r#"codex exec --cd '/w/it'\''s' "$(cat '/runs/t/r/goal.md')" # {unknown}"#);
    }

    #[test]
    fn an_agent_step_needs_a_template_and_a_shell_step_a_command() {
        assert_eq!(shell_command(StepKind::Agent, "s", None, None, &values()), Err(CommandError::NoAgentTemplate));
        assert_eq!(shell_command(StepKind::Shell, "s", Some(" "), None, &values()), Err(CommandError::EmptyCommand("s".into())));
        assert_eq!(shell_command(StepKind::Test, "s", Some("make test"), None, &values()).unwrap(), "make test");
    }

    #[test]
    fn delivery_pushes_then_opens_the_pull_request() {
        let delivery = Delivery {
            pull_request: false,
            remote: "origin",
            branch: "baa/t1",
            base_branch: "main",
            title: "Fix it's parser",
            report_file: "/runs/t1/r/report.md",
            task_id: "t1",
            worktree: "/w/t1",
        };
        assert_eq!(deliver_command(&delivery, None).unwrap(), "git push 'origin' 'HEAD:refs/heads/baa/t1'");
        let pr = Delivery { pull_request: true, ..delivery };
        assert_eq!(deliver_command(&pr, None), Err(CommandError::NoPrTemplate));
        let command =
            deliver_command(&pr, Some("gh pr create --head {branch} --base {base_branch} --title {title} --body-file {report_file}"))
                .unwrap();
        assert_eq!(
            command,
            r#"git push 'origin' 'HEAD:refs/heads/baa/t1' && gh pr create --head 'baa/t1' --base 'main' --title 'Fix it'\''s parser' --body-file '/runs/t1/r/report.md'"#
        );
    }

    #[test]
    fn the_first_url_printed() {
        assert_eq!(
            first_url("Creating pull request\nhttps://github.com/me/app/pull/7\n").as_deref(),
            Some("https://github.com/me/app/pull/7")
        );
        assert_eq!(first_url("see (http://x.test/pr/1).").as_deref(), Some("http://x.test/pr/1"));
        assert_eq!(first_url("no link here"), None);
    }
}
