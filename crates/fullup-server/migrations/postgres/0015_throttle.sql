-- Per-webhook throttle (issue 15, item 2); SQLite's 0014_throttle adds the same column.
--
-- rate_limit_per_second: at most this many requests per second to the webhook's
-- receiver, on all nodes together; NULL: no limit.
ALTER TABLE webhooks ADD COLUMN rate_limit_per_second INTEGER;

-- One row per throttled webhook that has sent: its theoretical arrival time (GCRA), in
-- microseconds since the Unix epoch on the database server's clock, which every node
-- shares. A sender takes its slot with one atomic upsert just before its request
-- (`store/postgres/writes.rs`, `domain/throttle.rs`).
CREATE TABLE throttles (
    webhook_id TEXT PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    tat BIGINT NOT NULL
);
