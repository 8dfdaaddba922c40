//! The control plane's side of a simulated fleet: syncs delivered to the real core (and its
//! answers sent back, or lost), operators' calls, and the faults of the schedule — crashes,
//! partitions, restarts, clock steps.

use control_worker::core::clock::SeededRandom;
use control_worker::core::http::ApiRequest;
use control_worker::core::Core;
use serde_json::{json, Value};
use shared::status::{LeaseOperation, LogStream, SystemMode, Verdict};
use shared::wire::{AgentSyncRequest, AgentSyncResponse};
use shared::ErrorCode;
use tokio::time::Instant;

use super::checks::Violation;
use super::schedule::Act;
use super::world::{Message, SimClock, World};
use crate::client::ClientError;
use crate::conductor::memory_plane::{decode, ADMIN_TOKEN, SERVICE_TOKEN};
use crate::conductor::SyncKind;

impl World {
    pub(super) async fn deliver_request(&mut self, agent: usize, life: u64, id: u64, request: AgentSyncRequest) {
        let node = self.agents[agent].node_id.clone();
        let now = Instant::now();
        let answer = if now < self.plane_down_until {
            self.note("plane", format!("sync#{id} from {node} refused: restarting"));
            Err(ClientError::Unreachable("connection refused".into()))
        } else {
            let body = serde_json::to_value(&request).expect("a request serialises");
            let response = self.core().handle(ApiRequest::json("POST", "/v1/agents/sync", SERVICE_TOKEN, Some(&body))).await;
            self.syncs += 1;
            if response.status >= 500 {
                self.checks.violation.get_or_insert(Violation {
                    guarantee: "no 500",
                    detail: format!("sync#{id} from {node}: {} {}", response.status, String::from_utf8_lossy(&response.body)),
                });
            }
            let answer = decode::<AgentSyncResponse>(&response);
            match &answer {
                Ok(answer) => {
                    self.note("plane", format!("sync#{id} from {node}: {}", describe_answer(answer)));
                    self.checks.on_sync(&request, answer);
                    self.tally_answer(answer);
                }
                Err(error) => self.note("plane", format!("sync#{id} from {node}: {error}")),
            }
            self.check_database();
            answer
        };
        let cut = now < self.agents[agent].cut_until;
        if cut || (self.faulty() && self.dice.chance(40)) {
            self.note("net", format!("answer to sync#{id} lost on the way"));
            self.count("answer lost", 1);
            return;
        }
        let at = now + self.delay();
        if self.faulty() && self.dice.chance(20) {
            let again = at + self.dice.millis(1, 3_000);
            self.enqueue(again, Message::Answer { agent, life, id, answer: Box::new(answer.clone()) });
        }
        self.enqueue(at, Message::Answer { agent, life, id, answer: Box::new(answer) });
    }

    fn tally_answer(&mut self, answer: &AgentSyncResponse) {
        match answer.lease.operation {
            LeaseOperation::Acquire => self.count("lease acquired", 1),
            LeaseOperation::HandOver => self.count("lease handed over", 1),
            _ => {}
        }
        let verdicts = || answer.completions.iter().chain(&answer.failures);
        self.count("late report refused", verdicts().filter(|verdict| verdict.verdict == Verdict::Stale).count() as u64);
        let fenced = answer.plans.iter().filter(|verdict| verdict.code == Some(ErrorCode::StaleTerm)).count();
        self.count("stale plan fenced", fenced as u64);
        let all = [&answer.runs, &answer.completions, &answer.failures, &answer.logs, &answer.checkpoints, &answer.plans];
        let deferred = all.iter().flat_map(|verdicts| verdicts.iter()).filter(|verdict| verdict.verdict == Verdict::Deferred).count();
        self.count("item deferred", deferred as u64);
        if let Some(reaped) = &answer.reaped {
            self.count("lost attempt retried", reaped.reaped.iter().filter(|step| step.requeued).count() as u64);
            self.count("lost attempt failed", reaped.reaped.iter().filter(|step| !step.requeued).count() as u64);
            self.count("planning task requeued", reaped.requeued_tasks.len() as u64);
        }
    }

    /// One slice of storage upkeep (SPEC §17), as the native timer runs it. Whether work remains.
    pub(super) async fn upkeep(&mut self) -> bool {
        match control_worker::core::maintenance::run_slice(self.core()).await {
            Ok(report) => {
                self.count("run compacted", report.compacted_runs.len() as u64);
                self.check_database();
                report.more || !report.compacted_runs.is_empty()
            }
            Err(error) => {
                let detail = format!("storage upkeep: {} ({})", error.message, error.internal.unwrap_or_default());
                self.checks.violation.get_or_insert(Violation { guarantee: "no 500", detail });
                false
            }
        }
    }

    /// A run's stream as `tasks.logs` answers it, live rows and compacted objects alike.
    pub(super) async fn stored_log(&mut self, task_id: &str, run_id: &str, stream: LogStream) -> Vec<u8> {
        let (mut text, mut after) = (Vec::new(), 0i64);
        loop {
            let path = format!("/v1/tasks/{task_id}/logs?run_id={run_id}&stream={}&after={after}&limit=1000", stream.as_str());
            let Ok(page) = self.admin("GET", &path, None).await else { return text };
            let chunks = page["chunks"].as_array().cloned().unwrap_or_default();
            if chunks.is_empty() {
                return text;
            }
            for chunk in &chunks {
                text.extend_from_slice(chunk["text"].as_str().unwrap_or_default().as_bytes());
            }
            after = page["next_cursor"].as_i64().unwrap_or(after);
        }
    }

    /// An operator's call, as a browser would make it.
    async fn admin(&mut self, method: &str, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        let response = self.core().handle(ApiRequest::json(method, path, ADMIN_TOKEN, body.as_ref())).await;
        if response.status >= 500 {
            self.checks.violation.get_or_insert(Violation {
                guarantee: "no 500",
                detail: format!("{method} {path}: {} {}", response.status, String::from_utf8_lossy(&response.body)),
            });
        }
        let answer = decode::<Value>(&response);
        self.check_database();
        answer
    }

    pub(super) async fn act(&mut self, act: Act) {
        let now = Instant::now();
        let operator_call = matches!(act, Act::CreateTask(_) | Act::CancelTask(_) | Act::SetMode(_));
        if operator_call && now < self.plane_down_until {
            // The operator tries again once it is back, in the order they acted.
            self.enqueue(self.plane_down_until, Message::Act(act));
            return;
        }
        match act {
            Act::CreateTask(index) => {
                let shape = self.schedule.tasks[index].clone();
                let acceptance: Vec<String> = (0..shape.acceptance).map(|n| format!("test {n}")).collect();
                let body = json!({
                    "repo": "/srv/repo", "task_type": "shell", "title": format!("task {index}"), "goal": format!("work {index}"),
                    "acceptance": acceptance,
                    "constraints": {"timeout_sec": shape.timeout_sec, "max_attempts": shape.max_attempts},
                });
                match self.admin("POST", "/v1/tasks", Some(body)).await {
                    Ok(created) => {
                        let task_id = created["task_id"].as_str().unwrap_or_default().to_string();
                        self.note("operator", format!("created task {index}: {task_id}"));
                        self.task_ids[index] = Some(task_id);
                    }
                    Err(error) => {
                        self.checks.violation.get_or_insert(Violation { guarantee: "tasks accepted", detail: error.to_string() });
                    }
                }
            }
            Act::CancelTask(index) => {
                let Some(task_id) = self.task_ids[index].clone() else { return };
                let answer = self.admin("POST", &format!("/v1/tasks/{task_id}/cancel"), Some(json!({}))).await;
                self.note(
                    "operator",
                    format!("cancel task {index}: {}", answer.map(|_| "done".to_string()).unwrap_or_else(|error| error.to_string())),
                );
            }
            Act::SetMode(mode) => {
                let path = match mode {
                    SystemMode::Paused => "/v1/system/pause",
                    SystemMode::Draining => "/v1/system/drain",
                    SystemMode::Running => "/v1/system/resume",
                };
                let answer = self.admin("POST", path, Some(json!({}))).await;
                self.note(
                    "operator",
                    format!("mode {mode}: {}", answer.map(|_| "done".to_string()).unwrap_or_else(|error| error.to_string())),
                );
            }
            Act::Crash { agent, down_for } => {
                self.count("fault: crash", 1);
                let target = &mut self.agents[agent];
                let until = now + down_for;
                target.down_until = Some(target.down_until.map_or(until, |earlier| earlier.max(until)));
                target.conductor = None;
                target.in_flight = None;
                target.stalled_until = now;
                target.stopping = None;
                let node = target.node_id.clone();
                self.note(&node, format!("crashed; back in {:.3} s", down_for.as_secs_f64()));
            }
            Act::Restart { agent, down_for } => {
                self.count("fault: graceful restart", 1);
                self.stop_agent(agent, down_for);
            }
            Act::Stall { agent, lasting } => {
                self.count("fault: stall", 1);
                let target = &mut self.agents[agent];
                target.stalled_until = target.stalled_until.max(now + lasting);
                let node = target.node_id.clone();
                self.note(&node, format!("stopped for {:.3} s", lasting.as_secs_f64()));
            }
            Act::Partition { agent, lasting } => {
                self.count("fault: partition", 1);
                let target = &mut self.agents[agent];
                target.cut_until = target.cut_until.max(now + lasting);
                let node = target.node_id.clone();
                self.note("net", format!("{node} cut off for {:.3} s", lasting.as_secs_f64()));
            }
            Act::RestartControlPlane { down_for } => {
                self.count("fault: control plane restart", 1);
                let old = self.core.take().expect("the control plane");
                let clock = SimClock { started: self.started, offset_ms: self.offset_ms.clone() };
                let random = SeededRandom::new(self.seed ^ self.sequence);
                self.core = Some(Core::new(old.db, old.blobs, clock, random, self.config.clone()));
                self.plane_down_until = self.plane_down_until.max(now + down_for);
                self.note("plane", format!("restarting; back in {:.3} s", down_for.as_secs_f64()));
            }
            Act::StepClock { offset_ms } => {
                self.count("fault: clock step", 1);
                self.offset_ms.set(offset_ms);
                self.note("plane", format!("clock stepped to {offset_ms:+} ms"));
            }
        }
    }
}

pub(super) fn describe_request(request: &AgentSyncRequest, kind: SyncKind) -> String {
    let term = request.lease.term.map(|term| format!(" term {term}")).unwrap_or_default();
    let chunks: usize = request.logs.iter().map(|logs| logs.chunks.len()).sum();
    format!(
        "{kind:?}{term}, {} run(s), {} completion(s), {} failure(s), {chunks} chunk(s), {} plan(s), room {}",
        request.runs.len(),
        request.completions.len(),
        request.failures.len(),
        request.plans.len(),
        request.capacity
    )
}

fn describe_answer(answer: &AgentSyncResponse) -> String {
    let lease = &answer.lease;
    let mut text = format!(
        "lease {} term {} ({:?}{}), mode {}",
        lease.holder_id.as_deref().unwrap_or("free"),
        lease.term,
        lease.operation,
        if lease.is_leader { ", leads" } else { "" },
        answer.mode
    );
    for grant in &answer.granted {
        text.push_str(&format!("; granted {} attempt {} as {}", grant.step.step_id, grant.attempt, grant.run_id));
    }
    if !answer.claimed_tasks.is_empty() {
        text.push_str(&format!(
            "; claimed {}",
            answer.claimed_tasks.iter().map(|task| task.task_id.as_str()).collect::<Vec<_>>().join(",")
        ));
    }
    for (kind, verdicts) in [("completion", &answer.completions), ("failure", &answer.failures), ("plan", &answer.plans)] {
        for verdict in verdicts {
            text.push_str(&format!("; {kind} {} {:?}", verdict.id, verdict.verdict));
        }
    }
    if let Some(reaped) = &answer.reaped {
        for step in &reaped.reaped {
            text.push_str(&format!("; reaped {step:?}"));
        }
    }
    text
}
