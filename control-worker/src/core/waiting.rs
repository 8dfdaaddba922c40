//! "Why is it waiting?" (SPEC §13): the `waiting_reason` of a queued task and of a running
//! task's ready step, from the facts the scheduler itself goes by — the mode, the leader, the
//! dependencies, the write-scope conflicts, the hosts as their last syncs described them (live,
//! room, worker kinds, disk). [`waiting_reason`] is a pure function of those facts;
//! [`facts_statements`] reads them for a set of tasks in one batch.

use serde_json::json;
use shared::status::StepStatus;
use shared::status::{SystemMode, TaskStatus, WaitingCode};
use shared::wire::{ParkedAccount, Step, Task, WaitingReason};

use super::db::{DbError, Row, Statement};
use super::lease::SELECT_LEASE_SQL;

/// Another task as a waiting task sees it: a dependency or a task whose scope may overlap.
#[derive(Debug, Clone, PartialEq)]
pub struct Related {
    pub task_id: String,
    pub key: Option<String>,
    pub status: TaskStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Related {
    fn name(&self) -> String {
        match &self.key {
            Some(key) => format!("{key} ({})", self.task_id),
            None => self.task_id.clone(),
        }
    }
}

/// A host as its controllers' last syncs described it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostFacts {
    pub host: String,
    pub last_heard_at: i64,
    /// Free step slots at its last sync (0 when full, or when its disk is low).
    pub free: i64,
    pub worker_kinds: Option<Vec<String>>,
    pub disk_low: bool,
    /// The account its coding agent runs under.
    pub account: Option<String>,
}

impl HostFacts {
    fn offers(&self, worker_kind: &str) -> bool {
        self.worker_kinds.as_ref().is_none_or(|kinds| kinds.iter().any(|kind| kind == worker_kind))
    }
}

/// The fleet at `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    pub now: i64,
    pub mode: SystemMode,
    pub mode_since: i64,
    /// A controller holds a lease that has not expired.
    pub led: bool,
    pub hosts: Vec<HostFacts>,
    /// Accounts parked by a usage limit.
    pub parked: Vec<ParkedAccount>,
    pub liveness_sec: i64,
    pub host_lost_after_sec: i64,
}

impl Fleet {
    fn host(&self, name: &str) -> Option<&HostFacts> {
        self.hosts.iter().find(|host| host.host == name)
    }

    /// The parked account a host's agent runs under, if it is parked.
    fn parked_for(&self, host: &HostFacts) -> Option<&ParkedAccount> {
        let account = host.account.as_deref()?;
        self.parked.iter().find(|parked| parked.account == account && parked.parked_until > self.now)
    }

    fn live(&self, host: &HostFacts) -> bool {
        self.now - host.last_heard_at <= self.liveness_sec
    }
}

/// One task's own facts.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFacts<'a> {
    pub task: &'a Task,
    /// In `depends_on` order.
    pub dependencies: Vec<Related>,
    /// Unfinished tasks whose write scope may overlap.
    pub conflicts: Vec<Related>,
    /// A running task's step that is ready, not yet claimed, or waiting for its account's reset.
    pub ready_step: Option<&'a Step>,
}

/// A time in a message for people: `2026-12-02 09:59 UTC`.
pub fn utc(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0).map_or_else(|| seconds.to_string(), |at| at.format("%Y-%m-%d %H:%M UTC").to_string())
}

fn reason(code: WaitingCode, message: String, since: i64) -> Option<WaitingReason> {
    Some(WaitingReason { code, message, since })
}

/// Why `facts.task` is not moving, or `None` when nothing holds it back (a queued task is
/// claimed at the leader's next tick; a ready step goes with the next sync of a host with room).
pub fn waiting_reason(facts: &TaskFacts<'_>, fleet: &Fleet) -> Option<WaitingReason> {
    match facts.task.status {
        TaskStatus::Queued => queued(facts, fleet),
        TaskStatus::Running => match facts.ready_step {
            Some(step) => ready(facts.task, step, fleet),
            // A step of it runs, or settles, on its host: it waits only if that host is quiet.
            None => facts.task.assigned_host.as_deref().and_then(|host| quiet_host(facts.task, host, fleet, facts.task.created_at)),
        },
        _ => None,
    }
}

/// The task's host, when it is not heard from: the task waits for it (`target_host`) or for
/// the host-lost rule to start it over elsewhere.
fn quiet_host(task: &Task, name: &str, fleet: &Fleet, since: i64) -> Option<WaitingReason> {
    if fleet.host(name).is_some_and(|host| fleet.live(host)) {
        return None;
    }
    let heard = fleet.host(name).map(|host| host.last_heard_at);
    let message = match (heard, task.target_host.is_some()) {
        (Some(at), true) => format!("waits for host {name} (constraints.target_host), not heard from since {}", utc(at)),
        (Some(at), false) => format!(
            "host {name} not heard from since {}; after {} s without it the task starts over on another host",
            utc(at),
            fleet.host_lost_after_sec
        ),
        (None, _) => format!("waits for host {name}, never heard from"),
    };
    reason(WaitingCode::HostLost, message, heard.unwrap_or(since))
}

fn queued(facts: &TaskFacts<'_>, fleet: &Fleet) -> Option<WaitingReason> {
    let task = facts.task;
    match fleet.mode {
        SystemMode::Paused => {
            return reason(WaitingCode::Paused, "the fleet is paused: nothing starts until it is resumed".into(), fleet.mode_since)
        }
        SystemMode::Draining => {
            return reason(
                WaitingCode::Draining,
                "the fleet is draining: started tasks finish, new ones wait until it is resumed".into(),
                fleet.mode_since,
            )
        }
        SystemMode::Running => {}
    }
    if let Some(dependency) = facts.dependencies.iter().find(|dependency| dependency.status != TaskStatus::Succeeded) {
        return if dependency.status == TaskStatus::Review {
            reason(WaitingCode::Review, format!("waits for {} to be approved (it is in review)", dependency.name()), dependency.updated_at)
        } else {
            reason(
                WaitingCode::Dependency,
                format!("waits for its dependency {} to succeed (it is {})", dependency.name(), dependency.status),
                task.created_at,
            )
        };
    }
    let ahead = |other: &&Related| match other.status {
        TaskStatus::Planning | TaskStatus::Running => true,
        TaskStatus::Queued => (other.created_at, &other.task_id) < (task.created_at, &task.task_id),
        _ => false,
    };
    if let Some(other) = facts.conflicts.iter().find(ahead) {
        return reason(
            WaitingCode::Scope,
            format!("waits for {}, whose write scope may overlap this task's (it is {})", other.name(), other.status),
            task.created_at,
        );
    }
    if let Some(target) = task.target_host.as_deref() {
        let heard = fleet.host(target).map(|host| host.last_heard_at);
        if !fleet.host(target).is_some_and(|host| fleet.live(host)) {
            let since = heard.unwrap_or(task.created_at);
            let message = match heard {
                Some(at) => format!("waits for its target host {target}, not heard from since {}", utc(at)),
                None => format!("waits for its target host {target}, never heard from"),
            };
            return reason(WaitingCode::HostLost, message, since);
        }
    }
    if !fleet.led {
        return reason(WaitingCode::NoHost, "no host leads the fleet: nothing is scheduled until one does".into(), task.created_at);
    }
    None
}

fn quota(parked: &ParkedAccount) -> Option<WaitingReason> {
    reason(
        WaitingCode::Quota,
        format!("account {} is parked by a usage limit until {} ({})", parked.account, utc(parked.parked_until), parked.message),
        parked.parked_at,
    )
}

fn ready(task: &Task, step: &Step, fleet: &Fleet) -> Option<WaitingReason> {
    let since = step.created_at.max(task.started_at.unwrap_or(0));
    if step.status == StepStatus::WaitingQuota {
        let host = task.assigned_host.as_deref().and_then(|name| fleet.host(name));
        return match host.and_then(|host| fleet.parked_for(host)) {
            Some(parked) => quota(parked),
            None => reason(WaitingCode::Quota, "waits for its account's usage limit to reset".into(), since),
        };
    }
    if fleet.mode == SystemMode::Paused {
        return reason(WaitingCode::Paused, "the fleet is paused: no step starts until it is resumed".into(), fleet.mode_since);
    }
    let kind = step.worker_kind.as_str();
    let bound = task.assigned_host.as_deref().or(step.target_host.as_deref()).or(task.target_host.as_deref());
    if let Some(name) = bound {
        let Some(host) = fleet.host(name).filter(|host| fleet.live(host)) else { return quiet_host(task, name, fleet, since) };
        if !host.offers(kind) {
            return reason(WaitingCode::NoHost, format!("host {name} does not offer worker kind {kind}"), since);
        }
        if host.disk_low {
            return reason(WaitingCode::Disk, format!("host {name} is below its minimum free disk and starts nothing"), since);
        }
        if let Some(parked) = fleet.parked_for(host).filter(|_| step.step_kind == shared::status::StepKind::Agent) {
            return quota(parked);
        }
        if host.free <= 0 {
            return reason(WaitingCode::HostBusy, format!("host {name} is running as many steps as it has room for"), since);
        }
        return None;
    }
    let able: Vec<&HostFacts> = fleet.hosts.iter().filter(|host| fleet.live(host) && host.offers(kind)).collect();
    if able.is_empty() {
        return reason(WaitingCode::NoHost, format!("no live host offers worker kind {kind}"), since);
    }
    let agent = step.step_kind == shared::status::StepKind::Agent;
    if agent && able.iter().all(|host| fleet.parked_for(host).is_some()) {
        return fleet.parked_for(able[0]).and_then(quota);
    }
    if able.iter().all(|host| host.disk_low) {
        return reason(WaitingCode::Disk, format!("every host offering {kind} is below its minimum free disk"), since);
    }
    if able.iter().all(|host| host.disk_low || host.free <= 0) {
        return reason(WaitingCode::HostBusy, format!("every host offering {kind} is running as many steps as it has room for"), since);
    }
    None
}

// ?1 JSON array of task ids.
const DEPENDENCIES_SQL: &str = "SELECT d.task_id AS waiting_id, p.task_id, p.task_key, p.status, p.created_at, p.updated_at \
     FROM task_dependencies d JOIN tasks p ON p.task_id = d.depends_on \
     WHERE d.task_id IN (SELECT value FROM json_each(?1)) ORDER BY d.task_id, d.position";
const CONFLICTS_SQL: &str = "SELECT x.task_id AS waiting_id, o.task_id, o.task_key, o.status, o.created_at, o.updated_at \
     FROM task_conflicts x JOIN tasks o ON o.task_id = x.other_id \
     WHERE x.task_id IN (SELECT value FROM json_each(?1)) AND o.status IN ('queued', 'planning', 'running') \
     ORDER BY x.task_id, o.created_at, o.task_id";
const MODE_SQL: &str = "SELECT mode, updated_at FROM system_state WHERE state_key = 'global'";
// The controllers table holds a row per host (the agents' controllers, a handful).
const HOSTS_SQL: &str = "SELECT host, MAX(last_heartbeat_at) AS last_heard_at, metadata_json FROM controllers GROUP BY host";

/// How many statements [`facts_statements`] makes.
pub const FACTS_STATEMENTS: usize = 6;

/// The statements reading the facts of the tasks `task_ids` and of the fleet at `now`.
pub fn facts_statements(task_ids: &[&str], now: i64) -> Vec<Statement> {
    let ids = json!(task_ids).to_string();
    vec![
        Statement::new(DEPENDENCIES_SQL, vec![ids.clone().into()]),
        Statement::new(CONFLICTS_SQL, vec![ids.into()]),
        Statement::new(MODE_SQL, vec![]),
        Statement::new(SELECT_LEASE_SQL, vec![]),
        Statement::new(HOSTS_SQL, vec![]),
        Statement::new(super::quota::PARKED_ACCOUNTS_SQL, vec![now.into()]),
    ]
}

/// The facts read by [`facts_statements`] (their rows from `at` on).
pub struct Facts {
    pub dependencies: Vec<(String, Related)>,
    pub conflicts: Vec<(String, Related)>,
    pub fleet: Fleet,
}

impl Facts {
    pub fn of<'a>(&self, task: &'a Task, ready_step: Option<&'a Step>) -> TaskFacts<'a> {
        let of = |pairs: &[(String, Related)]| {
            pairs.iter().filter(|(waiting, _)| *waiting == task.task_id).map(|(_, related)| related.clone()).collect()
        };
        TaskFacts { task, dependencies: of(&self.dependencies), conflicts: of(&self.conflicts), ready_step }
    }
}

fn related(row: &Row) -> Result<(String, Related), DbError> {
    let status = row.text("status")?;
    Ok((
        row.text("waiting_id")?,
        Related {
            task_id: row.text("task_id")?,
            key: row.opt_text("task_key")?,
            status: TaskStatus::parse(&status).ok_or_else(|| DbError::Decode(format!("unknown task status {status}")))?,
            created_at: row.i64("created_at")?,
            updated_at: row.i64("updated_at")?,
        },
    ))
}

pub fn read_facts(results: &[Vec<Row>], at: usize, now: i64, config: &super::config::Config) -> Result<Facts, DbError> {
    let dependencies = results[at].iter().map(related).collect::<Result<_, _>>()?;
    let conflicts = results[at + 1].iter().map(related).collect::<Result<_, _>>()?;
    let (mode, mode_since) = match results[at + 2].first() {
        Some(row) => (SystemMode::parse(&row.text("mode")?).unwrap_or(SystemMode::Running), row.i64("updated_at")?),
        None => (SystemMode::Running, 0),
    };
    let led = match results[at + 3].first() {
        Some(row) => row.opt_text("holder_id")?.is_some() && row.i64("lease_expires_at")? > now,
        None => false,
    };
    let mut hosts = Vec::new();
    for row in &results[at + 4] {
        let metadata: serde_json::Value = serde_json::from_str(&row.text("metadata_json")?).unwrap_or_default();
        hosts.push(HostFacts {
            host: row.text("host")?,
            last_heard_at: row.i64("last_heard_at")?,
            free: metadata["capacity"].as_i64().unwrap_or(1),
            worker_kinds: metadata["worker_kinds"]
                .as_array()
                .map(|kinds| kinds.iter().filter_map(|kind| kind.as_str().map(str::to_string)).collect()),
            disk_low: metadata["disk_low"].as_bool().unwrap_or(false),
            account: metadata["account"].as_str().map(str::to_string),
        });
    }
    let parked = results[at + 5].iter().map(super::records::parked_account).collect::<Result<_, _>>()?;
    let fleet = Fleet {
        now,
        mode,
        mode_since,
        led,
        hosts,
        parked,
        liveness_sec: config.controller_liveness_sec,
        host_lost_after_sec: config.host_lost_after_sec,
    };
    Ok(Facts { dependencies, conflicts, fleet })
}

#[cfg(test)]
#[path = "waiting_tests.rs"]
mod tests;
