-- Claims read each eligible webhook's due deliveries from its own index range, so the
-- backlog of a paused, disabled or saturated webhook is never scanned. The global due
-- index served the old claim query only.
CREATE INDEX deliveries_due_webhook ON deliveries(webhook_id, next_attempt_at)
    WHERE state = 'pending';
DROP INDEX deliveries_due;
