//! Reading PostgreSQL rows back into records, and the one way list queries page.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::crypto::MainKey;
use crate::domain::event_type::EventFilter;
use crate::domain::ids::{ApiKeyId, AttemptId, DeliveryId, EventId, SiteId, WebhookId};
use crate::domain::models::{
    ApiKey, Attempt, Delivery, DeliveryState, ErrorKind, Event, Site, Webhook,
};
use crate::store::sealing::{open_old_secrets, open_secret};
use crate::store::{Page, PageRequest, StoreError, StoreResult};

/// Runs a list query (`q` ends inside its `WHERE`), newest first from the cursor, and
/// maps one more row than the page holds to learn whether a next page exists.
pub(super) async fn fetch_page<T>(
    mut q: QueryBuilder<'_, Postgres>,
    pool: &PgPool,
    page: &PageRequest,
    id_col: &str,
    from_row: impl Fn(&PgRow) -> StoreResult<T>,
    id: impl Fn(&T) -> String,
) -> StoreResult<Page<T>> {
    if let Some(before) = &page.before {
        q.push(format!(" AND {id_col} < "))
            .push_bind(before.clone());
    }
    q.push(format!(" ORDER BY {id_col} DESC LIMIT "))
        .push_bind(i64::from(page.limit) + 1);
    let rows = q.build().fetch_all(pool).await?;
    let mut items = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(id)
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

pub(super) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(super) fn parse_id<T, E: std::fmt::Display>(
    row: &PgRow,
    col: &str,
    parse: fn(&str) -> Result<T, E>,
) -> StoreResult<T> {
    let text: String = row.try_get(col)?;
    parse(&text).map_err(corrupt)
}

/// A count stored as `INTEGER`.
pub(super) fn count(row: &PgRow, col: &str) -> StoreResult<u32> {
    let n: i32 = row.try_get(col)?;
    u32::try_from(n).map_err(corrupt)
}

/// A sealed value stored as `BYTEA` (the bytes of the sealed text).
fn sealed(bytes: Vec<u8>) -> StoreResult<String> {
    String::from_utf8(bytes).map_err(corrupt)
}

pub(super) fn site_from_row(row: &PgRow) -> StoreResult<Site> {
    Ok(Site {
        id: parse_id(row, "id", SiteId::parse)?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn api_key_from_row(row: &PgRow) -> StoreResult<ApiKey> {
    let hash: Vec<u8> = row.try_get("token_hash")?;
    Ok(ApiKey {
        id: parse_id(row, "id", ApiKeyId::parse)?,
        site_id: parse_id(row, "site_id", SiteId::parse)?,
        name: row.try_get("name")?,
        token_hash: hash
            .try_into()
            .map_err(|_| corrupt("token hash is not 32 bytes"))?,
        created_at: row.try_get("created_at")?,
    })
}

/// A webhook row, its secrets opened under `key`.
pub(super) fn webhook_from_row(row: &PgRow, key: &MainKey) -> StoreResult<Webhook> {
    let id: String = row.try_get("id")?;
    let filters: String = row.try_get("event_types")?;
    let current = sealed(row.try_get("secret_sealed")?)?;
    let old = row
        .try_get::<Option<Vec<u8>>, _>("old_secrets_sealed")?
        .map(sealed)
        .transpose()?;
    Ok(Webhook {
        id: WebhookId::parse(&id).map_err(corrupt)?,
        site_id: parse_id(row, "site_id", SiteId::parse)?,
        url: row.try_get("url")?,
        event_types: serde_json::from_str::<Vec<EventFilter>>(&filters).map_err(corrupt)?,
        description: row.try_get("description")?,
        enabled: row.try_get("enabled")?,
        disabled_reason: row.try_get("disabled_reason")?,
        paused: row.try_get("paused")?,
        secret: open_secret(key, &id, &current)?,
        old_secrets: open_old_secrets(key, &id, old.as_deref())?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        failing_since: row.try_get("failing_since")?,
    })
}

pub(super) fn event_from_row(row: &PgRow) -> StoreResult<Event> {
    Ok(Event {
        id: parse_id(row, "id", EventId::parse)?,
        site_id: parse_id(row, "site_id", SiteId::parse)?,
        event_type: row.try_get("type")?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
        idempotency_key: row.try_get("idempotency_key")?,
    })
}

pub(super) fn delivery_from_row(row: &PgRow) -> StoreResult<Delivery> {
    let state: String = row.try_get("state")?;
    Ok(Delivery {
        id: parse_id(row, "id", DeliveryId::parse)?,
        site_id: parse_id(row, "site_id", SiteId::parse)?,
        event_id: parse_id(row, "event_id", EventId::parse)?,
        webhook_id: parse_id(row, "webhook_id", WebhookId::parse)?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| corrupt(format!("delivery state {state}")))?,
        attempt_count: count(row, "attempt_count")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn attempt_from_row(row: &PgRow) -> StoreResult<Attempt> {
    let status: Option<i32> = row.try_get("status_code")?;
    let kind: Option<String> = row.try_get("error_kind")?;
    Ok(Attempt {
        id: parse_id(row, "id", AttemptId::parse)?,
        delivery_id: parse_id(row, "delivery_id", DeliveryId::parse)?,
        webhook_id: parse_id(row, "webhook_id", WebhookId::parse)?,
        attempt_number: count(row, "attempt_number")?,
        started_at: row.try_get("started_at")?,
        duration_ms: row.try_get("duration_ms")?,
        status_code: status.map(u16::try_from).transpose().map_err(corrupt)?,
        error_kind: kind
            .map(|k| ErrorKind::parse(&k).ok_or_else(|| corrupt(format!("error kind {k}"))))
            .transpose()?,
        error_message: row.try_get("error_message")?,
        response_body: row.try_get("response_body")?,
    })
}

pub(super) fn filters_json(filters: &[EventFilter]) -> String {
    serde_json::to_string(filters).unwrap_or_else(|_| "[]".to_owned())
}
