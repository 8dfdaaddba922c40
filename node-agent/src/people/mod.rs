//! The control plane for people (SPEC §12, §18): `node-agent tasks <verb>` (create, list,
//! show, logs, diff, wave, cancel, approve, reject, report, watch, import), `node-agent system
//! <verb>` (pause, resume, drain, state), `node-agent login` and `logout`, and `node-agent mcp`
//! (the same as tools for a coding agent, in [`crate::mcp`]). Flags go anywhere on
//! the line; on a host that runs the embedded control plane none are needed. Times are local.
//!
//! - [`discover`]: which control plane and token: flags, the login, the embedded plane.
//! - [`print`]: tables that line up, a task with what it delivered, a coloured diff.
//! - [`wave`]: a wave's cards as a dependency graph in text.
//! - [`args`]: the command line: global flags, commands, verbs.
//! - [`login`]: `login` and `logout`.
//! - [`cards`]: a card file → a task to create; cards in dependency order.
//! - [`api`]: the admin calls, over HTTP.
//! - this file: the verbs.

pub mod api;
pub mod args;
pub mod cards;
pub mod discover;
pub mod login;
pub mod print;
pub mod wave;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};
use shared::status::TaskStatus;

use api::{Api, Failure};
pub use args::{Command, PeopleArgs, SystemVerb, Verb, COMMANDS};
pub use print::local_time;
use print::text;

async fn watch(api: &Api, last: u32, for_sec: Option<u64>, json_out: bool) -> Result<(), String> {
    let stop = for_sec.map(|sec| std::time::Instant::now() + Duration::from_secs(sec));
    let print = |event: &Value| if json_out { println!("{event}") } else { print!("{}", print::event_line(event)) };
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

/// A card's task as created: the card's key, the `tasks.create` answer, whether it existed.
pub struct Imported {
    pub key: String,
    pub created: Value,
    pub replayed: bool,
}

/// Creates the tasks of cards in dependency order; every card is checked before any is
/// created. A card imported before answers its task as it is.
pub async fn create_cards(api: &Api, cards: Vec<cards::Card>, repo: Option<&str>, deliver: Option<&str>) -> Result<Vec<Imported>, Failure> {
    let invalid = |message: String| Failure::new("invalid_request", message).with_field("cards");
    let ordered = cards::in_dependency_order(cards).map_err(invalid)?;
    let bodies = ordered.iter().map(|card| cards::create_body(card, repo, deliver)).collect::<Result<Vec<_>, _>>().map_err(invalid)?;
    let mut imported = Vec::new();
    for (card, body) in ordered.into_iter().zip(bodies) {
        let (created, replayed) = api.create(&body).await?;
        imported.push(Imported { key: card.key, created, replayed });
    }
    Ok(imported)
}

async fn import(api: &Api, repo: Option<&str>, deliver: Option<&str>, files: &[PathBuf], json_out: bool) -> Result<(), String> {
    let mut read = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let body = std::fs::read_to_string(file).map_err(|error| format!("{name}: {error}"))?;
        read.push(cards::parse(&body, &name)?);
    }
    for card in create_cards(api, read, repo, deliver).await? {
        if json_out {
            println!("{}", json!({"key": card.key, "task_id": card.created["task_id"], "created": !card.replayed}));
        } else {
            println!("{} {} {}", if card.replayed { "exists " } else { "created" }, card.key, text(&card.created["task_id"]));
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
        print!("{}", print::task_line(&answer["task"]));
    }
    Ok(())
}

/// `path:line:text` → a line comment of `tasks.reject`.
fn line_comment(text: &str) -> Result<Value, String> {
    let mut parts = text.splitn(3, ':');
    let (path, line, comment) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match line.trim().parse::<i64>() {
        Ok(line) if !path.trim().is_empty() && !comment.trim().is_empty() => {
            Ok(json!({"path": path.trim(), "line": line, "comment": comment.trim()}))
        }
        _ => Err(format!("--comment {text:?}: give path:line:text, e.g. src/lib.rs:42:this panics on empty input")),
    }
}

fn show(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

async fn tasks(api: &Api, verb: Verb, json_out: bool) -> Result<(), String> {
    match verb {
        Verb::Create { repo, title, goal, task_type, key, branch, deliver, depends_on, write_scope, acceptance, review } => {
            let mut body = json!({"repo": repo, "title": title, "goal": goal, "task_type": task_type, "key": key,
                "branch": branch, "depends_on": depends_on, "write_scope": write_scope, "acceptance": acceptance, "review": review});
            if let Some(deliver) = deliver {
                body["constraints"] = json!({"deliver": deliver});
            }
            let (created, _) = api.create(&body).await?;
            if json_out {
                show(&created)
            } else {
                print!("{}", print::task_line(&created["task"]))
            }
        }
        Verb::List { status } => {
            let query = status.map(|status| format!("&status={status}")).unwrap_or_default();
            let page = api.get(&format!("/v1/tasks?limit=200{query}")).await?;
            if json_out {
                show(&page)
            } else {
                print!("{}", print::task_list(page["tasks"].as_array().map(Vec::as_slice).unwrap_or_default()))
            }
        }
        Verb::Show { task } => {
            let detail = api.get(&format!("/v1/tasks/{}", api.task_id(&task).await?)).await?;
            if json_out {
                show(&detail)
            } else {
                print!("{}", print::task_detail(&detail))
            }
        }
        Verb::Diff { task, no_color } => {
            let diff = api.get(&format!("/v1/tasks/{}/diff", api.task_id(&task).await?)).await?;
            if json_out {
                show(&diff)
            } else if let Some(patch) = diff["patch"].as_str() {
                let colour = !no_color && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                print!("{}", if colour { print::coloured_diff(patch) } else { patch.to_string() });
            } else {
                eprintln!("{}", text(&diff["reason"]));
            }
        }
        Verb::Wave { target } => {
            let tasks = api.recent_tasks(1_000).await?;
            let members = wave::members(&tasks, &target);
            if json_out {
                show(&json!({"target": target, "tasks": members, "layers": wave::layers(&members)}))
            } else {
                print!("{}", wave::draw(&target, &members))
            }
        }
        Verb::Logs { task, follow, events } => follow_logs(api, &api.task_id(&task).await?, follow, events).await?,
        Verb::Cancel { task, reason } => act(api, &task, "cancel", json!({"reason": reason}), json_out).await?,
        Verb::Approve { task, comment } => act(api, &task, "approve", json!({"comment": comment}), json_out).await?,
        Verb::Reject { task, reason, retry, comments } => {
            let comments = comments.iter().map(|comment| line_comment(comment)).collect::<Result<Vec<_>, _>>()?;
            act(api, &task, "reject", json!({"reason": reason, "retry": retry, "comments": comments}), json_out).await?
        }
        Verb::Report { task } => {
            let page = api.get(&format!("/v1/tasks/{}/report", api.task_id(&task).await?)).await?;
            if json_out {
                show(&page)
            } else {
                print!("{}", text(&page["markdown"]))
            }
        }
        Verb::Watch { last, for_sec } => watch(api, last, for_sec, json_out).await?,
        Verb::Import { repo, deliver, files } => import(api, repo.as_deref(), deliver.as_deref(), &files, json_out).await?,
    }
    Ok(())
}

async fn system(api: &Api, verb: SystemVerb, json_out: bool) -> Result<(), String> {
    let (mode, reason) = match verb {
        SystemVerb::State => {
            let state = api.get("/v1/system/state").await?;
            if json_out {
                show(&state)
            } else {
                print!("{}", print::system_state(&state))
            }
            return Ok(());
        }
        SystemVerb::Pause { reason } => ("pause", reason),
        SystemVerb::Resume { reason } => ("resume", reason),
        SystemVerb::Drain { reason } => ("drain", reason),
    };
    let changed = api.post(&format!("/v1/system/{mode}"), &json!({"reason": reason})).await?;
    if json_out {
        show(&changed)
    } else {
        println!("{}", text(&changed["summary"]))
    }
    Ok(())
}

async fn run(args: PeopleArgs) -> Result<(), String> {
    let env = |name: &str| std::env::var(name).ok();
    let login_file = discover::login_file(env);
    match args.command {
        Command::Login => return login::login(args.control_api_base, args.token, &login_file).await,
        Command::Logout => return login::logout(&login_file),
        _ => {}
    }
    let given = discover::Given {
        base: args.control_api_base,
        token: args.token,
        state_dir: discover::state_dir(args.state_dir.as_deref(), args.runtime_root.as_deref(), env("HOME").as_deref()),
        login_file,
    };
    if let Command::Mcp = args.command {
        return crate::mcp::serve(given).await;
    }
    let connection = discover::connection(&given)?;
    let api = Api::new(&connection.base, &connection.token)?.with_source(&connection.source);
    match args.command {
        Command::Tasks { verb } => tasks(&api, *verb, args.json).await,
        Command::System { verb } => system(&api, verb, args.json).await,
        Command::Login | Command::Logout | Command::Mcp => Ok(()),
    }
}

/// Where the people's command starts in `args` (after `node-agent` and any flags before it),
/// when it is one: `node-agent --token T tasks list` is `tasks list` with its flag.
pub fn command_position(args: &[String]) -> Option<usize> {
    const VALUE_FLAGS: [&str; 4] = ["--control-api-base", "--token", "--state-dir", "--runtime-root"];
    let mut index = 1;
    while let Some(arg) = args.get(index) {
        if COMMANDS.contains(&arg.as_str()) {
            return Some(index);
        }
        if !arg.starts_with('-') {
            return None;
        }
        index += if VALUE_FLAGS.contains(&arg.as_str()) { 2 } else { 1 };
    }
    None
}

/// `node-agent tasks|system|login|logout …` with the whole command line; the exit code.
pub fn main(args: impl IntoIterator<Item = String>) -> std::process::ExitCode {
    let args = match PeopleArgs::try_parse_from(args) {
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
