//! Lifecycle enums and their wire spellings.

use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(value: &str) -> Option<Self> {
                match value {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// The accepted spellings, for error messages: `a, b, c`.
            pub fn choices() -> String {
                [$($text),+].join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// Fleet-wide mode set by administrators.
    SystemMode { Running => "running", Paused => "paused", Draining => "draining" }
);

wire_enum!(
    TaskStatus {
        Queued => "queued",
        Planning => "planning",
        Running => "running",
        /// Its steps passed; it waits for a person to approve or reject it (`review: true`).
        Review => "review",
        Succeeded => "succeeded",
        Failed => "failed",
        Blocked => "blocked",
        Canceled => "canceled",
    }
);

impl TaskStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Blocked | TaskStatus::Canceled)
    }
}

wire_enum!(
    StepStatus {
        Pending => "pending",
        Ready => "ready",
        Claimed => "claimed",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Blocked => "blocked",
        TimedOut => "timed_out",
        Canceled => "canceled",
        /// Its coding agent hit its account's usage limit: it waits, with no attempt spent,
        /// until the account's reset (SPEC §13), then is ready again on the same host.
        WaitingQuota => "waiting_quota",
    }
);

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Failed | StepStatus::Blocked | StepStatus::TimedOut | StepStatus::Canceled)
    }

    /// Claimed or running: a run of this step is in flight on some host.
    pub fn is_active(self) -> bool {
        matches!(self, StepStatus::Claimed | StepStatus::Running)
    }
}

wire_enum!(
    /// One attempt of a step. `lost` is a run whose heartbeat deadline passed (reaped).
    RunStatus {
        Claimed => "claimed",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Blocked => "blocked",
        TimedOut => "timed_out",
        Canceled => "canceled",
        Lost => "lost",
    }
);

wire_enum!(ControllerRole { Primary => "primary", Standby => "standby" });

wire_enum!(
    /// Why a queued task, or a ready step, is not moving (SPEC §13 `waiting_reason.code`).
    WaitingCode {
        /// The fleet is paused.
        Paused => "paused",
        /// The fleet is draining: started tasks go on, new ones wait.
        Draining => "draining",
        /// A dependency has not succeeded yet.
        Dependency => "dependency",
        /// A task whose write scope may overlap is running or ahead in the queue.
        Scope => "scope",
        /// A dependency waits for a person's approval.
        Review => "review",
        /// No live host offers the worker kind (or no host leads the fleet).
        NoHost => "no_host",
        /// The hosts that may run it have no room.
        HostBusy => "host_busy",
        /// Its host is not heard from.
        HostLost => "host_lost",
        /// Its coding agent's account is parked until a usage limit resets.
        Quota => "quota",
        /// The hosts that may run it are below their minimum free disk.
        Disk => "disk",
    }
);

wire_enum!(
    /// What a step does: set up a new worktree (`.baa/setup` or `constraints.setup`), run the
    /// coding agent, run a shell command, run an acceptance test, merge the dependencies'
    /// branches (an `integrate` task), deliver the branch (push, open a pull request) after
    /// every acceptance step passed.
    StepKind { Setup => "setup", Agent => "agent", Shell => "shell", Test => "test", Merge => "merge", Deliver => "deliver" }
);

impl StepKind {
    /// Steps whose changes to the worktree are committed on the task's branch.
    pub fn commits(self) -> bool {
        matches!(self, StepKind::Agent | StepKind::Shell)
    }
}

wire_enum!(
    /// `constraints.deliver`: what happens to the task's branch once its acceptance passed.
    DeliveryMode { None => "none", Push => "push", Pr => "pr" }
);

wire_enum!(
    /// Task types the built-in planner knows; any other is refused at creation. `integrate`
    /// merges the branches of its `depends_on` (a wave) into its own branch (SPEC §12).
    TaskType { Shell => "shell", Codex => "codex", Integrate => "integrate" }
);

wire_enum!(
    CheckpointType {
        Summary => "summary",
        GitDiff => "git_diff",
        LogTail => "log_tail",
        TestOutput => "test_output",
        /// The task's branch against its base (`base..HEAD`), after a step that committed.
        BranchDiff => "branch_diff",
    }
);

wire_enum!(CheckpointFormat { Json => "json", Text => "text", Patch => "patch" });

wire_enum!(LogStream { Stdout => "stdout", Stderr => "stderr", Worker => "worker" });

wire_enum!(
    /// What `leader.acquire` did for the caller.
    LeaseOperation {
        Acquire => "acquire",
        Renew => "renew",
        /// The caller held the lease but the preferred controller asked for it back: the
        /// lease was released so the preferred one takes it on its next call.
        HandOver => "hand_over",
        /// Nothing changed for the caller: someone else leads.
        None => "none",
    }
);

wire_enum!(
    /// What a node wants of the leader lease in `agents.sync`.
    LeaseWish {
        /// Acquire the lease if it is free or expired, renew it if held.
        Acquire => "acquire",
        /// Give it up (a graceful step-down); a standby takes over at once.
        Release => "release",
        /// Leave the lease alone: this node does not lead.
        Keep => "keep",
    }
);

wire_enum!(
    /// What became of one item of an `agents.sync`.
    Verdict {
        /// Applied, now or by an earlier copy of the same item: do not send it again.
        Accepted => "accepted",
        /// The run is not this host's current attempt any more (reaped, lost, restarted
        /// elsewhere, or never its own): nothing it says counts; stop it.
        Stale => "stale",
        /// Refused for what it says (`code` and `message` tell why): sending it again cannot help.
        Refused => "refused",
        /// Not looked at: the sync's batch had no room left. Send it again.
        Deferred => "deferred",
    }
);

wire_enum!(
    /// Whether the leader's writes of an `agents.sync` were made.
    LeaderWrites {
        /// Made, fenced by the caller's term.
        Applied => "applied",
        /// The caller sent no term, or does not wish to lead: none attempted.
        Skipped => "skipped",
        /// Refused by the fence: the caller does not lead in the term it sent.
        Fenced => "fenced",
    }
);
