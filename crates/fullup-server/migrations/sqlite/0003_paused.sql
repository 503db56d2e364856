-- A paused webhook still gets deliveries; they wait, unattempted, until it is resumed.
ALTER TABLE webhooks ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
