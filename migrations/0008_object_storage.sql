-- SPEC §17, a year of output: a finished run's log chunks move into one compressed object per
-- stream (R2 on the Worker, files natively) and its large checkpoint contents into one object;
-- the database keeps where they are. Retention later deletes the objects and keeps these rows.
CREATE TABLE log_objects (
    run_id       TEXT NOT NULL,
    stream       TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    step_id      TEXT NOT NULL,
    object_key   TEXT NOT NULL,
    object_bytes INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    text_bytes   INTEGER NOT NULL,
    chunk_count  INTEGER NOT NULL,
    first_cursor INTEGER NOT NULL,
    last_cursor  INTEGER NOT NULL,
    -- Blocks of chunks, and where the block index (the object's last gzip member) is.
    blocks       INTEGER NOT NULL,
    index_offset INTEGER NOT NULL,
    index_length INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (run_id, stream)
);

-- When the run's output left the database; when retention made it unreadable, and when its
-- objects were deleted (at once, for a run with nothing to move).
ALTER TABLE runs ADD COLUMN compacted_at INTEGER;
ALTER TABLE runs ADD COLUMN logs_expired_at INTEGER;
ALTER TABLE runs ADD COLUMN logs_purged_at INTEGER;
-- The last compaction that committed (a compaction commits only if this is still what it read,
-- and changes it), and the log chunk seqs compacted so far as JSON ranges
-- `[[first, last], …]`: a chunk sent again after its row left for an object is still a duplicate.
ALTER TABLE runs ADD COLUMN compaction_id TEXT;
ALTER TABLE runs ADD COLUMN compacted_seqs TEXT;

CREATE INDEX runs_to_compact ON runs (finished_at) WHERE compacted_at IS NULL AND finished_at IS NOT NULL;

-- Output that arrives after its run was compacted (a host back from a long partition ships what
-- its lost run printed) is kept as rows, and the run is compacted again: its objects rebuilt
-- with the late chunks. Output of a run whose logs expired is not taken (the upload says so).
CREATE TRIGGER log_chunks_reopen_compacted_run AFTER INSERT ON log_chunks
WHEN (SELECT compacted_at FROM runs WHERE run_id = NEW.run_id) IS NOT NULL
BEGIN
    UPDATE runs SET compacted_at = NULL, logs_purged_at = NULL WHERE run_id = NEW.run_id;
END;
CREATE INDEX runs_to_purge ON runs (finished_at) WHERE compacted_at IS NOT NULL AND logs_purged_at IS NULL;

-- A checkpoint whose content moved: its object, and its gzip member's offset and length there.
ALTER TABLE checkpoints ADD COLUMN blob_key TEXT;
ALTER TABLE checkpoints ADD COLUMN blob_offset INTEGER;
ALTER TABLE checkpoints ADD COLUMN blob_length INTEGER;

-- Every index entry a write touches is a row written on D1 (what the free plan counts and the
-- storage budget of SPEC §17 measures). These indexes are only ever searched for rows with the
-- column set or in the one status named: indexing only those rows saves ~7 rows written per
-- step and ~3 per task (at each insert, and at each status change, `status` being indexed).
DROP INDEX steps_by_claim;
CREATE INDEX steps_by_claim ON steps (claim_token) WHERE claim_token IS NOT NULL;
DROP INDEX steps_by_waiting_account;
CREATE INDEX steps_by_waiting_account ON steps (waiting_account, status) WHERE waiting_account IS NOT NULL;
DROP INDEX steps_by_readiness;
CREATE INDEX steps_by_readiness ON steps (status, task_priority DESC, ready_at, step_id) WHERE status = 'ready';
DROP INDEX steps_by_deadline;
CREATE INDEX steps_by_deadline ON steps (status, heartbeat_deadline_at) WHERE heartbeat_deadline_at IS NOT NULL;
DROP INDEX tasks_by_assigned_host;
CREATE INDEX tasks_by_assigned_host ON tasks (status, assigned_host) WHERE assigned_host IS NOT NULL;
-- No statement looks runs up by step (they go by run id, or by task).
DROP INDEX runs_by_step;
