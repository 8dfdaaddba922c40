-- SPEC §13, agent rounds: every step belongs to a round of its task, 1 for the plan's steps. A
-- failed acceptance step of a codex task with rounds left adds the next round's steps (another
-- agent step with feedback, the acceptance steps again, delivery) after the task's last step.
ALTER TABLE steps ADD COLUMN round INTEGER NOT NULL DEFAULT 1;
