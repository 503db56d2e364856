//! Reading PostgreSQL rows back into records (the dialect-free mappers are in
//! `store/rows.rs`), and running a list query one page at a time.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use crate::crypto::MainKey;
use crate::domain::event_type::EventFilter;
use crate::domain::ids::{AttemptId, DeliveryId, EventId, SiteId, WebhookId};
use crate::domain::models::{Attempt, Delivery, DeliveryState, ErrorKind, Webhook};
use crate::store::filters::push_page;
pub(super) use crate::store::rows::{
    api_key_from_row, corrupt, event_from_row, page_of, parse_id, site_from_row,
};
use crate::store::sealing::{open_old_secrets, open_secret};
use crate::store::{Page, PageRequest, StoreResult};

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
    push_page(&mut q, page, id_col);
    let rows = q.build().fetch_all(pool).await?;
    let items = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    Ok(page_of(items, page.limit, id))
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
