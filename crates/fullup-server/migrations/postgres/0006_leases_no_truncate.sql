-- Each node vacuums `leases` every 5 s (store/postgres.rs). By default a vacuum that
-- leaves empty pages at the end of a table then truncates them, which takes an ACCESS
-- EXCLUSIVE lock on the table: every claim, ingest and attempt record touching a lease
-- waits behind it, and the vacuum itself waits up to seconds for that lock while they
-- run. The table holds only the attempts in flight and its pages are reused at once, so
-- there is nothing worth giving back to the file system.
ALTER TABLE leases SET (vacuum_truncate = false);
