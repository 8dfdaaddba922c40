//! The startup checklist of the spec, in the order `start` performs it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChecklistItem {
    pub id: &'static str,
    pub description: &'static str,
    /// Performed only while this node leads.
    pub leader_only: bool,
}

pub const STARTUP_CHECKLIST: [ChecklistItem; 6] = [
    ChecklistItem {
        id: "register-controller",
        description: "send the first controller heartbeat (identity, role, priority, version)",
        leader_only: false,
    },
    ChecklistItem { id: "acquire-lease", description: "acquire or observe the global leader lease", leader_only: false },
    ChecklistItem { id: "load-runs", description: "find unfinished runs in the runs directory", leader_only: false },
    ChecklistItem { id: "reconcile-runs", description: "adopt live runs, settle dead ones with the control plane", leader_only: false },
    ChecklistItem {
        id: "start-heartbeat-loop",
        description: "keep heartbeating and renewing or competing for the lease",
        leader_only: false,
    },
    ChecklistItem {
        id: "start-scheduler",
        description: "claim, plan and reap (leader only; a standby refuses to schedule)",
        leader_only: true,
    },
];

pub fn to_text() -> String {
    STARTUP_CHECKLIST.iter().enumerate().map(|(index, item)| format!("{}. {:<22} {}\n", index + 1, item.id, item.description)).collect()
}
