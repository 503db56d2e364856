-- Ordered (FIFO) webhooks (issue 15, item 1). A webhook with ordering 'fifo' numbers
-- its deliveries: ingest takes the next numbers with `next_seq`, under the webhook
-- row's lock held until the ingest commits, so sequence order is commit order on every
-- node. Deliveries to other webhooks keep seq 0 (adding a column with a constant
-- default rewrites no table). A claim takes an ordered webhook's head, the queue row
-- with the lowest (seq, delivery_id), through `queue_fifo`, and only while no delivery
-- of that webhook is leased.
ALTER TABLE webhooks ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none';
ALTER TABLE webhooks ADD COLUMN next_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE queue ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX queue_fifo ON queue(webhook_id, seq, delivery_id);
