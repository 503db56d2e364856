-- Attempt bookkeeping (issue #17, item 9): attempt_count now counts the attempts
-- started, the one in flight included, and is raised when a delivery is leased (by a
-- claim, or by the ingest that hands it over); attempt_started_at is the start of the
-- attempt in flight, cleared when its outcome is recorded. One still set at start
-- belongs to the process that stopped: that attempt is recorded as `interrupted`.
ALTER TABLE deliveries ADD COLUMN attempt_started_at INTEGER;
