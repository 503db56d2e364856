-- The console (src/console/).
--
-- Portal links: each holds a one-time token, kept only as its SHA-256, that opens a
-- console session scoped to one site. Taking a token deletes its row, so of several
-- nodes (or tabs) presenting the same token only one succeeds.
CREATE TABLE portal_tokens (
    token_hash BLOB PRIMARY KEY,
    site_id    TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX portal_tokens_expiry ON portal_tokens(expires_at);

-- A webhook's attempts by time: its success ratio over the last 24 h reads only those.
CREATE INDEX attempts_webhook ON attempts(webhook_id, started_at);

-- The headers of each attempt, for the console's delivery page: those sent (signatures
-- and metadata; never a secret) and the receiver's answer's, as `name: value` lines,
-- each list at most 4 KiB. Attempts recorded before this migration have none.
ALTER TABLE attempts ADD COLUMN request_headers TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN response_headers TEXT NOT NULL DEFAULT '';
