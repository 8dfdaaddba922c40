//! What the status server and `--run-once --json` show of the conductor.

use std::time::Instant;

use super::Conductor;
use crate::status::snapshot::{ConductorStatus, LeaseLoopView, LeaseView, Loops, SchedulerView, SyncView};

impl<P> Conductor<P> {
    pub fn snapshot(&self, now: Instant) -> ConductorStatus {
        let ago = |instant: Option<Instant>| instant.map(|instant| now.saturating_duration_since(instant).as_millis() as u64);
        ConductorStatus {
            node_id: self.config.node_id.clone(),
            host: self.config.host.clone(),
            role: self.config.role,
            preferred: self.config.preferred,
            lease: LeaseView {
                state: self.lease.status(now),
                leader_id: self.lease.holder_id.clone(),
                term: self.lease.term,
                lease_expires_at: self.lease.lease_expires_at,
                last_operation: self.lease.last_operation,
                consecutive_failures: self.lease.consecutive_failures,
            },
            mode: self.mode,
            parked_accounts: self.parked_accounts.clone(),
            loops: Loops {
                sync: SyncView {
                    syncs: self.sync.syncs,
                    last_ok_ms_ago: ago(self.sync.last_ok),
                    consecutive_failures: self.sync.consecutive_failures,
                    last_error: self.sync.last_error.clone(),
                    next_sync_ms: self.sync.next_sync_ms,
                    statements: self.sync.statements,
                    max_interval_ms: self.config.heartbeat_interval.as_millis() as u64,
                    retry_after_ms: self.config.lease_renew_interval.as_millis() as u64,
                },
                lease: LeaseLoopView { ttl_sec: self.config.lease_ttl_sec, renew_failure_threshold: self.config.renew_failure_threshold },
                scheduler: SchedulerView {
                    active: self.lease.leading_term(now).is_some(),
                    claimed: self.scheduler.claimed,
                    planned: self.scheduler.planned,
                    pending_plans: self.pending_plans.len(),
                    reaped: self.scheduler.reaped,
                    granted: self.scheduler.granted,
                    last_error: self.scheduler.last_error.clone(),
                },
            },
            checklist: self.checklist.clone(),
            paths: self.config.paths.clone(),
            control_api_base: self.config.control_api_base.clone(),
            local_api: self.config.local_api.clone(),
            token_set: self.config.shared_token.is_some(),
            warnings: self.config.warnings.clone(),
        }
    }
}
