//! The guarantees of SPEC §15, checked after every event of a simulation: what the control
//! plane answered, what each agent believes, and what the database holds. The first broken
//! guarantee ends the seed.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;
use shared::status::{SystemMode, Verdict};
use shared::wire::{AgentSyncRequest, AgentSyncResponse};

/// A broken guarantee: which one, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub guarantee: &'static str,
    pub detail: String,
}

pub const TERMINAL: [&str; 4] = ["succeeded", "failed", "blocked", "canceled"];

#[derive(Default)]
pub struct Checks {
    /// Each term's holder, as the control plane's answers named it.
    holders: BTreeMap<i64, String>,
    /// Each term's leader, as the agents believed.
    believers: BTreeMap<i64, String>,
    /// Each step attempt's host, from the grants.
    attempts: BTreeMap<(String, i64), String>,
    runs: BTreeSet<String>,
    /// Each task's terminal status, once it had one.
    ended: BTreeMap<String, String>,
    pub violation: Option<Violation>,
}

impl Checks {
    fn fail(&mut self, guarantee: &'static str, detail: String) {
        if self.violation.is_none() {
            self.violation = Some(Violation { guarantee, detail });
        }
    }

    /// One sync the control plane answered: its lease, its leader writes, its grants, its mode.
    pub fn on_sync(&mut self, request: &AgentSyncRequest, answer: &AgentSyncResponse) {
        let node = answer.node_id.as_str();
        let lease = &answer.lease;
        if let Some(holder) = &lease.holder_id {
            let first = self.holders.entry(lease.term).or_insert_with(|| holder.clone()).clone();
            if &first != holder {
                self.fail("one holder per term", format!("term {} was held by {first} and by {holder}", lease.term));
            }
        }
        if let Some(term) = request.lease.term {
            let accepted_plans = answer.plans.iter().filter(|verdict| verdict.verdict == Verdict::Accepted).count();
            let reaped = answer.reaped.as_ref().map_or(0, |reaped| reaped.reaped.len() + reaped.requeued_tasks.len());
            let writes = accepted_plans + answer.claimed_tasks.len() + reaped;
            if writes > 0 && !(lease.is_leader && lease.term == term && lease.holder_id.as_deref() == Some(node)) {
                self.fail(
                    "no stale leader write",
                    format!(
                        "{node} wrote as leader of term {term} ({accepted_plans} plan(s), {} claim(s), {reaped} reaped) while the lease is {}'s in term {}",
                        answer.claimed_tasks.len(),
                        lease.holder_id.as_deref().unwrap_or("nobody"),
                        lease.term
                    ),
                );
            }
        }
        for grant in &answer.granted {
            let key = (grant.step.step_id.clone(), grant.attempt);
            if let Some(first) = self.attempts.insert(key, node.to_string()) {
                self.fail(
                    "one host per step attempt",
                    format!("attempt {} of step {} was granted to {first} and to {node}", grant.attempt, grant.step.step_id),
                );
            }
            if !self.runs.insert(grant.run_id.clone()) {
                self.fail("one host per step attempt", format!("run {} was granted twice", grant.run_id));
            }
        }
        match answer.mode {
            SystemMode::Paused if !answer.granted.is_empty() || !answer.claimed_tasks.is_empty() => self.fail(
                "mode respected",
                format!("while paused, {} step(s) granted and {} task(s) claimed", answer.granted.len(), answer.claimed_tasks.len()),
            ),
            SystemMode::Draining if !answer.claimed_tasks.is_empty() => {
                self.fail("mode respected", format!("while draining, {} task(s) claimed", answer.claimed_tasks.len()))
            }
            _ => {}
        }
    }

    /// What each agent believes at one instant: the term it leads in, if any.
    pub fn on_beliefs(&mut self, leading: &[(&str, Option<i64>)]) {
        let leaders: Vec<(&str, i64)> = leading.iter().filter_map(|(node, term)| term.map(|term| (*node, term))).collect();
        if leaders.len() > 1 {
            self.fail("one leader at a time", format!("{leaders:?} all believe they lead"));
        }
        for (node, term) in leaders {
            let first = self.believers.entry(term).or_insert_with(|| node.to_string()).clone();
            if first != node {
                self.fail("one holder per term", format!("{first} and {node} both led in term {term}"));
            }
        }
    }

    /// What the database holds after a write: a task's terminal status never changes, and a
    /// step succeeds by its current run alone, once.
    pub fn on_database(&mut self, connection: &Connection) {
        let tasks: Vec<(String, String)> = rows(connection, "SELECT task_id, status FROM tasks ORDER BY task_id");
        for (task_id, status) in tasks {
            match self.ended.get(&task_id) {
                Some(ended) if *ended != status => {
                    let detail = format!("task {task_id} ended {ended}, then became {status}");
                    self.fail("task ends once", detail);
                }
                None if TERMINAL.contains(&status.as_str()) => {
                    self.ended.insert(task_id, status);
                }
                _ => {}
            }
        }
        let twice: Vec<(String, String)> = rows(
            connection,
            "SELECT step_id, group_concat(run_id) FROM runs WHERE status = 'succeeded' GROUP BY step_id HAVING COUNT(*) > 1",
        );
        if let Some((step_id, runs)) = twice.first() {
            self.fail("completion counted once", format!("step {step_id} succeeded by runs {runs}"));
        }
        let foreign: Vec<(String, String)> = rows(
            connection,
            "SELECT s.step_id, COALESCE(s.current_run_id, '-') || ' is ' || COALESCE(r.status, 'missing') FROM steps s \
             LEFT JOIN runs r ON r.run_id = s.current_run_id WHERE s.status = 'succeeded' AND COALESCE(r.status, '') <> 'succeeded'",
        );
        if let Some((step_id, run)) = foreign.first() {
            self.fail("completion counted once", format!("step {step_id} succeeded but its current run {run}"));
        }
    }

    /// Once the faults stopped and the fleet had time to settle: every task ended.
    pub fn at_end(&mut self, connection: &Connection, bound_sec: u64) {
        let open: Vec<(String, String)> =
            rows(connection, "SELECT task_id, status FROM tasks WHERE status NOT IN ('succeeded', 'failed', 'blocked', 'canceled')");
        if let Some((task_id, status)) = open.first() {
            self.fail("every task ends", format!("task {task_id} is still {status} {bound_sec} s after the faults stopped"));
        }
    }

    /// The log the control plane stored for a run is exactly what its process wrote.
    pub fn on_log(&mut self, run_id: &str, stream: &str, written: &[u8], stored: &[u8]) {
        if written != stored {
            let same = written.iter().zip(stored).take_while(|(a, b)| a == b).count();
            self.fail(
                "logs exact",
                format!(
                    "run {run_id} {stream}: wrote {} bytes, the control plane holds {}; they differ from byte {same}",
                    written.len(),
                    stored.len()
                ),
            );
        }
    }
}

/// Two text columns of every row of `sql`.
fn rows(connection: &Connection, sql: &str) -> Vec<(String, String)> {
    let mut statement = connection.prepare_cached(sql).expect("a checker's query");
    let found = statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
        .expect("a checker's query")
        .collect::<Result<Vec<_>, _>>()
        .expect("a checker's rows");
    found
}
