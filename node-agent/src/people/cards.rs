//! Task cards in the seed's format (SPEC §12), read for `node-agent tasks import`: YAML front
//! matter between `---` lines (`task_id, title, status, branch, repo, base_ref, depends_on,
//! write_scope, updated_at`, and optionally `task_type`, `review`, `deliver`, `target_host`),
//! then the goal as markdown;
//! an `## acceptance` section's list items are the acceptance commands. Report sections
//! (`## files_changed` …) are the output of a run and are not part of the goal.
//!
//! The front matter is read as the subset of YAML the cards use: `key: value` scalars (plain
//! or quoted), inline lists `[a, b]` and block lists of `- item` lines. Anything else is an
//! error naming the file and the line.

use std::collections::BTreeMap;

use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Card {
    pub key: String,
    pub title: String,
    pub goal: String,
    pub repo: Option<String>,
    pub branch: Option<String>,
    pub base_ref: Option<String>,
    pub depends_on: Vec<String>,
    pub write_scope: Vec<String>,
    pub acceptance: Vec<String>,
    pub task_type: Option<String>,
    pub review: bool,
    /// `constraints.deliver` (`none`, `push`, `pr`).
    pub deliver: Option<String>,
    pub target_host: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Text(String),
    List(Vec<String>),
}

fn unquote(text: &str) -> String {
    let text = text.trim();
    for quote in ['"', '\''] {
        if text.len() >= 2 && text.starts_with(quote) && text.ends_with(quote) {
            return text[1..text.len() - 1].to_string();
        }
    }
    text.to_string()
}

fn front_matter(lines: &[&str], file: &str) -> Result<BTreeMap<String, Yaml>, String> {
    let mut fields = BTreeMap::new();
    let mut list_of: Option<String> = None;
    for (index, line) in lines.iter().enumerate() {
        let number = index + 2;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(item) = trimmed.strip_prefix("- ").or_else(|| (trimmed == "-").then_some("")) {
            let Some(key) = &list_of else { return Err(format!("{file}:{number}: a list item outside a list")) };
            if let Some(Yaml::List(items)) = fields.get_mut(key) {
                items.push(unquote(item));
            }
            continue;
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            return Err(format!("{file}:{number}: expected `key: value`, got {trimmed:?}"));
        };
        let (key, value) = (key.trim().to_string(), value.trim());
        list_of = None;
        let parsed = if value.is_empty() {
            list_of = Some(key.clone());
            Yaml::List(Vec::new())
        } else if let Some(inner) = value.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            Yaml::List(inner.split(',').map(unquote).filter(|item| !item.is_empty()).collect())
        } else {
            Yaml::Text(unquote(value))
        };
        fields.insert(key, parsed);
    }
    Ok(fields)
}

/// The goal (the body without report and acceptance sections) and the acceptance commands.
fn body(lines: &[&str]) -> (String, Vec<String>) {
    const REPORT_SECTIONS: [&str; 6] = ["acceptance", "files_changed", "commands_run", "result", "risks", "next_handoff"];
    let mut goal = Vec::new();
    let mut acceptance = Vec::new();
    let mut section: Option<String> = None;
    for line in lines {
        if let Some(heading) = line.strip_prefix("## ") {
            let name = heading.trim().to_ascii_lowercase().replace([' ', '-'], "_");
            section = REPORT_SECTIONS.contains(&name.as_str()).then_some(name);
            if section.is_some() {
                continue;
            }
        }
        match section.as_deref() {
            None => goal.push(*line),
            Some("acceptance") => {
                if let Some(item) = line.trim().strip_prefix("- ") {
                    acceptance.push(item.trim().trim_matches('`').to_string());
                }
            }
            Some(_) => {}
        }
    }
    (goal.join("\n").trim().to_string(), acceptance)
}

pub fn parse(text: &str, file: &str) -> Result<Card, String> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.first().map(|line| line.trim()) != Some("---") {
        return Err(format!("{file}: a card starts with a `---` line and its front matter"));
    }
    let end =
        lines[1..].iter().position(|line| line.trim() == "---").ok_or_else(|| format!("{file}: the front matter has no closing `---`"))?
            + 1;
    let fields = front_matter(&lines[1..end], file)?;
    let text_of = |name: &str| match fields.get(name) {
        Some(Yaml::Text(text)) if !text.is_empty() => Some(text.clone()),
        _ => None,
    };
    let list_of = |name: &str| match fields.get(name) {
        Some(Yaml::List(items)) => items.clone(),
        Some(Yaml::Text(text)) if !text.is_empty() => vec![text.clone()],
        _ => Vec::new(),
    };
    let key = text_of("task_id").ok_or_else(|| format!("{file}: the front matter needs task_id"))?;
    let (goal, acceptance) = body(&lines[end + 1..]);
    let title = text_of("title").unwrap_or_else(|| key.clone());
    Ok(Card {
        goal: if goal.is_empty() { title.clone() } else { goal },
        title,
        repo: text_of("repo"),
        branch: text_of("branch"),
        base_ref: text_of("base_ref"),
        depends_on: list_of("depends_on"),
        write_scope: list_of("write_scope"),
        acceptance,
        task_type: text_of("task_type"),
        review: text_of("review").is_some_and(|text| text == "true"),
        deliver: text_of("deliver"),
        target_host: text_of("target_host"),
        key,
    })
}

/// The seed writes a base as `branch@commit` (`main@c5e007b`): the commit is the base.
fn base_ref_of(base_ref: &str) -> String {
    match base_ref.rsplit_once('@') {
        Some((_, commit)) if !base_ref.starts_with("task:") && !commit.is_empty() => commit.to_string(),
        _ => base_ref.to_string(),
    }
}

/// The `tasks.create` body of a card; `repo` and `deliver` when the card names none.
pub fn create_body(card: &Card, repo: Option<&str>, deliver: Option<&str>) -> Result<Value, String> {
    let repo = card.repo.as_deref().or(repo).ok_or_else(|| format!("{}: no repo (give --repo or a repo: line)", card.key))?;
    let mut body = json!({
        "repo": repo,
        "task_type": card.task_type.as_deref().unwrap_or("codex"),
        "title": card.title,
        "goal": card.goal,
        "key": card.key,
        "depends_on": card.depends_on,
        "write_scope": card.write_scope,
        "acceptance": card.acceptance,
        "review": card.review,
    });
    if let Some(branch) = &card.branch {
        body["branch"] = branch.clone().into();
    }
    let mut constraints = serde_json::Map::new();
    if let Some(base_ref) = &card.base_ref {
        constraints.insert("base_ref".into(), base_ref_of(base_ref).into());
    }
    if let Some(deliver) = card.deliver.as_deref().or(deliver) {
        constraints.insert("deliver".into(), deliver.into());
    }
    if let Some(host) = &card.target_host {
        constraints.insert("target_host".into(), host.clone().into());
    }
    if !constraints.is_empty() {
        body["constraints"] = Value::Object(constraints);
    }
    Ok(body)
}

/// The cards in an order where each comes after the cards it depends on (dependencies outside
/// the set must exist already); a cycle is an error naming it.
pub fn in_dependency_order(cards: Vec<Card>) -> Result<Vec<Card>, String> {
    let mut remaining = cards;
    let mut ordered: Vec<Card> = Vec::new();
    while !remaining.is_empty() {
        let keys: Vec<String> = remaining.iter().map(|card| card.key.clone()).collect();
        let ready = remaining.iter().position(|card| card.depends_on.iter().all(|dependency| !keys.contains(dependency)));
        match ready {
            Some(index) => ordered.push(remaining.remove(index)),
            None => return Err(format!("the cards depend on each other in a cycle: {}", keys.join(", "))),
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T014: &str = "---\ntask_id: T-014\ntitle: \"控制面：任务依赖\"\nstatus: review\nbranch: feat/t-014\nrepo: /srv/repo\nbase_ref: main@c5e007b\ndepends_on: [T-013]\nwrite_scope:\n  - control-worker/src/**\n  - docs/api.md\nupdated_at: 2026-03-22\n---\n\n## 目标\n\n让任务可以依赖其他任务。\n\n## acceptance\n\n- `cargo test -p control-worker`\n- sh check.sh\n\n## files_changed\n\n- x.rs\n\n## result\n\ndone\n";

    #[test]
    fn a_card_in_the_seeds_format_becomes_a_task() {
        let card = parse(T014, "T-014.md").unwrap();
        assert_eq!(card.key, "T-014");
        assert_eq!(card.title, "控制面：任务依赖");
        assert_eq!(card.depends_on, ["T-013"]);
        assert_eq!(card.write_scope, ["control-worker/src/**", "docs/api.md"]);
        assert_eq!(card.acceptance, ["cargo test -p control-worker", "sh check.sh"]);
        assert_eq!(card.goal, "## 目标\n\n让任务可以依赖其他任务。", "report sections are not the goal");
        let body = create_body(&card, None, None).unwrap();
        assert_eq!(body["constraints"], json!({"base_ref": "c5e007b"}));
        assert_eq!(body["branch"], "feat/t-014");
        assert_eq!(body["task_type"], "codex");
        let delivered = create_body(&card, None, Some("push")).unwrap();
        assert_eq!(delivered["constraints"]["deliver"], "push", "--deliver for cards that do not say");
        let wave = parse(
            "---\ntask_id: W-3\ntask_type: integrate\ndepends_on: [T-013, T-014]\ndeliver: none\ntarget_host: mini\n---\nmerge\n",
            "w.md",
        )
        .unwrap();
        let body = create_body(&wave, Some("/srv/repo"), Some("push")).unwrap();
        assert_eq!(body["task_type"], "integrate");
        assert_eq!(body["constraints"], json!({"deliver": "none", "target_host": "mini"}), "the card's own word wins");
    }

    #[test]
    fn bad_cards_name_the_file_and_the_line() {
        assert!(parse("no front matter", "a.md").unwrap_err().contains("a.md"));
        assert!(parse("---\ntask_id: T-1\nnot a field\n---\n", "b.md").unwrap_err().contains("b.md:3"));
        assert!(parse("---\ntitle: x\n---\n", "c.md").unwrap_err().contains("task_id"));
    }

    #[test]
    fn cards_are_ordered_by_their_dependencies_and_a_cycle_is_refused() {
        let card = |key: &str, depends_on: &[&str]| Card {
            key: key.into(),
            depends_on: depends_on.iter().map(|key| key.to_string()).collect(),
            ..Card::default()
        };
        let ordered = in_dependency_order(vec![card("C", &["B"]), card("B", &["A", "T-0"]), card("A", &[])]).unwrap();
        assert_eq!(ordered.iter().map(|card| card.key.as_str()).collect::<Vec<_>>(), ["A", "B", "C"]);
        assert!(in_dependency_order(vec![card("A", &["B"]), card("B", &["A"])]).unwrap_err().contains("cycle"));
    }
}
