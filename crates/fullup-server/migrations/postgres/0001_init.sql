-- The PostgreSQL schema: the tables, columns and indexes of the SQLite one
-- (migrations/sqlite), in PostgreSQL's types.
--
-- Times are Unix milliseconds (BIGINT). Ids are prefixed ULIDs (TEXT), compared
-- byte-wise (COLLATE "C") whatever the database's locale, so ORDER BY id is creation
-- order and cursors page as they do on SQLite.
--
-- Webhook secrets are sealed under the main key (src/crypto.rs): the columns hold the
-- bytes of `v1:` + base64(nonce || ciphertext || tag), bound to the webhook id. No
-- PostgreSQL database predates sealing, so there is no plain `secret` column to migrate.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE sites (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    site_id    TEXT COLLATE "C" NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    token_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_site ON api_keys(site_id, id);

CREATE TABLE webhooks (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    site_id            TEXT COLLATE "C" NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    url                TEXT NOT NULL,
    event_types        TEXT NOT NULL, -- JSON array of filters
    description        TEXT NOT NULL,
    enabled            BOOLEAN NOT NULL,
    disabled_reason    TEXT,
    -- A paused webhook still gets deliveries; they wait, unattempted, until it is resumed.
    paused             BOOLEAN NOT NULL DEFAULT FALSE,
    secret_sealed      BYTEA NOT NULL,
    -- The secrets replaced by rotations, as one sealed JSON list
    -- [{"secret", "valid_until"}], newest first; NULL when there are none.
    old_secrets_sealed BYTEA,
    failing_since      BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX webhooks_site ON webhooks(site_id, id);

CREATE TABLE events (
    id              TEXT COLLATE "C" PRIMARY KEY,
    site_id         TEXT COLLATE "C" NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    type            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    idempotency_key TEXT,
    request_hash    BYTEA NOT NULL
);
CREATE INDEX events_site ON events(site_id, id);
-- Also the arbiter of concurrent ingests with one key (INSERT … ON CONFLICT).
CREATE UNIQUE INDEX events_idempotency ON events(site_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    site_id         TEXT COLLATE "C" NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    event_id        TEXT COLLATE "C" NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    webhook_id      TEXT COLLATE "C" NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    state           TEXT NOT NULL,
    attempt_count   INTEGER NOT NULL,
    next_attempt_at BIGINT,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
-- What claim_due scans: pending deliveries only, oldest due first.
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_site ON deliveries(site_id, id);
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_webhook ON deliveries(webhook_id, id);

CREATE TABLE attempts (
    id             TEXT COLLATE "C" PRIMARY KEY,
    delivery_id    TEXT COLLATE "C" NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    webhook_id     TEXT COLLATE "C" NOT NULL,
    attempt_number INTEGER NOT NULL,
    started_at     BIGINT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    status_code    INTEGER,
    error_kind     TEXT,
    error_message  TEXT,
    response_body  TEXT NOT NULL
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, id);
