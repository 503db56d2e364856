-- A webhook's adaptive concurrency limit (domain/health.rs): cut while its receiver times
-- out or refuses connections, grown back one per success; NULL: the configured limit.
ALTER TABLE webhooks ADD COLUMN concurrency_limit INTEGER;
-- Claims count the attempts in flight on every node (live leases) per webhook and site,
-- to keep both within their caps: only leased pending deliveries are in this index.
CREATE INDEX deliveries_leased ON deliveries(lease_until)
    WHERE state = 'pending' AND lease_until IS NOT NULL;
