-- Leases move out of `deliveries` into a narrow table of their own. A claim used to
-- update the wide delivery row, which in PostgreSQL writes a new row version and an entry
-- in each of the table's indexes; now it inserts one small row here (or renews an expired
-- one), and the attempt's completion deletes it. The delivery row is written twice in its
-- life (created, then completed) instead of three times.
--
-- The primary key is also the arbiter between nodes: a claim inserts with ON CONFLICT DO
-- UPDATE ... WHERE the lease has ended, which PostgreSQL checks against the latest
-- committed row, so two nodes can never both lease one delivery.
CREATE TABLE leases (
    delivery_id TEXT COLLATE "C" PRIMARY KEY REFERENCES deliveries(id) ON DELETE CASCADE,
    webhook_id  TEXT COLLATE "C" NOT NULL,
    site_id     TEXT COLLATE "C" NOT NULL,
    until       BIGINT NOT NULL
);
INSERT INTO leases (delivery_id, webhook_id, site_id, until)
    SELECT id, webhook_id, site_id, lease_until FROM deliveries
    WHERE state = 'pending' AND lease_until IS NOT NULL;
-- Drops the deliveries_leased index with it.
ALTER TABLE deliveries DROP COLUMN lease_until;
