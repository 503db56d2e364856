-- A webhook's adaptive concurrency limit (domain/health.rs): cut while its receiver times
-- out or refuses connections, grown back one per success; NULL: the configured limit.
ALTER TABLE webhooks ADD COLUMN concurrency_limit INTEGER;
