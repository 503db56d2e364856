-- Claims read each eligible webhook's due deliveries from its own index range (at most
-- its concurrency limit of them), so the backlog of a paused, disabled or saturated
-- webhook is never scanned, as on SQLite. The global due index served the old claim.
CREATE INDEX deliveries_due_webhook ON deliveries(webhook_id, next_attempt_at)
    WHERE state = 'pending';
DROP INDEX deliveries_due;
