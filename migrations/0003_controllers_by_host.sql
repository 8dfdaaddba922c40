-- Controllers found by host: "is a controller on this host alive" is asked by tasks.claim
-- (target_host) and by every reap (one host per task, the host-lost rule); without this index
-- each of those scans the controllers table.
-- Forward-only: never edit a migration after it lands; add a new file instead.

CREATE INDEX controllers_by_host ON controllers (host, last_heartbeat_at);
