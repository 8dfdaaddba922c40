//! `wait_for`: polls a task, or a wave's cards, until each has ended (succeeded, failed,
//! blocked, canceled) or waits for a person in review, or until the timeout; reports progress
//! as it goes (ended cards of all, with what moved). A timeout is an answer, not an error: the
//! model may wait again.

use std::time::Duration;

use serde_json::{json, Value};
use shared::status::TaskStatus;
use tokio::sync::mpsc::UnboundedSender;

use super::answers::{short_commit, Answer};
use crate::people::api::{Api, Failure};
use crate::people::print::{status_of, text};
use crate::people::wave::{self, name};

/// How often the moving tasks are looked at.
const POLL: Duration = Duration::from_secs(2);
/// The most wave members looked for among the newest tasks.
const WAVE_SEARCH: usize = 1_000;
/// Every so many polls the wave is listed again (new cards); in between only moving cards
/// are read.
const FULL_LOOK_EVERY: u32 = 10;

/// What is waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Task(String),
    /// An integrate task's id or key, or a key prefix.
    Wave(String),
}

/// One report of progress: `done` of `total` tasks ended, and what stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub done: f64,
    pub total: f64,
    pub message: String,
}

/// Whether a task's wait is over: it ended, or it waits for a person.
pub fn settled(task: &Value) -> bool {
    task["status"].as_str().and_then(TaskStatus::parse).is_some_and(|status| status.is_terminal() || status == TaskStatus::Review)
}

/// `T-2 running (dependencies)`-style counts: "1 of 2 ended: T-1 succeeded, T-2 running".
pub fn progress_message(tasks: &[Value]) -> String {
    let ended = tasks.iter().filter(|task| settled(task)).count();
    let each: Vec<String> = tasks.iter().map(|task| format!("{} {}", name(task), status_of(task))).collect();
    format!("{ended} of {} ended: {}", tasks.len(), each.join(", "))
}

/// The answer: a line per task (status, branch, head commit, why it failed), oldest first.
pub fn outcome(target: &Target, tasks: &[Value], over: bool, waited: Duration) -> Answer {
    let what = match target {
        Target::Task(task) => format!("task {task}"),
        Target::Wave(wave) => format!("wave {wave}"),
    };
    let mut lines = vec![if over {
        let statuses: Vec<&str> = tasks.iter().map(|task| text(&task["status"])).collect();
        let all_succeeded = statuses.iter().all(|status| *status == "succeeded");
        format!("{what} {} after {} s ({}):", if all_succeeded { "succeeded" } else { "ended" }, waited.as_secs(), counts(&statuses))
    } else {
        format!("{what} still going after {} s (wait again to keep waiting): {}", waited.as_secs(), progress_message(tasks))
    }];
    for task in tasks.iter().rev() {
        let mut line = format!("- {} {} {}", name(task), text(&task["task_id"]), text(&task["status"]));
        if let Some(branch) = task["branch_name"].as_str() {
            line.push_str(&format!(", branch {branch}"));
        }
        if let Some(head) = task["result"]["head_commit"].as_str() {
            line.push_str(&format!(" at {}", short_commit(head)));
        }
        if let Some(reason) = task["status_reason"].as_str().filter(|reason| !reason.is_empty() && task["status"] != "succeeded") {
            line.push_str(&format!(": {reason}"));
        }
        lines.push(line);
    }
    let data = json!({
        "target": match target { Target::Task(task) => json!({"task": task}), Target::Wave(wave) => json!({"wave": wave}) },
        "ended": over,
        "waited_sec": waited.as_secs(),
        "tasks": tasks,
    });
    Answer { text: lines.join("\n") + "\n", data }
}

fn counts(statuses: &[&str]) -> String {
    let mut counted: Vec<(&str, usize)> = Vec::new();
    for status in statuses {
        match counted.iter_mut().find(|(seen, _)| seen == status) {
            Some((_, count)) => *count += 1,
            None => counted.push((status, 1)),
        }
    }
    counted.iter().map(|(status, count)| format!("{count} {status}")).collect::<Vec<_>>().join(", ")
}

/// Every member, looked at afresh: the task itself, or the wave's cards among the newest
/// tasks (a card added to the wave since is found too).
async fn look(api: &Api, target: &Target, task_id: Option<&str>) -> Result<Vec<Value>, Failure> {
    match (target, task_id) {
        (Target::Task(_), Some(task_id)) => Ok(vec![api.get(&format!("/v1/tasks/{task_id}")).await?]),
        (Target::Wave(wave), _) | (Target::Task(wave), None) => {
            let members = wave::members(&api.recent_tasks(WAVE_SEARCH).await?, wave);
            if members.is_empty() {
                return Err(Failure::new("task_not_found", format!("no task is {wave} and no key starts with {wave}")).with_field("wave"));
            }
            Ok(members)
        }
    }
}

/// The members not settled yet, each read again (its fields as listed, updated from the
/// task's read): a wave of tens of cards costs a read per moving card, not a listing of the
/// newest thousand tasks every few seconds.
async fn refresh_moving(api: &Api, members: &mut [Value]) -> Result<(), Failure> {
    for member in members.iter_mut().filter(|member| !settled(member)) {
        let read = api.get(&format!("/v1/tasks/{}", text(&member["task_id"]))).await?;
        if let Value::Object(fields) = member {
            for (key, value) in fields.iter_mut() {
                if let Some(fresh) = read.get(key) {
                    *value = fresh.clone();
                }
            }
        }
    }
    Ok(())
}

/// Waits; sends progress to `progress` when it moved (and every 20 s regardless, which keeps
/// clients that time out a silent call waiting). Settled members are looked at again before
/// the answer: a card rejected back to work, or one added to the wave, is waited for too.
pub async fn wait_for(
    api: &Api,
    target: Target,
    timeout: Duration,
    progress: Option<UnboundedSender<Progress>>,
) -> Result<Answer, Failure> {
    let task_id = match &target {
        Target::Task(task) => Some(api.task_id(task).await?),
        Target::Wave(_) => None,
    };
    let started = tokio::time::Instant::now();
    let mut reported = -1.0f64;
    let mut last_message = String::new();
    let mut last_sent = started;
    let mut tasks = look(api, &target, task_id.as_deref()).await?;
    let mut polls = 0u32;
    loop {
        let waited = started.elapsed();
        if tasks.iter().all(settled) || waited >= timeout {
            tasks = look(api, &target, task_id.as_deref()).await?;
            let over = tasks.iter().all(settled);
            if over || waited >= timeout {
                return Ok(outcome(&target, &tasks, over, started.elapsed()));
            }
        }
        let message = progress_message(&tasks);
        if let Some(sender) = &progress {
            let ended = tasks.iter().filter(|task| settled(task)).count() as f64;
            // Progress must grow with every notification, also when a card went back to work
            // (another round): a little more each time, never less than the count of ended ones.
            let done = ended.max(reported + 0.001);
            if message != last_message || last_sent.elapsed() >= Duration::from_secs(20) {
                let _ = sender.send(Progress { done, total: tasks.len() as f64, message: message.clone() });
                reported = done;
                last_sent = tokio::time::Instant::now();
            }
        }
        last_message = message;
        tokio::time::sleep(POLL.min(timeout.saturating_sub(waited))).await;
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(FULL_LOOK_EVERY) {
            tasks = look(api, &target, task_id.as_deref()).await?;
        } else {
            refresh_moving(api, &mut tasks).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(key: &str, status: &str) -> Value {
        json!({"task_id": format!("task_{key}"), "key": key, "status": status, "branch_name": format!("baa/{key}"),
            "result": {"head_commit": "0123456789abcdef"}, "status_reason": if status == "failed" { "acceptance failed: exit 1" } else { "" }})
    }

    #[test]
    fn a_wave_is_over_when_every_card_ended_or_waits_in_review() {
        assert!(![task("A", "succeeded"), task("B", "running")].iter().all(settled));
        assert!([task("A", "succeeded"), task("B", "review"), task("C", "blocked")].iter().all(settled));
        assert_eq!(progress_message(&[task("A", "succeeded"), task("B", "queued")]), "1 of 2 ended: A succeeded, B queued");
    }

    #[test]
    fn the_outcome_says_each_card_with_branch_head_and_why_it_failed() {
        let wave = Target::Wave("W-".into());
        let tasks = [task("W-2", "failed"), task("W-1", "succeeded")];
        let answer = outcome(&wave, &tasks, true, Duration::from_secs(42));
        assert!(answer.text.starts_with("wave W- ended after 42 s (1 failed, 1 succeeded):\n"), "{}", answer.text);
        assert!(answer.text.contains("- W-1 task_W-1 succeeded, branch baa/W-1 at 0123456789ab\n"), "{}", answer.text);
        assert!(
            answer.text.contains("- W-2 task_W-2 failed, branch baa/W-2 at 0123456789ab: acceptance failed: exit 1"),
            "{}",
            answer.text
        );
        assert_eq!(answer.data["ended"], true);
        let waiting = outcome(&wave, &[task("W-1", "running")], false, Duration::from_secs(600));
        assert!(waiting.text.contains("still going after 600 s"), "{}", waiting.text);
    }
}
