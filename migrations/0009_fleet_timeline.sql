-- SPEC §18, the console's fleet timeline: the runs of a time window (`runs.list`), found by when
-- they were claimed. Forward-only: never edit a migration after it lands; add a new file instead.

CREATE INDEX runs_by_claimed_at ON runs (claimed_at);
