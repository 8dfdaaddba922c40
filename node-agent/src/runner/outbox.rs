//! What the runs have to tell the control plane, waiting for the conductor's next sync, and
//! what came back. Runs put items in; the conductor takes a sync's worth out, sends them with
//! `agents.sync`, and hands the verdicts back; each run reads its own news. No I/O here: the
//! run drivers never wait on the network, so stopping a step is never held up by it.
//!
//! An item stays until a verdict settles it (accepted, stale or refused); a failed or deferred
//! sync leaves it for the next one, and the control plane takes a repeat as it took the first.

use std::collections::BTreeMap;

use shared::routes::MAX_UPLOAD_CONTENT_BYTES;
use shared::status::Verdict;
use shared::wire::{AgentSyncResponse, ItemVerdict, RunBeat, RunCheckpoint, RunCompletion, RunFailure, RunLogs};

/// Largest sum of log text and checkpoint content in one sync (the control plane's limit).
const SYNC_UPLOAD_BYTES: usize = MAX_UPLOAD_CONTENT_BYTES;
/// Largest JSON of the uploads of one sync, under the route's 2 MiB body limit.
const SYNC_JSON_BYTES: usize = 1_800_000;

/// The run items of one sync.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunReports {
    pub runs: Vec<RunBeat>,
    pub completions: Vec<RunCompletion>,
    pub failures: Vec<RunFailure>,
    pub logs: Vec<RunLogs>,
    pub checkpoints: Vec<RunCheckpoint>,
    /// Output is waiting beyond what this sync carries.
    pub more_output: bool,
}

/// What came back for one run since it last looked.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RunNews {
    /// The last heartbeat's verdict (`canceled`, or `stale`).
    pub beat: Option<ItemVerdict>,
    /// The log batch in flight was settled.
    pub logs: Option<ItemVerdict>,
    /// Checkpoints settled, by seq.
    pub checkpoints: Vec<(i64, ItemVerdict)>,
    /// The completion or failure was settled.
    pub report: Option<ItemVerdict>,
}

#[derive(Debug, Default)]
pub struct Outbox {
    /// Each run's latest heartbeat; sent with every sync until the run ends.
    beats: BTreeMap<String, RunBeat>,
    logs: BTreeMap<String, RunLogs>,
    checkpoints: BTreeMap<(String, i64), RunCheckpoint>,
    completions: BTreeMap<String, RunCompletion>,
    failures: BTreeMap<String, RunFailure>,
    /// Runs whose files hold output not yet taken into a batch.
    more_output: BTreeMap<String, bool>,
    /// When each run's heartbeat was last accepted (in settled syncs): the ones waiting
    /// longest go first, so a heartbeat the control plane deferred is not left out again.
    beat_accepted: BTreeMap<String, u64>,
    settled_syncs: u64,
    news: BTreeMap<String, RunNews>,
}

impl Outbox {
    pub fn put_beat(&mut self, beat: RunBeat) {
        self.beats.insert(beat.run_id.clone(), beat);
    }

    /// The run holds the step no more: no heartbeat for it from now on.
    pub fn end_beat(&mut self, run_id: &str) {
        self.beats.remove(run_id);
    }

    /// The run's log batch in flight (the same batch until a verdict comes back).
    pub fn put_logs(&mut self, logs: RunLogs) {
        self.logs.insert(logs.run_id.clone(), logs);
    }

    pub fn has_logs(&self, run_id: &str) -> bool {
        self.logs.contains_key(run_id)
    }

    pub fn set_more_output(&mut self, run_id: &str, more: bool) {
        self.more_output.insert(run_id.to_string(), more);
    }

    pub fn put_checkpoint(&mut self, checkpoint: RunCheckpoint) {
        self.checkpoints.insert((checkpoint.run_id.clone(), checkpoint.seq), checkpoint);
    }

    pub fn put_completion(&mut self, completion: RunCompletion) {
        self.completions.insert(completion.run_id.clone(), completion);
    }

    pub fn put_failure(&mut self, failure: RunFailure) {
        self.failures.insert(failure.run_id.clone(), failure);
    }

    /// What the run has been told since it last looked.
    pub fn take_news(&mut self, run_id: &str) -> RunNews {
        self.news.remove(run_id).unwrap_or_default()
    }

    /// A sync's worth: settlements and heartbeats first, then checkpoints and logs while they
    /// fit the upload limits. The items stay here until their verdicts come back.
    pub fn take(&self) -> RunReports {
        let mut beats: Vec<&RunBeat> = self.beats.values().collect();
        beats.sort_by_key(|beat| self.beat_accepted.get(&beat.run_id).copied().unwrap_or(0));
        let mut reports = RunReports {
            runs: beats.into_iter().cloned().collect(),
            completions: self.completions.values().cloned().collect(),
            failures: self.failures.values().cloned().collect(),
            more_output: self.more_output.values().any(|more| *more),
            ..RunReports::default()
        };
        let (mut text, mut json) = (0usize, 0usize);
        let mut fits = |content: usize, encoded: usize| {
            if text + content > SYNC_UPLOAD_BYTES || json + encoded > SYNC_JSON_BYTES {
                return false;
            }
            text += content;
            json += encoded;
            true
        };
        for checkpoint in self.checkpoints.values() {
            let encoded = serde_json::to_string(checkpoint).map(|text| text.len()).unwrap_or(usize::MAX / 4);
            if fits(checkpoint.content.len(), encoded) {
                reports.checkpoints.push(checkpoint.clone());
            } else {
                reports.more_output = true;
            }
        }
        for logs in self.logs.values() {
            let content = logs.chunks.iter().map(|chunk| chunk.text.len()).sum();
            let encoded = serde_json::to_string(logs).map(|text| text.len()).unwrap_or(usize::MAX / 4);
            if fits(content, encoded) {
                reports.logs.push(logs.clone());
            } else {
                reports.more_output = true;
            }
        }
        // A run's outcome goes only with all of its checkpoints and its output in flight.
        let left_out = |run_id: &str| {
            self.checkpoints
                .keys()
                .any(|(run, seq)| run == run_id && !reports.checkpoints.iter().any(|sent| sent.run_id == run_id && sent.seq == *seq))
                || (self.logs.contains_key(run_id) && !reports.logs.iter().any(|sent| sent.run_id == run_id))
        };
        let (completions, failures): (Vec<RunCompletion>, Vec<RunFailure>) = (
            reports.completions.iter().filter(|item| !left_out(&item.run_id)).cloned().collect(),
            reports.failures.iter().filter(|item| !left_out(&item.run_id)).cloned().collect(),
        );
        reports.completions = completions;
        reports.failures = failures;
        reports
    }

    /// The verdicts on what `sent` carried: settled items leave, deferred ones stay, and each
    /// run's news records what it needs to know.
    pub fn settle(&mut self, sent: &RunReports, answer: &AgentSyncResponse) {
        let settled = |verdict: &ItemVerdict| verdict.verdict != Verdict::Deferred;
        self.settled_syncs += 1;
        for (beat, verdict) in sent.runs.iter().zip(&answer.runs) {
            if settled(verdict) {
                self.beat_accepted.insert(beat.run_id.clone(), self.settled_syncs);
                self.news.entry(beat.run_id.clone()).or_default().beat = Some(verdict.clone());
            }
        }
        for (logs, verdict) in sent.logs.iter().zip(&answer.logs) {
            if settled(verdict) && self.logs.get(&logs.run_id) == Some(logs) {
                self.logs.remove(&logs.run_id);
                self.news.entry(logs.run_id.clone()).or_default().logs = Some(verdict.clone());
            }
        }
        for (checkpoint, verdict) in sent.checkpoints.iter().zip(&answer.checkpoints) {
            if settled(verdict) {
                self.checkpoints.remove(&(checkpoint.run_id.clone(), checkpoint.seq));
                self.news.entry(checkpoint.run_id.clone()).or_default().checkpoints.push((checkpoint.seq, verdict.clone()));
            }
        }
        for (completion, verdict) in sent.completions.iter().zip(&answer.completions) {
            if settled(verdict) {
                self.completions.remove(&completion.run_id);
                self.news.entry(completion.run_id.clone()).or_default().report = Some(verdict.clone());
            }
        }
        for (failure, verdict) in sent.failures.iter().zip(&answer.failures) {
            if settled(verdict) {
                self.failures.remove(&failure.run_id);
                self.news.entry(failure.run_id.clone()).or_default().report = Some(verdict.clone());
            }
        }
    }

    /// The run is over: nothing of it is sent any more, and its news is dropped.
    pub fn forget(&mut self, run_id: &str) {
        self.beats.remove(run_id);
        self.logs.remove(run_id);
        self.checkpoints.retain(|(run, _), _| run != run_id);
        self.completions.remove(run_id);
        self.failures.remove(run_id);
        self.more_output.remove(run_id);
        self.beat_accepted.remove(run_id);
        self.news.remove(run_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::status::{LeaderWrites, LeaseOperation, LogStream, SystemMode};
    use shared::wire::{LeaseDecision, LogChunkUpload, RunBeat, RunFailure};

    fn answer() -> AgentSyncResponse {
        AgentSyncResponse {
            node_id: "n".into(),
            parked_accounts: Vec::new(),
            events: Vec::new(),
            notified_through: 0,
            lease: LeaseDecision {
                is_leader: false,
                operation: LeaseOperation::None,
                term: 1,
                holder_id: None,
                holder_host: None,
                lease_expires_at: 0,
                renewed_at: 0,
            },
            mode: SystemMode::Running,
            granted: Vec::new(),
            runs: Vec::new(),
            completions: Vec::new(),
            failures: Vec::new(),
            logs: Vec::new(),
            checkpoints: Vec::new(),
            plans: Vec::new(),
            leader_writes: LeaderWrites::Skipped,
            claimed_tasks: Vec::new(),
            reaped: None,
            statements: 0,
            next_sync_ms: 0,
        }
    }

    fn logs(run: &str, bytes: usize) -> RunLogs {
        RunLogs {
            step_id: "s".into(),
            run_id: run.into(),
            chunks: vec![LogChunkUpload { seq: 1, stream: LogStream::Stdout, text: "x".repeat(bytes) }],
        }
    }

    #[test]
    fn items_stay_until_settled_and_a_sync_never_exceeds_the_upload_limit() {
        let mut outbox = Outbox::default();
        outbox.put_logs(logs("a.a1", 600_000));
        outbox.put_logs(logs("b.a1", 600_000));
        let first = outbox.take();
        assert_eq!(first.logs.len(), 1, "two 600 KB batches do not fit one sync");
        assert!(first.more_output);
        // The sync failed: nothing settled, the same goes again.
        assert_eq!(outbox.take(), first);
        let mut reply = answer();
        reply.logs = vec![ItemVerdict::new("a.a1", Verdict::Accepted)];
        outbox.settle(&first, &reply);
        assert_eq!(outbox.take_news("a.a1").logs.map(|verdict| verdict.verdict), Some(Verdict::Accepted));
        let second = outbox.take();
        assert_eq!(second.logs.iter().map(|logs| logs.run_id.as_str()).collect::<Vec<_>>(), ["b.a1"]);
        assert!(!second.more_output);
        let mut reply = answer();
        reply.logs = vec![ItemVerdict::new("b.a1", Verdict::Deferred)];
        outbox.settle(&second, &reply);
        assert_eq!(outbox.take().logs.len(), 1, "a deferred batch stays");
        assert!(outbox.take_news("b.a1").logs.is_none());
    }

    #[test]
    fn a_newer_batch_is_not_settled_by_the_verdict_on_an_older_one() {
        let mut outbox = Outbox::default();
        outbox.put_logs(logs("a.a1", 10));
        let sent = outbox.take();
        outbox.put_logs(logs("a.a1", 20));
        let mut reply = answer();
        reply.logs = vec![ItemVerdict::new("a.a1", Verdict::Accepted)];
        outbox.settle(&sent, &reply);
        assert!(outbox.has_logs("a.a1"));
        assert!(outbox.take_news("a.a1").logs.is_none());
    }

    #[test]
    fn an_outcome_waits_for_its_output_and_deferred_heartbeats_go_first() {
        let mut outbox = Outbox::default();
        outbox.put_logs(logs("a.a1", 600_000));
        outbox.put_logs(logs("b.a1", 600_000));
        outbox.put_failure(RunFailure { step_id: "s".into(), run_id: "b.a1".into(), error: "x".into(), ..RunFailure::default() });
        let first = outbox.take();
        assert_eq!(first.logs[0].run_id, "a.a1");
        assert!(first.failures.is_empty(), "b's outcome waits for b's output");
        let mut reply = answer();
        reply.logs = vec![ItemVerdict::new("a.a1", Verdict::Accepted)];
        outbox.settle(&first, &reply);
        let second = outbox.take();
        assert_eq!((second.logs.len(), second.failures.len()), (1, 1), "b's output and outcome together");

        let beat = |run: &str| RunBeat { step_id: "s".into(), run_id: run.into(), progress: None, base_commit: None };
        let mut outbox = Outbox::default();
        outbox.put_beat(beat("a.a1"));
        outbox.put_beat(beat("b.a1"));
        let sent = outbox.take();
        let mut reply = answer();
        reply.runs = vec![ItemVerdict::new("a.a1", Verdict::Accepted), ItemVerdict::new("b.a1", Verdict::Deferred)];
        outbox.settle(&sent, &reply);
        assert_eq!(outbox.take().runs[0].run_id, "b.a1", "the deferred heartbeat goes first next time");
    }
}
