-- Retention (issue 15, item 5); the same changes as SQLite's 0013_retention.
--
-- A deleted webhook is kept, marked, while it has deliveries, so its delivery history
-- stays readable until retention prunes it: `deleted_at` (Unix ms) is set by the
-- delete, which also disables the webhook and cancels its pending deliveries; every
-- listing, match, claim and limit leaves such a row out. The row itself goes once its
-- last delivery is pruned (or at once, when it had none).
ALTER TABLE webhooks ADD COLUMN deleted_at BIGINT;

-- Each site may keep its events, deliveries and attempts for a number of days of its
-- own; NULL: the server's `--retention` (which may be off: kept forever).
ALTER TABLE sites ADD COLUMN retention_days INTEGER;
