//! Reading rows back into records, written once for both databases: the columns have
//! the same names and compatible types in both schemas (counts read as `i32`, times as
//! `i64`, sealed values as bytes, which SQLite's `TEXT` and PostgreSQL's `BYTEA` both
//! give). The mappers are a macro instantiated per row type, [`sqlite`] and
//! [`postgres`], rather than generic functions whose decode bounds would outweigh them.

use super::{Page, StoreError};

/// A stored value that does not read back (corruption or a newer schema).
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A page from `items`, which holds up to one more than `limit` (the query asks for one
/// more to learn whether a next page exists).
pub(crate) fn page_of<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(id)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// A webhook's filters as stored: a JSON array of their text forms.
pub(crate) fn filters_json(filters: &[crate::domain::event_type::EventFilter]) -> String {
    serde_json::to_string(filters).unwrap_or_else(|_| "[]".to_owned())
}

macro_rules! row_mappers {
    ($Row:ty) => {
        use std::time::Duration;

        use sqlx::Row as _;

        use crate::crypto::MainKey;
        use crate::domain::catalog::{EventSchema, EventTypeEntry};
        use crate::domain::event_type::{EventFilter, EventType};
        use crate::domain::health::Health;
        use crate::domain::ids::{ApiKeyId, AttemptId, DeliveryId, EventId, SiteId, WebhookId};
        use crate::domain::models::{
            ApiKey, Attempt, Delivery, DeliveryState, ErrorKind, Event, EventSummary, Scopes, Site,
        };
        use crate::domain::ordering::Ordering;
        use crate::domain::throttle::RateLimit;
        use crate::domain::time::Timestamp;
        use crate::domain::webhook::Webhook;
        use crate::domain::webhook_url::WebhookUrl;
        use crate::store::StoreResult;
        use crate::store::rows::corrupt;
        use crate::store::sealing::{Binding, open_headers, open_secrets, open_url};

        /// A text column parsed with `parse` (ids, URLs, event types).
        pub(crate) fn parsed<T, E: std::fmt::Display>(
            row: &$Row,
            col: &str,
            parse: fn(&str) -> Result<T, E>,
        ) -> StoreResult<T> {
            let text: String = row.try_get(col)?;
            parse(&text).map_err(corrupt)
        }

        /// A count stored as a 32-bit integer.
        pub(crate) fn count(row: &$Row, col: &str) -> StoreResult<u32> {
            let n: i32 = row.try_get(col)?;
            u32::try_from(n).map_err(corrupt)
        }

        fn time(row: &$Row, col: &str) -> StoreResult<Timestamp> {
            Ok(Timestamp::from_unix_ms(row.try_get(col)?))
        }

        fn optional_time(row: &$Row, col: &str) -> StoreResult<Option<Timestamp>> {
            let ms: Option<i64> = row.try_get(col)?;
            Ok(ms.map(Timestamp::from_unix_ms))
        }

        /// A webhook's filters, stored as a JSON array.
        pub(crate) fn filters(row: &$Row, col: &str) -> StoreResult<Vec<EventFilter>> {
            let json: String = row.try_get(col)?;
            serde_json::from_str(&json).map_err(corrupt)
        }

        /// A sealed value: the bytes of `v2:<kid>:` + base64.
        pub(crate) fn sealed(row: &$Row, col: &str) -> StoreResult<Option<String>> {
            let bytes: Option<Vec<u8>> = row.try_get(col)?;
            bytes
                .map(|b| String::from_utf8(b).map_err(corrupt))
                .transpose()
        }

        /// A `sites` row.
        pub(crate) fn site(row: &$Row) -> StoreResult<Site> {
            Ok(Site {
                id: parsed(row, "id", SiteId::parse)?,
                name: row.try_get("name")?,
                strict_event_types: row.try_get("strict_event_types")?,
                retention_days: row
                    .try_get::<Option<i32>, _>("retention_days")?
                    .map(u32::try_from)
                    .transpose()
                    .map_err(corrupt)?,
                created_at: time(row, "created_at")?,
                updated_at: time(row, "updated_at")?,
            })
        }

        /// An `event_types` row.
        pub(crate) fn event_type_entry(row: &$Row) -> StoreResult<EventTypeEntry> {
            Ok(EventTypeEntry {
                site_id: parsed(row, "site_id", SiteId::parse)?,
                name: parsed(row, "name", EventType::parse)?,
                description: row.try_get("description")?,
                schema: row
                    .try_get::<Option<String>, _>("schema")?
                    .map(EventSchema::from_stored),
                example: row.try_get("example")?,
                created_at: time(row, "created_at")?,
                updated_at: time(row, "updated_at")?,
            })
        }

        /// An `api_keys` row.
        pub(crate) fn api_key(row: &$Row) -> StoreResult<ApiKey> {
            let hash: Vec<u8> = row.try_get("token_hash")?;
            Ok(ApiKey {
                id: parsed(row, "id", ApiKeyId::parse)?,
                site_id: parsed(row, "site_id", SiteId::parse)?,
                name: row.try_get("name")?,
                scopes: Scopes::from_text(&row.try_get::<String, _>("scopes")?)
                    .ok_or_else(|| corrupt("unknown API key scope"))?,
                token_hash: hash
                    .try_into()
                    .map_err(|_| corrupt("token hash is not 32 bytes"))?,
                created_at: time(row, "created_at")?,
            })
        }

        /// An `events` row.
        pub(crate) fn event(row: &$Row) -> StoreResult<Event> {
            Ok(Event {
                id: parsed(row, "id", EventId::parse)?,
                site_id: parsed(row, "site_id", SiteId::parse)?,
                event_type: parsed(row, "type", EventType::parse)?,
                payload: row.try_get("payload")?,
                created_at: time(row, "created_at")?,
                idempotency_key: row.try_get("idempotency_key")?,
            })
        }

        /// An `events` row read by [`crate::store::filters::events`]: its columns but
        /// the payload, and the payload's length as `payload_bytes`.
        pub(crate) fn event_summary(row: &$Row) -> StoreResult<EventSummary> {
            Ok(EventSummary {
                id: parsed(row, "id", EventId::parse)?,
                site_id: parsed(row, "site_id", SiteId::parse)?,
                event_type: parsed(row, "type", EventType::parse)?,
                created_at: time(row, "created_at")?,
                idempotency_key: row.try_get("idempotency_key")?,
                payload_bytes: u64::try_from(row.try_get::<i64, _>("payload_bytes")?)
                    .map_err(corrupt)?,
            })
        }

        /// A webhook's health columns.
        pub(crate) fn health(row: &$Row) -> StoreResult<Health> {
            Ok(Health {
                enabled: row.try_get("enabled")?,
                disabled_reason: row.try_get("disabled_reason")?,
                failing_since: optional_time(row, "failing_since")?,
                concurrency: row
                    .try_get::<Option<i32>, _>("concurrency_limit")?
                    .map(u32::try_from)
                    .transpose()
                    .map_err(corrupt)?,
            })
        }

        /// A webhook's `rate_limit_per_second` column.
        pub(crate) fn rate_limit(row: &$Row) -> StoreResult<Option<RateLimit>> {
            row.try_get::<Option<i32>, _>("rate_limit_per_second")?
                .map(|n| RateLimit::new(i64::from(n)).map_err(corrupt))
                .transpose()
        }

        /// What the sealed secrets of a `webhooks` row are bound to.
        pub(crate) fn binding(row: &$Row) -> StoreResult<Binding> {
            Ok(Binding {
                site: parsed(row, "site_id", SiteId::parse)?,
                webhook: parsed(row, "id", WebhookId::parse)?,
                version: row.try_get("secret_version")?,
            })
        }

        /// A `webhooks` row, its secrets opened under `key`: a row whose secrets do not
        /// open (or have no sealed value) reads, with [`Webhook::secrets`] saying why.
        pub(crate) fn webhook(row: &$Row, key: &MainKey) -> StoreResult<Webhook> {
            let binding = binding(row)?;
            let current = sealed(row, "secret_sealed")?;
            let old = sealed(row, "old_secrets_sealed")?;
            let plain_url: String = row.try_get("url")?;
            let url_sealed = sealed(row, "url_sealed")?;
            let url = open_url(
                key,
                binding,
                url_sealed.as_deref(),
                &plain_url,
                current.as_deref(),
            );
            let headers = open_headers(key, binding, &row.try_get::<String, _>("headers")?);
            let secrets = match (&url, &headers) {
                (Ok(_), Ok(_)) => open_secrets(key, binding, current.as_deref(), old.as_deref()),
                (Err(unreadable), _) | (_, Err(unreadable)) => Err(unreadable.clone()),
            };
            Ok(Webhook {
                id: binding.webhook,
                site_id: binding.site,
                url: url.unwrap_or_else(|_| WebhookUrl::unreadable()),
                event_types: filters(row, "event_types")?,
                description: row.try_get("description")?,
                headers: headers.unwrap_or_default(),
                health: health(row)?,
                paused: row.try_get("paused")?,
                rate_limit: rate_limit(row)?,
                ordering: parsed(row, "ordering", Ordering::parse)?,
                secrets,
                created_at: time(row, "created_at")?,
                updated_at: time(row, "updated_at")?,
            })
        }

        /// A `deliveries` row.
        pub(crate) fn delivery(row: &$Row) -> StoreResult<Delivery> {
            let state: String = row.try_get("state")?;
            Ok(Delivery {
                id: parsed(row, "id", DeliveryId::parse)?,
                site_id: parsed(row, "site_id", SiteId::parse)?,
                event_id: parsed(row, "event_id", EventId::parse)?,
                webhook_id: parsed(row, "webhook_id", WebhookId::parse)?,
                webhook_deleted: webhook_deleted(row)?,
                state: DeliveryState::parse(&state)
                    .ok_or_else(|| corrupt(format!("delivery state {state}")))?,
                // The stored count includes the attempt in flight (marked by
                // `attempt_started_at`); the delivery shows the attempts logged.
                attempt_count: count(row, "attempt_count")?.saturating_sub(u32::from(
                    optional_time(row, "attempt_started_at")?.is_some(),
                )),
                next_attempt_at: optional_time(row, "next_attempt_at")?,
                created_at: time(row, "created_at")?,
                updated_at: time(row, "updated_at")?,
            })
        }

        /// The `webhook_deleted` column of the delivery reads
        /// ([`crate::store::filters::DELIVERY_COLUMNS`]); false where a statement
        /// returns the bare row (a retry's `RETURNING *`), whose webhook is live.
        fn webhook_deleted(row: &$Row) -> StoreResult<bool> {
            match row.try_get::<bool, _>("webhook_deleted") {
                Ok(deleted) => Ok(deleted),
                Err(sqlx::Error::ColumnNotFound(_)) => Ok(false),
                Err(err) => Err(err.into()),
            }
        }

        /// An `attempts` row.
        pub(crate) fn attempt(row: &$Row) -> StoreResult<Attempt> {
            let status: Option<i32> = row.try_get("status_code")?;
            let kind: Option<String> = row.try_get("error_kind")?;
            let duration: i64 = row.try_get("duration_ms")?;
            Ok(Attempt {
                id: parsed(row, "id", AttemptId::parse)?,
                delivery_id: parsed(row, "delivery_id", DeliveryId::parse)?,
                webhook_id: parsed(row, "webhook_id", WebhookId::parse)?,
                attempt_number: count(row, "attempt_number")?,
                started_at: time(row, "started_at")?,
                duration: Duration::from_millis(u64::try_from(duration).map_err(corrupt)?),
                status_code: status.map(u16::try_from).transpose().map_err(corrupt)?,
                error_kind: kind
                    .map(|k| ErrorKind::parse(&k).ok_or_else(|| corrupt(format!("error kind {k}"))))
                    .transpose()?,
                error_message: row.try_get("error_message")?,
                response_body: row.try_get("response_body")?,
                request_headers: row.try_get("request_headers")?,
                response_headers: row.try_get("response_headers")?,
            })
        }
    };
}

/// The mappers over SQLite rows.
pub(crate) mod sqlite {
    row_mappers!(sqlx::sqlite::SqliteRow);
}

/// The mappers over PostgreSQL rows.
pub(crate) mod postgres {
    row_mappers!(sqlx::postgres::PgRow);
}
