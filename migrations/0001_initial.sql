-- baa-conductor control plane schema, version 1.
-- Forward-only: never edit a migration after it lands; add a new file instead.
-- Times are integer unix seconds. JSON documents are stored as TEXT (`*_json`).

CREATE TABLE controllers (
    controller_id     TEXT PRIMARY KEY,
    host              TEXT NOT NULL,
    role              TEXT NOT NULL,
    priority          INTEGER NOT NULL,
    status            TEXT NOT NULL,
    version           TEXT,
    started_at        INTEGER,
    metadata_json     TEXT NOT NULL DEFAULT '{}',
    first_seen_at     INTEGER NOT NULL,
    last_heartbeat_at INTEGER NOT NULL
);

-- One row, 'global', created by the first leader.acquire.
CREATE TABLE leader_lease (
    lease_name          TEXT PRIMARY KEY,
    holder_id           TEXT,
    holder_host         TEXT,
    term                INTEGER NOT NULL,
    lease_expires_at    INTEGER NOT NULL,
    renewed_at          INTEGER NOT NULL,
    acquired_at         INTEGER,
    preferred_holder_id TEXT,
    preferred_seen_at   INTEGER,
    last_operation      TEXT NOT NULL,
    metadata_json       TEXT
);

CREATE TABLE system_state (
    state_key  TEXT PRIMARY KEY,
    mode       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

INSERT INTO system_state (state_key, mode, updated_at) VALUES ('global', 'running', 0);

CREATE TABLE mode_changes (
    change_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    mode          TEXT NOT NULL,
    previous_mode TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    reason        TEXT,
    principal     TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    changed_at    INTEGER NOT NULL
);

CREATE TABLE tasks (
    task_id             TEXT PRIMARY KEY,
    repo                TEXT NOT NULL,
    task_type           TEXT NOT NULL,
    title               TEXT NOT NULL,
    goal                TEXT NOT NULL,
    priority            INTEGER NOT NULL,
    status              TEXT NOT NULL,
    constraints_json    TEXT NOT NULL,
    acceptance_json     TEXT NOT NULL,
    metadata_json       TEXT NOT NULL,
    target_host         TEXT,
    base_ref            TEXT NOT NULL,
    branch_name         TEXT NOT NULL,
    planner_provider    TEXT,
    planning_strategy   TEXT,
    claimed_by          TEXT,
    claim_term          INTEGER,
    claimed_at          INTEGER,
    plan_id             TEXT,
    idempotency_key     TEXT UNIQUE,
    request_fingerprint TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    started_at          INTEGER,
    finished_at         INTEGER,
    status_reason       TEXT
);

CREATE INDEX tasks_by_queue ON tasks (status, priority DESC, created_at, task_id);
CREATE INDEX tasks_by_age ON tasks (created_at, task_id);

CREATE TABLE steps (
    step_id               TEXT PRIMARY KEY,
    task_id               TEXT NOT NULL,
    step_index            INTEGER NOT NULL,
    step_kind             TEXT NOT NULL,
    worker_kind           TEXT NOT NULL,
    title                 TEXT NOT NULL,
    command               TEXT,
    prompt                TEXT,
    timeout_sec           INTEGER NOT NULL,
    status                TEXT NOT NULL,
    attempt               INTEGER NOT NULL DEFAULT 0,
    max_attempts          INTEGER NOT NULL,
    target_host           TEXT,
    task_priority         INTEGER NOT NULL,
    worker_id             TEXT,
    current_run_id        TEXT,
    -- Set by the statement that last claimed or settled the step, so later statements of the
    -- same batch can tell whether that statement changed it.
    claim_token           TEXT,
    heartbeat_deadline_at INTEGER,
    created_at            INTEGER NOT NULL,
    ready_at              INTEGER,
    started_at            INTEGER,
    finished_at           INTEGER,
    exit_code             INTEGER,
    summary               TEXT,
    error                 TEXT,
    result_json           TEXT,
    metadata_json         TEXT NOT NULL DEFAULT '{}',
    UNIQUE (task_id, step_index)
);

CREATE INDEX steps_by_readiness ON steps (status, task_priority DESC, ready_at, step_id);
CREATE INDEX steps_by_deadline ON steps (status, heartbeat_deadline_at);
CREATE INDEX steps_by_claim ON steps (claim_token);

CREATE TABLE runs (
    run_id            TEXT PRIMARY KEY,
    step_id           TEXT NOT NULL,
    task_id           TEXT NOT NULL,
    worker_id         TEXT NOT NULL,
    host              TEXT NOT NULL,
    attempt           INTEGER NOT NULL,
    status            TEXT NOT NULL,
    claimed_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    last_heartbeat_at INTEGER,
    exit_code         INTEGER,
    summary           TEXT,
    error             TEXT,
    result_json       TEXT,
    progress_json     TEXT
);

CREATE INDEX runs_by_task ON runs (task_id, claimed_at);
CREATE INDEX runs_by_step ON runs (step_id);

CREATE TABLE checkpoints (
    run_id          TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    step_id         TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    checkpoint_type TEXT NOT NULL,
    format          TEXT NOT NULL,
    content         TEXT NOT NULL,
    size            INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE log_chunks (
    cursor     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    task_id    TEXT NOT NULL,
    step_id    TEXT NOT NULL,
    stream     TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (run_id, seq)
);

CREATE INDEX log_chunks_by_task ON log_chunks (task_id, cursor);
