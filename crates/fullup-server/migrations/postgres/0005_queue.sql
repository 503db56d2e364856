-- The due deliveries move to a narrow queue of their own: one row per pending delivery,
-- deleted when it succeeds or fails for good. Claims read each webhook's due rows from
-- `queue_due` instead of the partial index on `deliveries`, and no index of `deliveries`
-- holds a column an attempt changes any more, so recording an attempt is a HOT update of
-- the delivery row (no index entry written, the old version pruned within its page)
-- rather than a new entry in each of the table's indexes. The churn (a row in, a row out
-- per delivery) stays in a table the size of the backlog, which autovacuum keeps clean.
CREATE TABLE queue (
    delivery_id TEXT COLLATE "C" PRIMARY KEY REFERENCES deliveries(id) ON DELETE CASCADE,
    webhook_id  TEXT COLLATE "C" NOT NULL,
    due_at      BIGINT NOT NULL
);
CREATE INDEX queue_due ON queue(webhook_id, due_at);
INSERT INTO queue (delivery_id, webhook_id, due_at)
    SELECT id, webhook_id, COALESCE(next_attempt_at, updated_at) FROM deliveries
    WHERE state = 'pending';
DROP INDEX deliveries_due_webhook;
-- Room in each page for the new version of an attempt's update (HOT).
ALTER TABLE deliveries SET (fillfactor = 85);
-- The two churning tables are vacuumed after 5,000 dead rows plus 5 % of the table, not
-- after a fifth of it (the default), so claims do not wade through dead index entries,
-- while a large backlog is not rescanned every few seconds.
ALTER TABLE queue SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_threshold = 5000);
ALTER TABLE leases SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_threshold = 5000);
