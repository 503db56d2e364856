-- Custom headers of each webhook (issue 15, item 3): '{}' when there are none, otherwise
-- their JSON (lowercase name to value) sealed under the main key like the URL
-- (src/store/sealing.rs); sent with every attempt beside the service's own headers and
-- not signed. Validated by the service (src/domain/headers.rs) before it is stored.
ALTER TABLE webhooks ADD COLUMN headers TEXT NOT NULL DEFAULT '{}';

-- The event-type catalog (issue 15, item 4): each site's types, with a description, an
-- optional JSON Schema of `data` (compact JSON, bounded and checked by the service:
-- src/domain/catalog.rs) and an optional example (compact JSON, matching the schema).
CREATE TABLE event_types (
    site_id     TEXT NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    schema      TEXT,
    example     TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (site_id, name)
) STRICT;

-- Strict mode: webhooks only subscribe to, and events only use, catalogued types.
ALTER TABLE sites ADD COLUMN strict_event_types INTEGER NOT NULL DEFAULT 0;
