-- Custom headers of each webhook (issue 15, item 3); the same column as SQLite's
-- 0008_headers_and_event_types: '{}' when there are none, otherwise their JSON
-- (lowercase name to value) sealed under the main key like the URL
-- (src/store/sealing.rs); sent with every attempt beside the service's own headers and
-- not signed.
ALTER TABLE webhooks ADD COLUMN headers TEXT NOT NULL DEFAULT '{}';

-- The event-type catalog (issue 15, item 4); the same table as SQLite's: each site's
-- types, with a description, an optional JSON Schema of `data` and an optional example
-- (compact JSON, bounded and checked by the service: src/domain/catalog.rs).
CREATE TABLE event_types (
    site_id     TEXT COLLATE "C" NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    schema      TEXT,
    example     TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (site_id, name)
);

-- Strict mode: webhooks only subscribe to, and events only use, catalogued types.
ALTER TABLE sites ADD COLUMN strict_event_types BOOLEAN NOT NULL DEFAULT FALSE;
