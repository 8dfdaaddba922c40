-- SPEC §13, usage limits: a coding agent's account parked until its limit resets. While it is
-- parked no host claims agent steps for it; the step that hit the limit waits in status
-- `waiting_quota` (its account in `waiting_account`) and is ready again at the reset.
CREATE TABLE accounts (
    account         TEXT PRIMARY KEY,
    parked_until    INTEGER NOT NULL,
    message         TEXT NOT NULL,
    parked_at       INTEGER NOT NULL,
    parked_by       TEXT NOT NULL,
    -- Parks in a row whose message gave no reset time: the wait grows (15 min, 1 h, 4 h).
    unknown_resets  INTEGER NOT NULL DEFAULT 0,
    resumed_at      INTEGER
);
CREATE INDEX accounts_by_reset ON accounts (parked_until);

ALTER TABLE steps ADD COLUMN waiting_account TEXT;
CREATE INDEX steps_by_waiting_account ON steps (waiting_account, status);

-- What a coding agent's run cost, from its usage file (JSON: input_tokens, output_tokens,
-- cost_usd, model); `tasks.read` sums it per task.
ALTER TABLE runs ADD COLUMN usage_json TEXT;
