-- Times are Unix milliseconds. Ids are prefixed ULIDs, so ORDER BY id is creation order.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

CREATE TABLE sites (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    site_id    TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    token_hash BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX api_keys_site ON api_keys(site_id, id);

CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    site_id         TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    event_types     TEXT NOT NULL, -- JSON array of filters
    description     TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    disabled_reason TEXT,
    secret          TEXT NOT NULL,
    failing_since   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX webhooks_site ON webhooks(site_id, id);

CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    site_id         TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    idempotency_key TEXT,
    request_hash    BLOB NOT NULL
) STRICT;
CREATE INDEX events_site ON events(site_id, id);
CREATE UNIQUE INDEX events_idempotency ON events(site_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    site_id         TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    state           TEXT NOT NULL,
    attempt_count   INTEGER NOT NULL,
    next_attempt_at INTEGER,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_site ON deliveries(site_id, id);
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_webhook ON deliveries(webhook_id, id);

CREATE TABLE attempts (
    id             TEXT PRIMARY KEY,
    delivery_id    TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    webhook_id     TEXT NOT NULL,
    attempt_number INTEGER NOT NULL,
    started_at     INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    status_code    INTEGER,
    error_kind     TEXT,
    error_message  TEXT,
    response_body  TEXT NOT NULL
) STRICT;
CREATE INDEX attempts_delivery ON attempts(delivery_id, id);
