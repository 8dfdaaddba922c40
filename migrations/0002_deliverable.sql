-- The deliverable (SPEC §11): one host per task, the base resolved once to a commit, the
-- task's result (branch, commits, delivery), and a per-task history of what happened to it.
-- Forward-only: never edit a migration after it lands; add a new file instead.

-- Set by the first step claim (or at creation from constraints.target_host); every later
-- step and retry of the task is claimed only by this host.
ALTER TABLE tasks ADD COLUMN assigned_host TEXT;
ALTER TABLE tasks ADD COLUMN assigned_at INTEGER;
-- base_ref resolved by the assigned host at its first step: 40 hex digits.
ALTER TABLE tasks ADD COLUMN base_commit TEXT;
-- JSON: base/head commit, branch, commits, files changed, insertions, deletions, host, repo,
-- pushed_to, pr_url; reported by the runner with each settled step.
ALTER TABLE tasks ADD COLUMN result_json TEXT;

CREATE INDEX tasks_by_assigned_host ON tasks (status, assigned_host);

CREATE TABLE task_events (
    event_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX task_events_by_task ON task_events (task_id, event_id);
