-- Ordered (FIFO) webhooks (issue 15, item 1). A webhook with ordering 'fifo' numbers
-- its deliveries: ingest takes the next numbers with `next_seq` in its own write
-- transaction (SQLite has one writer, so sequence order is commit order). Deliveries to
-- other webhooks keep seq 0. A claim takes an ordered webhook's head, the pending
-- delivery with the lowest (seq, id), through `deliveries_fifo`, and only while no
-- delivery of that webhook is leased.
ALTER TABLE webhooks ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none';
ALTER TABLE webhooks ADD COLUMN next_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_fifo ON deliveries(webhook_id, seq, id) WHERE state = 'pending';
