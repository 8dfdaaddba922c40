-- Task cards and waves (SPEC §12): a card's key, its dependencies and write scope, review, and
-- the report. Forward-only: never edit a migration after it lands; add a new file instead.

-- The card's id (e.g. T-013): unique per repository; creating it again answers the existing task.
ALTER TABLE tasks ADD COLUMN task_key TEXT;
-- JSON arrays: the task ids it depends on (in the order given) and its write-scope globs.
ALTER TABLE tasks ADD COLUMN depends_on_json TEXT NOT NULL DEFAULT '[]';
ALTER TABLE tasks ADD COLUMN write_scope_json TEXT NOT NULL DEFAULT '[]';
-- 1: the task ends in `review` once its steps passed, and waits for approve or reject.
ALTER TABLE tasks ADD COLUMN review INTEGER NOT NULL DEFAULT 0;
-- JSON: files_changed, commands_run, result, risks, next_handoff.
ALTER TABLE tasks ADD COLUMN report_json TEXT;

CREATE UNIQUE INDEX tasks_by_key ON tasks (repo, task_key) WHERE task_key IS NOT NULL;
-- The tasks of a repository still to run or running: whose write scopes a new task may overlap.
CREATE INDEX tasks_by_repo ON tasks (repo, status);

-- One row per dependency, so "have all succeeded?" and "has one failed?" are index lookups.
CREATE TABLE task_dependencies (
    task_id    TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (task_id, depends_on)
);

CREATE INDEX task_dependencies_by_dependency ON task_dependencies (depends_on);

-- Tasks of one repository whose write scopes may overlap, a row each way: the scheduler never
-- runs both of a pair at once (the later one waits).
CREATE TABLE task_conflicts (
    task_id  TEXT NOT NULL,
    other_id TEXT NOT NULL,
    PRIMARY KEY (task_id, other_id)
);
