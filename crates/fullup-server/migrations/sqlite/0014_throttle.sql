-- Per-webhook throttle (issue 15, item 2); PostgreSQL's 0015_throttle adds the same
-- column.
--
-- rate_limit_per_second: at most this many requests per second to the webhook's
-- receiver; NULL: no limit. One process serves a SQLite database, so the throttle's
-- state (each webhook's next slot) lives in its memory, as the leases do.
ALTER TABLE webhooks ADD COLUMN rate_limit_per_second INTEGER;
