//! What the people's CLI prints: tables whose columns line up, a task with what it delivered,
//! events, a coloured diff. Each function returns text (tests read it); the verbs print it.

use std::fmt::Write;

use chrono::TimeZone;
use serde_json::Value;

/// A unix time as people read it: the local date and time with its offset.
pub fn local_time(seconds: i64) -> String {
    match chrono::Local.timestamp_opt(seconds, 0).single() {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S%:z").to_string(),
        None => seconds.to_string(),
    }
}

pub fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

/// Rows under a header, each column as wide as its widest cell (by characters), the last
/// column left ragged; every line ends with a newline.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|cell| cell.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(index, cell)| if index == last { cell.clone() } else { format!("{cell:<width$}", width = widths[index]) })
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

/// `queued (dependencies)`: the status, and why it is not moving.
pub fn status_of(task: &Value) -> String {
    match task["waiting_reason"]["code"].as_str() {
        Some(code) => format!("{} ({code})", text(&task["status"])),
        None => text(&task["status"]).to_string(),
    }
}

/// The list of tasks: key, id, status, host, created, title.
pub fn task_list(tasks: &[Value]) -> String {
    if tasks.is_empty() {
        return "no tasks\n".to_string();
    }
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|task| {
            vec![
                task["key"].as_str().unwrap_or("-").to_string(),
                text(&task["task_id"]).to_string(),
                status_of(task),
                task["assigned_host"].as_str().unwrap_or("-").to_string(),
                local_time(task["created_at"].as_i64().unwrap_or(0)),
                text(&task["title"]).to_string(),
            ]
        })
        .collect();
    table(&["KEY", "TASK", "STATUS", "HOST", "CREATED", "TITLE"], &rows)
}

/// One line for a task: `[key ]id  status  created  title`.
pub fn task_line(task: &Value) -> String {
    let name = task["key"].as_str().map(|key| format!("{key} ")).unwrap_or_default();
    format!(
        "{name}{}  {}  {}  {}\n",
        text(&task["task_id"]),
        status_of(task),
        local_time(task["created_at"].as_i64().unwrap_or(0)),
        text(&task["title"])
    )
}

/// A task as `tasks show` prints it: where it stands, why it waits, what it delivered
/// (branch, commits, files, where it was pushed), what it cost, and its steps.
pub fn task_detail(detail: &Value) -> String {
    // `tasks.read` answers the task's fields with steps, runs and history beside them.
    let task = detail;
    let mut out = task_line(task);
    let mut field = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<10} {value}");
    };
    for (label, name) in [("repo", "repo"), ("host", "assigned_host"), ("reason", "status_reason")] {
        if let Some(value) = task[name].as_str() {
            field(label, value.to_string());
        }
    }
    if let Some(message) = task["waiting_reason"]["message"].as_str() {
        let since = task["waiting_reason"]["since"].as_i64().map(|since| format!(" (since {})", local_time(since))).unwrap_or_default();
        field("waiting", format!("{message}{since}"));
    }
    if let Some(depends_on) = task["depends_on"].as_array().filter(|list| !list.is_empty()) {
        field("needs", depends_on.iter().map(text).collect::<Vec<_>>().join(", "));
    }
    if let Some(scope) = task["write_scope"].as_array().filter(|list| !list.is_empty()) {
        field("scope", scope.iter().map(text).collect::<Vec<_>>().join(", "));
    }
    let round = detail["steps"].as_array().into_iter().flatten().filter_map(|step| step["round"].as_i64()).max();
    if let Some(round) = round.filter(|_| task["task_type"] == "codex") {
        let most = task["constraints"]["max_rounds"].as_i64().unwrap_or(3);
        field("round", format!("{round} of {most}"));
    }
    let result = &task["result"];
    field("branch", text(&task["branch_name"]).to_string());
    if result.is_object() {
        let short = |name: &str| result[name].as_str().map(|sha| sha.chars().take(12).collect::<String>()).unwrap_or_default();
        field("base", format!("{} ({})", short("base_commit"), text(&task["base_ref"])));
        field("head", short("head_commit"));
        field(
            "commits",
            format!(
                "{} ({} files changed, +{} -{})",
                result["commits"].as_i64().unwrap_or(0),
                result["files_changed"].as_array().map_or(0, Vec::len),
                result["insertions"].as_i64().unwrap_or(0),
                result["deletions"].as_i64().unwrap_or(0)
            ),
        );
        for file in result["files_changed"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "  {:<10} {}", "", text(file));
        }
        let delivery = match (result["pushed_to"].as_str(), result["pr_url"].as_str()) {
            (_, Some(pr)) => format!("pull request {pr}"),
            (Some(pushed), None) => format!("pushed to {pushed}"),
            (None, None) => format!("on host {} only ({})", text(&result["host"]), deliver_mode(task)),
        };
        let mut field = |label: &str, value: String| {
            let _ = writeln!(out, "  {label:<10} {value}");
        };
        field("delivery", delivery);
    } else {
        let _ = writeln!(out, "  {:<10} nothing yet (no step has run)", "delivered");
    }
    let usage = &detail["usage"];
    if usage.is_object() {
        let models: Vec<&str> = usage["models"].as_array().into_iter().flatten().map(text).collect();
        let _ = writeln!(
            out,
            "  {:<10} {} input and {} output tokens, ${:.2}, {} run(s){}",
            "usage",
            usage["input_tokens"].as_i64().unwrap_or(0),
            usage["output_tokens"].as_i64().unwrap_or(0),
            usage["cost_usd"].as_f64().unwrap_or(0.0),
            usage["runs"].as_i64().unwrap_or(0),
            if models.is_empty() { String::new() } else { format!(" ({})", models.join(", ")) }
        );
    }
    for step in detail["steps"].as_array().into_iter().flatten() {
        let when = step["started_at"].as_i64().map(local_time).unwrap_or_default();
        let round = step["round"].as_i64().filter(|round| *round > 1).map(|round| format!(" (round {round})")).unwrap_or_default();
        let _ = writeln!(out, "  step {} {:<9} {}  {}{round}", step["step_index"], text(&step["status"]), when, text(&step["title"]));
    }
    out
}

fn deliver_mode(task: &Value) -> String {
    format!("deliver: {}", task["constraints"]["deliver"].as_str().unwrap_or("none"))
}

/// One event: local time, kind, subject, message.
pub fn event_line(event: &Value) -> String {
    format!(
        "{}  {:<15} {}: {}\n",
        local_time(event["created_at"].as_i64().unwrap_or(0)),
        text(&event["kind"]),
        text(&event["subject"]),
        text(&event["message"])
    )
}

/// The fleet's mode, leader, counts, hosts and parked accounts, as `system state` prints them.
pub fn system_state(state: &Value) -> String {
    let mut out = format!("mode      {}{}\n", text(&state["mode"]), if state["drained"] == true { " (drained)" } else { "" });
    let leader = match state["holder_host"].as_str() {
        Some(host) if state["leader_live"] == true => format!("{host} (term {})", state["term"]),
        Some(host) => format!("{host} (term {}, lease lapsed)", state["term"]),
        None => "nobody".to_string(),
    };
    let _ = writeln!(out, "leader    {leader}");
    let counts = |name: &str| -> String {
        let counts: Vec<String> =
            state[name].as_object().into_iter().flatten().map(|(status, count)| format!("{count} {status}")).collect();
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.join(", ")
        }
    };
    let _ = writeln!(out, "tasks     {}", counts("task_counts"));
    let _ = writeln!(out, "steps     {}", counts("step_counts"));
    for parked in state["parked_accounts"].as_array().into_iter().flatten() {
        let until = parked["parked_until"].as_i64().map(local_time).unwrap_or_default();
        let _ = writeln!(out, "parked    account {} until {until}", text(&parked["account"]));
    }
    let rows: Vec<Vec<String>> = state["controllers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|controller| {
            vec![
                text(&controller["host"]).to_string(),
                text(&controller["role"]).to_string(),
                if controller["alive"] == true { "alive".to_string() } else { "silent".to_string() },
                text(&controller["status"]).to_string(),
                local_time(controller["last_heartbeat_at"].as_i64().unwrap_or(0)),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push('\n');
        out.push_str(&table(&["HOST", "ROLE", "LIVENESS", "STATUS", "LAST HEARD"], &rows));
    }
    out
}

/// A unified diff with ANSI colours: file headers bold, hunks cyan, additions green, removals red.
pub fn coloured_diff(patch: &str) -> String {
    let mut out = String::with_capacity(patch.len() + patch.len() / 4);
    for line in patch.split_inclusive('\n') {
        let colour = if line.starts_with("diff --git") || line.starts_with("+++") || line.starts_with("---") {
            "\x1b[1m"
        } else if line.starts_with("@@") {
            "\x1b[36m"
        } else if line.starts_with('+') {
            "\x1b[32m"
        } else if line.starts_with('-') {
            "\x1b[31m"
        } else {
            ""
        };
        if colour.is_empty() {
            out.push_str(line);
        } else {
            let (body, end) = line.strip_suffix('\n').map_or((line, ""), |body| (body, "\n"));
            let _ = write!(out, "{colour}{body}\x1b[0m{end}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_line_up_and_lines_end() {
        let text =
            table(&["A", "LONG HEADER", "C"], &[vec!["wide cell".into(), "x".into(), "ü".into()], vec!["y".into(), "z".into(), "".into()]]);
        assert_eq!(text, "A          LONG HEADER  C\nwide cell  x            ü\ny          z\n");
        assert_eq!(task_list(&[]), "no tasks\n");
    }

    #[test]
    fn show_says_what_was_delivered_and_what_it_cost() {
        let detail = json!({"task_id": "task_1", "key": "T-1", "status": "succeeded", "task_type": "codex", "title": "t",
            "created_at": 0, "branch_name": "baa/task_1", "base_ref": "main", "constraints": {"deliver": "push"},
            "result": {"base_commit": "a".repeat(40), "head_commit": "b".repeat(40), "commits": 2, "files_changed": ["src/x.rs"],
                "insertions": 5, "deletions": 1, "host": "mini", "pushed_to": "origin"},
            "usage": {"runs": 2, "input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.25, "models": ["gpt-5"]},
            "steps": [{"step_index": 0, "status": "succeeded", "title": "agent", "round": 2}]});
        let text = task_detail(&detail);
        for expected in [
            "  branch     baa/task_1\n",
            "  base       aaaaaaaaaaaa (main)\n",
            "  head       bbbbbbbbbbbb\n",
            "  commits    2 (1 files changed, +5 -1)\n",
            "             src/x.rs\n",
            "  delivery   pushed to origin\n",
            "  usage      1200 input and 300 output tokens, $0.25, 2 run(s) (gpt-5)\n",
            "  round      2 of 3\n",
        ] {
            assert!(text.contains(expected), "{expected:?} in:\n{text}");
        }
    }

    #[test]
    fn a_diff_is_coloured_by_line_kind() {
        let coloured = coloured_diff("diff --git a/x b/x\n@@ -1 +1 @@\n-old\n+new\n same\n");
        assert_eq!(
            coloured,
            "\x1b[1mdiff --git a/x b/x\x1b[0m\n\x1b[36m@@ -1 +1 @@\x1b[0m\n\x1b[31m-old\x1b[0m\n\x1b[32m+new\x1b[0m\n same\n"
        );
    }
}
