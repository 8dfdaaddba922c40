//! `node-agent tasks <verb>`: the control plane for people (SPEC §12), with an admin or
//! read-only token: create, list, show, logs (`--follow`), cancel, approve, reject, report, and
//! import of task cards in the seed's format. Times are shown as local date-times.
//!
//! - [`cards`]: a card file → a task to create; cards in dependency order.
//! - [`api`]: the admin calls, over HTTP.
//! - this file: the verbs and what they print.

pub mod api;
pub mod cards;

use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeZone;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use shared::status::TaskStatus;

use api::Api;

#[derive(Debug, Parser)]
#[command(
    name = "node-agent tasks",
    about = "Tasks on the control plane, for people: create, list, show, logs, cancel, approve, reject, report, import, watch"
)]
pub struct TasksArgs {
    /// Base URL of the Control API
    #[arg(long, env = "BAA_CONTROL_API_BASE")]
    pub control_api_base: Option<String>,
    /// An admin token (a read-only one is enough to look)
    #[arg(long, env = "BAA_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the control plane's JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create a task
    Create {
        #[arg(long)]
        repo: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        goal: String,
        /// shell, codex, or integrate (merges the branches of its --depends-on)
        #[arg(long = "type", default_value = "codex")]
        task_type: String,
        #[arg(long)]
        key: Option<String>,
        /// The task's branch (default baa/<task id>)
        #[arg(long)]
        branch: Option<String>,
        /// none, push, or pr
        #[arg(long)]
        deliver: Option<String>,
        #[arg(long = "depends-on")]
        depends_on: Vec<String>,
        #[arg(long = "write-scope")]
        write_scope: Vec<String>,
        #[arg(long)]
        acceptance: Vec<String>,
        #[arg(long)]
        review: bool,
    },
    /// Newest tasks first
    List {
        #[arg(long)]
        status: Option<String>,
    },
    /// One task (its id or its key)
    Show { task: String },
    /// A task's output (stdout and stderr); with --follow, until the task ends
    Logs {
        task: String,
        #[arg(long)]
        follow: bool,
        /// The runner's own events (worker.log) too
        #[arg(long)]
        events: bool,
    },
    Cancel {
        task: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Approve {
        task: String,
        #[arg(long)]
        comment: Option<String>,
    },
    Reject {
        task: String,
        #[arg(long)]
        reason: String,
    },
    /// A task's report in the card's sections
    Report { task: String },
    /// The event feed as it comes (tasks started, rounds, ends, reviews, parked accounts, mode changes), until interrupted
    Watch {
        /// Print this many of the latest events first
        #[arg(long, default_value = "10")]
        last: u32,
        /// Stop after this many seconds (for scripts) [default: never]
        #[arg(long)]
        for_sec: Option<u64>,
    },
    /// Create the tasks of card files, in dependency order; a card already imported is left as it is
    Import {
        /// For cards without a repo: line
        #[arg(long)]
        repo: Option<String>,
        /// For cards without a deliver: line: none, push (needed when a wave spreads over hosts), pr
        #[arg(long)]
        deliver: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// A unix time as people read it: the local date and time with its offset.
pub fn local_time(seconds: i64) -> String {
    match chrono::Local.timestamp_opt(seconds, 0).single() {
        Some(time) => time.format("%Y-%m-%d %H:%M:%S%:z").to_string(),
        None => seconds.to_string(),
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

fn print_task_line(task: &Value) {
    let name = task["key"].as_str().map(|key| format!("{key} ")).unwrap_or_default();
    // Why it is not moving, beside the status: `queued (scope)`.
    let waiting = task["waiting_reason"]["code"].as_str().map(|code| format!(" ({code})")).unwrap_or_default();
    println!(
        "{name}{}  {:<9}  {}  {}",
        text(&task["task_id"]),
        format!("{}{waiting}", text(&task["status"])),
        local_time(task["created_at"].as_i64().unwrap_or(0)),
        text(&task["title"])
    );
}

fn print_task(task: &Value) {
    print_task_line(task);
    for (label, field) in [("repo", "repo"), ("branch", "branch_name"), ("host", "assigned_host"), ("reason", "status_reason")] {
        if let Some(value) = task[field].as_str() {
            println!("  {label:<8} {value}");
        }
    }
    if let Some(message) = task["waiting_reason"]["message"].as_str() {
        let since = task["waiting_reason"]["since"].as_i64().map(local_time).unwrap_or_default();
        println!("  {:<8} {message} (since {since})", "waiting");
    }
    if let Some(depends_on) = task["depends_on"].as_array().filter(|list| !list.is_empty()) {
        println!("  {:<8} {}", "needs", depends_on.iter().map(text).collect::<Vec<_>>().join(", "));
    }
    if let Some(scope) = task["write_scope"].as_array().filter(|list| !list.is_empty()) {
        println!("  {:<8} {}", "scope", scope.iter().map(text).collect::<Vec<_>>().join(", "));
    }
    for step in task["steps"].as_array().into_iter().flatten() {
        let when = step["started_at"].as_i64().map(local_time).unwrap_or_default();
        let round = step["round"].as_i64().filter(|round| *round > 1).map(|round| format!(" (round {round})")).unwrap_or_default();
        println!("  step {} {:<9} {}  {}{round}", step["step_index"], text(&step["status"]), when, text(&step["title"]));
    }
}

/// One event as people read it: local time, kind, subject, message.
fn print_event(event: &Value) {
    println!(
        "{}  {:<15} {}: {}",
        local_time(event["created_at"].as_i64().unwrap_or(0)),
        text(&event["kind"]),
        text(&event["subject"]),
        text(&event["message"])
    );
}

async fn watch(api: &Api, last: u32, for_sec: Option<u64>, json_out: bool) -> Result<(), String> {
    let stop = for_sec.map(|sec| std::time::Instant::now() + Duration::from_secs(sec));
    let print = |event: &Value| if json_out { println!("{event}") } else { print_event(event) };
    let first = api.get(&format!("/v1/events?last={}", last.max(1))).await?;
    let mut after = first["next_after"].as_i64().unwrap_or(0);
    first["events"].as_array().into_iter().flatten().skip(usize::from(last == 0)).for_each(print);
    while stop.is_none_or(|stop| std::time::Instant::now() < stop) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let page = api.get(&format!("/v1/events?after={after}&limit=500")).await?;
        page["events"].as_array().into_iter().flatten().for_each(print);
        after = page["next_after"].as_i64().unwrap_or(after);
    }
    Ok(())
}

async fn follow_logs(api: &Api, task_id: &str, follow: bool, events: bool) -> Result<(), String> {
    let mut after = 0;
    // Set once the task has ended: one more look takes the output stored just before the end.
    let mut ended: Option<String> = None;
    loop {
        let page = api.get(&format!("/v1/tasks/{task_id}/logs?after={after}&limit=1000")).await?;
        let chunks = page["chunks"].as_array().cloned().unwrap_or_default();
        for chunk in &chunks {
            if events || chunk["stream"] != "worker" {
                print!("{}", text(&chunk["text"]));
            }
            after = chunk["cursor"].as_i64().unwrap_or(after);
        }
        if !chunks.is_empty() {
            continue;
        }
        if let Some(status) = ended {
            eprintln!("task {task_id} is {status}");
            return Ok(());
        }
        if !follow {
            return Ok(());
        }
        let status = api.get(&format!("/v1/tasks/{task_id}")).await?["status"].as_str().and_then(TaskStatus::parse);
        match status {
            Some(status) if status.is_terminal() || status == TaskStatus::Review => ended = Some(status.to_string()),
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

async fn import(api: &Api, repo: Option<&str>, deliver: Option<&str>, files: &[PathBuf], json_out: bool) -> Result<(), String> {
    let mut read = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let body = std::fs::read_to_string(file).map_err(|error| format!("{name}: {error}"))?;
        read.push(cards::parse(&body, &name)?);
    }
    let ordered = cards::in_dependency_order(read)?;
    // Every card is checked before any is created.
    let bodies = ordered.iter().map(|card| cards::create_body(card, repo, deliver)).collect::<Result<Vec<_>, _>>()?;
    for (card, body) in ordered.iter().zip(bodies) {
        let (created, replayed) = api.create(&body).await?;
        if json_out {
            println!("{}", json!({"key": card.key, "task_id": created["task_id"], "created": !replayed}));
        } else {
            println!("{} {} {}", if replayed { "exists " } else { "created" }, card.key, text(&created["task_id"]));
        }
    }
    Ok(())
}

/// `POST /v1/tasks/:task_id/<verb>`; prints the task as it is after.
async fn act(api: &Api, task: &str, verb: &str, body: Value, json_out: bool) -> Result<(), String> {
    let answer = api.post(&format!("/v1/tasks/{}/{verb}", api.task_id(task).await?), &body).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
    } else {
        print_task(&answer["task"]);
    }
    Ok(())
}

async fn run(args: TasksArgs) -> Result<(), String> {
    let base = args.control_api_base.ok_or("no control plane: give --control-api-base or BAA_CONTROL_API_BASE")?;
    let token = args.token.ok_or("no token: give --token or BAA_ADMIN_TOKEN")?;
    let api = Api::new(&base, &token)?;
    let show = |value: &Value| println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    match args.verb {
        Verb::Create { repo, title, goal, task_type, key, branch, deliver, depends_on, write_scope, acceptance, review } => {
            let mut body = json!({"repo": repo, "title": title, "goal": goal, "task_type": task_type, "key": key,
                "branch": branch, "depends_on": depends_on, "write_scope": write_scope, "acceptance": acceptance, "review": review});
            if let Some(deliver) = deliver {
                body["constraints"] = json!({"deliver": deliver});
            }
            let (created, _) = api.create(&body).await?;
            if args.json {
                show(&created)
            } else {
                print_task(&created["task"])
            }
        }
        Verb::List { status } => {
            let query = status.map(|status| format!("&status={status}")).unwrap_or_default();
            let page = api.get(&format!("/v1/tasks?limit=200{query}")).await?;
            if args.json {
                show(&page)
            } else {
                page["tasks"].as_array().into_iter().flatten().for_each(print_task_line)
            }
        }
        Verb::Show { task } => {
            let detail = api.get(&format!("/v1/tasks/{}", api.task_id(&task).await?)).await?;
            if args.json {
                show(&detail)
            } else {
                print_task(&detail)
            }
        }
        Verb::Logs { task, follow, events } => follow_logs(&api, &api.task_id(&task).await?, follow, events).await?,
        Verb::Cancel { task, reason } => act(&api, &task, "cancel", json!({"reason": reason}), args.json).await?,
        Verb::Approve { task, comment } => act(&api, &task, "approve", json!({"comment": comment}), args.json).await?,
        Verb::Reject { task, reason } => act(&api, &task, "reject", json!({"reason": reason}), args.json).await?,
        Verb::Report { task } => {
            let page = api.get(&format!("/v1/tasks/{}/report", api.task_id(&task).await?)).await?;
            if args.json {
                show(&page)
            } else {
                print!("{}", text(&page["markdown"]))
            }
        }
        Verb::Watch { last, for_sec } => watch(&api, last, for_sec, args.json).await?,
        Verb::Import { repo, deliver, files } => import(&api, repo.as_deref(), deliver.as_deref(), &files, args.json).await?,
    }
    Ok(())
}

/// `node-agent tasks …` with the arguments after `node-agent`; the exit code.
pub fn main(args: impl IntoIterator<Item = String>) -> std::process::ExitCode {
    let args = match TasksArgs::try_parse_from(args) {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return std::process::ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::from(1)
        }
    }
}
