-- SPEC §13, telling a person: one ordered feed of what happened (`GET /v1/events`), written by
-- triggers in the same transaction as the change itself, whatever statement made it (and, for
-- a host back after being lost, by the sync that brings it back).
CREATE TABLE events (
    event_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    task_id    TEXT,
    -- What it is about, for people: the task's title, the account, the mode.
    subject    TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TRIGGER events_on_task_created AFTER INSERT ON tasks
BEGIN
    INSERT INTO events (kind, task_id, subject, message, created_at)
    VALUES ('task_created', NEW.task_id, NEW.title, 'created (' || NEW.task_type || ')', NEW.created_at);
END;

CREATE TRIGGER events_on_task_status AFTER UPDATE OF status ON tasks
WHEN NEW.status <> OLD.status AND NEW.status IN ('running', 'succeeded', 'failed', 'blocked', 'review', 'canceled')
BEGIN
    INSERT INTO events (kind, task_id, subject, message, created_at)
    VALUES (CASE NEW.status WHEN 'running' THEN 'task_started' ELSE 'task_' || NEW.status END, NEW.task_id, NEW.title,
            NEW.status || COALESCE(': ' || NEW.status_reason, ''), NEW.updated_at);
END;

CREATE TRIGGER events_on_task_history AFTER INSERT ON task_events
WHEN NEW.kind IN ('round_started', 'host_lost')
BEGIN
    INSERT INTO events (kind, task_id, subject, message, created_at)
    VALUES (NEW.kind, NEW.task_id, COALESCE((SELECT title FROM tasks WHERE task_id = NEW.task_id), NEW.task_id), NEW.message, NEW.created_at);
END;

CREATE TRIGGER events_on_account_parked AFTER INSERT ON accounts
BEGIN
    INSERT INTO events (kind, task_id, subject, message, created_at)
    VALUES ('account_parked', NULL, NEW.account, 'parked until ' || datetime(NEW.parked_until, 'unixepoch') || ' UTC by ' || NEW.parked_by || ': ' || NEW.message, NEW.parked_at);
END;

CREATE TRIGGER events_on_account_parked_again AFTER UPDATE OF parked_at ON accounts
WHEN NEW.parked_at <> OLD.parked_at
BEGIN
    INSERT INTO events (kind, task_id, subject, message, created_at)
    VALUES ('account_parked', NULL, NEW.account, 'parked until ' || datetime(NEW.parked_until, 'unixepoch') || ' UTC by ' || NEW.parked_by || ': ' || NEW.message, NEW.parked_at);
END;

CREATE TRIGGER events_on_account_resumed AFTER UPDATE OF resumed_at ON accounts
WHEN NEW.resumed_at IS NOT OLD.resumed_at
BEGIN
    INSERT INTO events (kind, task_id, subject, message, created_at)
    VALUES ('account_resumed', NULL, NEW.account, 'resumed by a person', NEW.resumed_at);
END;

CREATE TRIGGER events_on_mode_changed AFTER INSERT ON mode_changes
BEGIN
    INSERT INTO events (kind, task_id, subject, message, created_at)
    VALUES ('mode_changed', NULL, NEW.mode, NEW.previous_mode || ' to ' || NEW.mode || ' by ' || NEW.requested_by || COALESCE(': ' || NEW.reason, ''),
            NEW.changed_at);
END;

-- The last event the leader delivered to the notification webhook: where the next leader goes on.
ALTER TABLE system_state ADD COLUMN notified_through INTEGER NOT NULL DEFAULT 0;
