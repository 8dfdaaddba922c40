//! Each tool as calls of the control plane, through the people's CLI client: the arguments
//! (checked against the tool's schema already) → the API → an [`Answer`].

use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::answers::{self, cut, tail, Answer};
use super::tools::{self, Tool};
use super::wait::{self, Progress, Target};
use crate::people::api::{Api, Failure};
use crate::people::print::{self, text};
use crate::people::{cards, create_cards};

/// The most pages of one run's output read for a tail (1,000 chunks each).
const MAX_LOG_PAGES: usize = 200;
/// The most bytes of output a tail answers.
const MAX_TAIL_BYTES: usize = 64 * 1024;
/// The newest tasks searched when a list is filtered by repository, key or text.
const LIST_SEARCH_PAGES: usize = 5;

struct Arguments<'a>(&'a Map<String, Value>);

impl Arguments<'_> {
    fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    fn int(&self, name: &str, default: i64) -> i64 {
        self.0.get(name).and_then(Value::as_i64).unwrap_or(default)
    }

    /// A required string (the schema check made sure of it).
    fn required(&self, name: &str) -> Result<&str, Failure> {
        self.str(name).ok_or_else(|| Failure::new("invalid_request", format!("{name} is required")).with_field(name))
    }
}

pub async fn call(
    api: &Api,
    tool: Tool,
    arguments: &Map<String, Value>,
    progress: Option<UnboundedSender<Progress>>,
) -> Result<Answer, Failure> {
    let args = Arguments(arguments);
    match tool {
        Tool::TasksCreate => {
            let (created, replayed) = api.create(&Value::Object(arguments.clone())).await?;
            Ok(Answer { text: answers::created(&created, replayed), data: created })
        }
        Tool::CardsImport => import(api, &args).await,
        Tool::TasksList => list(api, &args).await,
        Tool::TasksShow => {
            let detail = api.get(&format!("/v1/tasks/{}", api.task_id(args.required("task")?).await?)).await?;
            let has_run = detail["runs"].as_array().is_some_and(|runs| !runs.is_empty());
            let report = if has_run { api.get(&format!("/v1/tasks/{}/report", text(&detail["task_id"]))).await.ok() } else { None };
            let text = answers::task(&detail, report.as_ref().and_then(|report| report["markdown"].as_str()));
            Ok(Answer { text, data: detail })
        }
        Tool::TasksLogs => logs(api, &args).await,
        Tool::TasksReport => {
            let report = api.get(&format!("/v1/tasks/{}/report", api.task_id(args.required("task")?).await?)).await?;
            let text =
                report["markdown"].as_str().filter(|markdown| !markdown.trim().is_empty()).unwrap_or("no report yet: no step has run\n");
            Ok(Answer { text: text.to_string(), data: report })
        }
        Tool::TasksDiff => diff(api, &args).await,
        Tool::TasksCancel => act(api, &args, "cancel", json!({"reason": args.str("reason")})).await,
        Tool::TasksApprove => act(api, &args, "approve", json!({"comment": args.str("comment")})).await,
        Tool::TasksReject => {
            let body = json!({"reason": args.str("reason"), "retry": arguments.get("retry"), "comments": arguments.get("comments")});
            act(api, &args, "reject", body).await
        }
        Tool::SystemState => {
            let state = api.get("/v1/system/state").await?;
            Ok(Answer { text: print::system_state(&state), data: state })
        }
        Tool::AccountsResume => {
            let account = args.required("account")?;
            let resumed = api.post(&format!("/v1/accounts/{}/resume", path_segment(account)), &json!({})).await?;
            let text = format!(
                "account {account} resumed: {} waiting step(s) ready again\n",
                resumed["resumed_steps"].as_array().map_or(0, Vec::len)
            );
            Ok(Answer { text, data: resumed })
        }
        Tool::WaitFor => {
            let target = match (args.str("task"), args.str("wave")) {
                (Some(task), None) => Target::Task(task.to_string()),
                (None, Some(wave)) => Target::Wave(wave.to_string()),
                _ => return Err(Failure::new("invalid_request", "give task or wave, one of them").with_field("task")),
            };
            let timeout = Duration::from_secs(args.int("timeout_sec", tools::DEFAULT_WAIT_SEC).clamp(1, tools::MAX_WAIT_SEC) as u64);
            wait::wait_for(api, target, timeout, progress).await
        }
    }
}

/// A path segment with everything but unreserved characters percent-encoded.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn import(api: &Api, args: &Arguments<'_>) -> Result<Answer, Failure> {
    let mut parsed = Vec::new();
    for (index, card) in args.0["cards"].as_array().into_iter().flatten().enumerate() {
        let field = format!("cards[{index}]");
        let card = cards::parse(card.as_str().unwrap_or_default(), &field)
            .map_err(|error| Failure::new("invalid_request", error).with_field(&field))?;
        parsed.push(card);
    }
    let imported = create_cards(api, parsed, args.str("repo"), args.str("deliver")).await?;
    let mut out = String::new();
    let mut data = Vec::new();
    for card in &imported {
        out.push_str(&format!(
            "{} {} as task {}: {}, branch {}\n",
            if card.replayed { "exists " } else { "created" },
            card.key,
            text(&card.created["task_id"]),
            print::status_of(&card.created["task"]),
            text(&card.created["branch_name"])
        ));
        data.push(json!({"key": card.key, "created": !card.replayed, "task": card.created["task"]}));
    }
    Ok(Answer { text: out, data: json!({"cards": data}) })
}

async fn list(api: &Api, args: &Arguments<'_>) -> Result<Answer, Failure> {
    let limit = args.int("limit", 50).clamp(1, 200) as usize;
    let status = args.str("status").map(|status| format!("&status={status}")).unwrap_or_default();
    let (repo, prefix, needle) = (args.str("repo"), args.str("key_prefix"), args.str("text").map(str::to_lowercase));
    let filtered = repo.is_some() || prefix.is_some() || needle.is_some();
    let keep = |task: &Value| {
        repo.is_none_or(|repo| task["repo"] == repo)
            && prefix.is_none_or(|prefix| task["key"].as_str().is_some_and(|key| key.starts_with(prefix)))
            && needle.as_ref().is_none_or(|needle| {
                [&task["title"], &task["goal"], &task["key"]].iter().any(|field| text(field).to_lowercase().contains(needle.as_str()))
            })
    };
    let mut tasks = Vec::new();
    let mut cursor = String::new();
    let mut more = false;
    for _ in 0..if filtered { LIST_SEARCH_PAGES } else { 1 } {
        let page_size = if filtered { 200 } else { limit };
        let page = api.get(&format!("/v1/tasks?limit={page_size}{status}{cursor}")).await?;
        tasks.extend(page["tasks"].as_array().into_iter().flatten().filter(|task| keep(task)).cloned());
        more = page["next_cursor"].is_string();
        match page["next_cursor"].as_str() {
            Some(next) if tasks.len() < limit => cursor = format!("&cursor={next}"),
            _ => break,
        }
    }
    more |= tasks.len() > limit;
    tasks.truncate(limit);
    let mut text = print::task_list(&tasks);
    if more {
        text.push_str(&format!("({} shown, newest first; there are more: narrow with status, repo, key_prefix or text)\n", tasks.len()));
    }
    Ok(Answer { text, data: json!({"tasks": tasks, "more": more}) })
}

async fn logs(api: &Api, args: &Arguments<'_>) -> Result<Answer, Failure> {
    let task_id = api.task_id(args.required("task")?).await?;
    let lines = args.int("lines", tools::DEFAULT_LOG_LINES).clamp(1, tools::MAX_LOG_LINES) as usize;
    let detail = api.get(&format!("/v1/tasks/{task_id}")).await?;
    let newest_run = detail["runs"].as_array().into_iter().flatten().max_by_key(|run| run["claimed_at"].as_i64().unwrap_or(0));
    let Some(run_id) = args.str("run_id").or_else(|| newest_run.and_then(|run| run["run_id"].as_str())).map(str::to_string) else {
        let text = format!("task {task_id} has no run yet ({})\n", print::status_of(&detail));
        return Ok(Answer { text, data: json!({"task_id": task_id, "run_id": null, "text": ""}) });
    };
    let stream = args.str("stream");
    let filter = stream.map(|stream| format!("&stream={stream}")).unwrap_or_default();
    let mut output = String::new();
    let mut after = 0;
    let mut complete = false;
    for _ in 0..MAX_LOG_PAGES {
        let page = api.get(&format!("/v1/tasks/{task_id}/logs?run_id={run_id}&after={after}&limit=1000{filter}")).await?;
        let chunks = page["chunks"].as_array().cloned().unwrap_or_default();
        for chunk in &chunks {
            if stream.is_some() || chunk["stream"] != "worker" {
                output.push_str(text(&chunk["text"]));
            }
            after = chunk["cursor"].as_i64().unwrap_or(after);
        }
        // Only the tail is kept while reading.
        if output.len() > 4 * MAX_TAIL_BYTES {
            output = tail(&output, lines).to_string();
        }
        if chunks.is_empty() || page["next_cursor"].is_null() {
            complete = true;
            break;
        }
    }
    let last = tail(&output, lines);
    let start = last.len().saturating_sub(MAX_TAIL_BYTES);
    let shown = match last[start..].find('\n') {
        Some(newline) if start > 0 => &last[start + newline + 1..],
        _ => last,
    };
    let streams = stream.unwrap_or("stdout and stderr");
    let mut text = format!(
        "{} {} line(s) of run {run_id} ({streams}) of task {task_id} ({}):\n{shown}",
        if complete { "The last" } else { "The latest read" },
        shown.lines().count(),
        print::status_of(&detail)
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if !complete {
        text.push_str(&format!("(the run's output goes on past {MAX_LOG_PAGES} pages; this is where reading stopped)\n"));
    }
    Ok(Answer { text, data: json!({"task_id": task_id, "run_id": run_id, "text": shown, "complete": complete}) })
}

async fn diff(api: &Api, args: &Arguments<'_>) -> Result<Answer, Failure> {
    let task_id = api.task_id(args.required("task")?).await?;
    let most = args.int("max_bytes", tools::DEFAULT_DIFF_BYTES).clamp(1_000, tools::MAX_DIFF_BYTES) as usize;
    let mut diff = api.get(&format!("/v1/tasks/{task_id}/diff")).await?;
    let Some(patch) = diff["patch"].as_str().map(str::to_string) else {
        let text = format!("no diff for task {task_id}: {}\n", diff["reason"].as_str().unwrap_or("none taken yet"));
        return Ok(Answer { text, data: diff });
    };
    let (shown, was_cut) = cut(&patch, most);
    let head = format!(
        "Branch {} of task {task_id}, {} → {}:\n",
        text(&diff["branch"]),
        answers::short_commit(text(&diff["base_commit"])),
        answers::short_commit(text(&diff["head_commit"]))
    );
    let mut text = head + shown;
    if was_cut {
        text.push_str(&format!(
            "\n… cut at {} of {} bytes: ask again with a larger max_bytes (at most {})\n",
            shown.len(),
            patch.len(),
            tools::MAX_DIFF_BYTES
        ));
    }
    diff["patch"] = json!(shown);
    diff["truncated"] = json!(was_cut);
    diff["patch_bytes"] = json!(patch.len());
    Ok(Answer { text, data: diff })
}

/// `POST /v1/tasks/:task_id/<verb>`: the task as it is after.
async fn act(api: &Api, args: &Arguments<'_>, verb: &str, body: Value) -> Result<Answer, Failure> {
    let task_id = api.task_id(args.required("task")?).await?;
    let answer = api.post(&format!("/v1/tasks/{task_id}/{verb}"), &body).await?;
    let mut text = print::task_line(&answer["task"]);
    if verb == "reject" && answer["task"]["status"] != "failed" {
        text.push_str("another round starts with the reason and the comments as its feedback\n");
    }
    Ok(Answer { text, data: answer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_one_path_segment() {
        assert_eq!(path_segment("claude:ann@example.com"), "claude%3Aann%40example.com");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
