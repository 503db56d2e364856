-- Attempt bookkeeping (issue #17, item 9): attempt_count now counts the attempts
-- started, the one in flight included, and is raised when a delivery is leased (by a
-- claim, or by the ingest that hands it over); attempt_started_at is the start of the
-- attempt in flight, cleared when its outcome is recorded. A delivery leased again
-- while it is set had an attempt whose outcome was lost (a crash, a shutdown past its
-- timeout, a record lost with the database): that attempt is recorded as
-- `interrupted`. Neither column is indexed, so setting them is a HOT update.
ALTER TABLE deliveries ADD COLUMN attempt_started_at BIGINT;
