//! The write statements both databases run as they are, written once. Placeholders are
//! `$1`, `$2`, … in order of first use: PostgreSQL numbers them so, and SQLite, which
//! reads `$1` as a named parameter, numbers names in order of first appearance, so the
//! same positional arguments bind on both.

/// Stores a setting unless one is stored: `$1` key, `$2` value.
pub(crate) const ADD_SETTING: &str =
    "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
/// `$1` key, `$2` value: stores the setting, replacing any value.
pub(crate) const PUT_SETTING: &str = "INSERT INTO settings (key, value) VALUES ($1, $2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// `$1` id, `$2` name, `$3` created, `$4` updated, `$5` retention days.
pub(crate) const INSERT_SITE: &str = "INSERT INTO sites (id, name, created_at, updated_at, retention_days) \
     VALUES ($1, $2, $3, $4, $5)";
/// `$1` retention days (NULL: the server's), `$2` updated, `$3` id.
pub(crate) const SET_SITE_RETENTION: &str =
    "UPDATE sites SET retention_days = $1, updated_at = $2 WHERE id = $3";
/// `$1` name, `$2` updated, `$3` id.
pub(crate) const RENAME_SITE: &str = "UPDATE sites SET name = $1, updated_at = $2 WHERE id = $3";
/// `$1` strict, `$2` updated, `$3` id.
pub(crate) const SET_STRICT_EVENT_TYPES: &str =
    "UPDATE sites SET strict_event_types = $1, updated_at = $2 WHERE id = $3";
/// `$1` id; everything the site owns goes with it (`ON DELETE CASCADE`).
pub(crate) const DELETE_SITE: &str = "DELETE FROM sites WHERE id = $1";

/// `$1` id, `$2` site, `$3` name, `$4` token hash, `$5` created, `$6` scopes.
pub(crate) const INSERT_API_KEY: &str = "INSERT INTO api_keys (id, site_id, name, token_hash, created_at, scopes) \
     VALUES ($1, $2, $3, $4, $5, $6)";
/// `$1` id, `$2` site.
pub(crate) const DELETE_API_KEY: &str = "DELETE FROM api_keys WHERE id = $1 AND site_id = $2";

/// The columns of a webhook but its secrets and creation time, in the order of the
/// first fourteen parameters of [`UPDATE_WEBHOOK`] and of each store's insert.
pub(crate) const WEBHOOK_COLUMNS: &str = "url_sealed, event_types, description, enabled, disabled_reason, \
     paused, failing_since, concurrency_limit, updated_at, headers, rate_limit_per_second, ordering, id, site_id";

/// Everything of a webhook but its secrets: `$1` sealed url (the plain `url` of earlier
/// versions is emptied), `$2` filters, `$3` description,
/// `$4` enabled, `$5` disabled reason, `$6` paused, `$7` failing since, `$8`
/// concurrency limit, `$9` updated, `$10` custom headers (JSON), `$11` rate limit per
/// second (NULL: none), `$12` ordering, `$13` id, `$14` site. (SQLite numbers `$N`
/// placeholders in the order they first appear: they appear here in their numbers'
/// order.) A deleted webhook (`deleted_at` set) is not updated.
pub(crate) const UPDATE_WEBHOOK: &str = "UPDATE webhooks SET url_sealed = $1, url = '', event_types = $2, description = $3, \
     enabled = $4, disabled_reason = $5, paused = $6, failing_since = $7, concurrency_limit = $8, \
     updated_at = $9, headers = $10, rate_limit_per_second = $11, ordering = $12 WHERE id = $13 AND site_id = $14 AND deleted_at IS NULL";

/// Catalogues an event type or replaces it, keeping its creation time: `$1` site, `$2`
/// name, `$3` description, `$4` schema, `$5` example, `$6` created, `$7` updated.
pub(crate) const PUT_EVENT_TYPE: &str = "INSERT INTO event_types \
     (site_id, name, description, schema, example, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (site_id, name) DO UPDATE SET \
     description = excluded.description, schema = excluded.schema, \
     example = excluded.example, updated_at = excluded.updated_at";
/// `$1` site, `$2` name.
pub(crate) const DELETE_EVENT_TYPE: &str =
    "DELETE FROM event_types WHERE site_id = $1 AND name = $2";

/// The earlier event holding an idempotency key: `$1` site, `$2` key.
pub(crate) const EVENT_BY_IDEMPOTENCY_KEY: &str =
    "SELECT id, request_hash FROM events WHERE site_id = $1 AND idempotency_key = $2";

/// A webhook's site and health: `$1` id. None for a deleted webhook: an attempt
/// recorded after the delete changes no health and tells nothing.
pub(crate) const READ_HEALTH: &str = "SELECT site_id, enabled, disabled_reason, failing_since, \
     concurrency_limit FROM webhooks WHERE id = $1 AND deleted_at IS NULL";
/// Writes a webhook's health if it is still the one read (compare and swap): `$1`
/// enabled, `$2` reason, `$3` failing since, `$4` concurrency limit, `$5` updated (NULL:
/// unchanged), `$6` id, then the values read: `$7` enabled, `$8` reason, `$9` failing
/// since, `$10` concurrency limit.
pub(crate) const WRITE_HEALTH: &str = "UPDATE webhooks SET enabled = $1, disabled_reason = $2, \
     failing_since = $3, concurrency_limit = $4, updated_at = COALESCE($5, updated_at) \
     WHERE id = $6 AND enabled = $7 AND disabled_reason IS NOT DISTINCT FROM $8 \
     AND failing_since IS NOT DISTINCT FROM $9 AND concurrency_limit IS NOT DISTINCT FROM $10";

/// Pending deliveries (SQLite), counted from the pending part of the
/// `deliveries_due_webhook` index; PostgreSQL counts its queue (`store/postgres.rs`).
pub(crate) const COUNT_PENDING: &str = "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'";
/// The earliest `next_attempt_at` of a pending delivery of an enabled, unpaused webhook
/// (SQLite): one probe of each such webhook's range of `deliveries_due_webhook`, never a
/// scan of the backlog.
pub(crate) const OLDEST_DUE: &str = "SELECT MIN((SELECT MIN(d.next_attempt_at) FROM deliveries d \
     WHERE d.webhook_id = w.id AND d.state = 'pending')) \
     FROM webhooks w WHERE w.enabled = TRUE AND w.paused = FALSE";
/// Webhooks per (enabled, paused).
pub(crate) const COUNT_WEBHOOKS_BY_STATE: &str = "SELECT enabled, paused, COUNT(*) FROM webhooks WHERE deleted_at IS NULL GROUP BY enabled, paused";

/// `$1` token hash, `$2` site, `$3` expiry.
pub(crate) const INSERT_PORTAL_TOKEN: &str =
    "INSERT INTO portal_tokens (token_hash, site_id, expires_at) VALUES ($1, $2, $3)";
/// `$1` now: drops the portal tokens that can no longer be taken.
pub(crate) const DELETE_EXPIRED_PORTAL_TOKENS: &str =
    "DELETE FROM portal_tokens WHERE expires_at <= $1";
/// `$1` token hash: the site a portal token opens.
pub(crate) const PORTAL_TOKEN_SITE: &str =
    "SELECT site_id FROM portal_tokens WHERE token_hash = $1";
/// `$1` token hash, `$2` now: takes a portal token; one row deleted means this caller
/// took it, none that it expired or someone else did.
pub(crate) const TAKE_PORTAL_TOKEN: &str =
    "DELETE FROM portal_tokens WHERE token_hash = $1 AND expires_at > $2";

/// An attempt's log row: `$1` id, `$2` delivery, `$3` webhook, `$4` number, `$5` started,
/// `$6` duration (ms), `$7` status, `$8` error kind, `$9` error message, `$10` response
/// body, `$11` request headers, `$12` response headers.
pub(crate) const INSERT_ATTEMPT: &str = "INSERT INTO attempts (id, delivery_id, webhook_id, attempt_number, \
     started_at, duration_ms, status_code, error_kind, error_message, response_body, \
     request_headers, response_headers) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// A webhook's pending deliveries, cancelled by its deletion (those with an attempt in
/// flight too: that attempt's outcome is logged, and a retry it asks for is not made):
/// `$1` updated, `$2` webhook, `$3` site.
pub(crate) const CANCEL_PENDING: &str = "UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, \
     updated_at = $1 WHERE webhook_id = $2 AND site_id = $3 AND state = 'pending'";
/// Marks a webhook deleted and disabled, so no match, claim or hand-off takes it again:
/// `$1` deleted at, `$2` id, `$3` site.
pub(crate) const MARK_WEBHOOK_DELETED: &str = "UPDATE webhooks SET deleted_at = $1, updated_at = $1, \
     enabled = FALSE, disabled_reason = 'deleted' WHERE id = $2 AND site_id = $3 AND deleted_at IS NULL";
/// Removes the rows of a site's deleted webhooks that no delivery names any more (at
/// once when they had none; otherwise once retention pruned the last): `$1` site.
pub(crate) const DROP_DELETED_WEBHOOKS: &str = "DELETE FROM webhooks WHERE site_id = $1 \
     AND deleted_at IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = webhooks.id)";

/// The next events a prune looks at: a site's, in id order, after a cursor and below
/// the retention's bound: `$1` site, `$2` after (exclusive; '' from the start), `$3`
/// below, `$4` how many. One range of the `events_site` index.
pub(crate) const PRUNE_CANDIDATES: &str = "SELECT id FROM events WHERE site_id = $1 AND id > $2 \
     AND id < $3 ORDER BY id LIMIT $4";
/// What keeps an event from being pruned: a delivery not finished (pending, or with
/// an attempt in flight). Each store applies it to the candidates' ids.
pub(crate) const UNFINISHED: &str = "(state = 'pending' OR attempt_started_at IS NOT NULL)";
