//! Reading SQLite rows back into records (the dialect-free mappers are in
//! `store/rows.rs`), and running a list query one page at a time.

use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::crypto::MainKey;
use crate::domain::event_type::EventFilter;
use crate::domain::ids::{AttemptId, DeliveryId, EventId, SiteId, WebhookId};
use crate::domain::models::{Attempt, Delivery, DeliveryState, ErrorKind, Webhook};
use crate::store::filters::push_page;
pub(super) use crate::store::rows::{
    api_key_from_row, corrupt, event_from_row, page_of, parse_id, site_from_row,
};
use crate::store::{Page, PageRequest, StoreResult};

/// Runs a list query (`q` ends inside its `WHERE`), newest first from the cursor, and
/// maps one more row than the page holds to learn whether a next page exists.
pub(super) async fn fetch_page<T>(
    mut q: QueryBuilder<'_, Sqlite>,
    pool: &SqlitePool,
    page: &PageRequest,
    id_col: &str,
    from_row: impl Fn(&SqliteRow) -> StoreResult<T>,
    id: impl Fn(&T) -> String,
) -> StoreResult<Page<T>> {
    push_page(&mut q, page, id_col);
    let rows = q.build().fetch_all(pool).await?;
    let items = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    Ok(page_of(items, page.limit, id))
}

pub(super) fn webhook_from_row(row: &SqliteRow, key: &MainKey) -> StoreResult<Webhook> {
    let filters: String = row.try_get("event_types")?;
    let (secret, old_secrets) = super::secrets::open_secrets(key, row)?;
    Ok(Webhook {
        id: parse_id(row, "id", WebhookId::parse)?,
        site_id: parse_id(row, "site_id", SiteId::parse)?,
        url: row.try_get("url")?,
        event_types: serde_json::from_str::<Vec<EventFilter>>(&filters).map_err(corrupt)?,
        description: row.try_get("description")?,
        enabled: row.try_get("enabled")?,
        disabled_reason: row.try_get("disabled_reason")?,
        paused: row.try_get("paused")?,
        secret,
        old_secrets,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        failing_since: row.try_get("failing_since")?,
    })
}

pub(super) fn delivery_from_row(row: &SqliteRow) -> StoreResult<Delivery> {
    let state: String = row.try_get("state")?;
    let attempts: i64 = row.try_get("attempt_count")?;
    Ok(Delivery {
        id: parse_id(row, "id", DeliveryId::parse)?,
        site_id: parse_id(row, "site_id", SiteId::parse)?,
        event_id: parse_id(row, "event_id", EventId::parse)?,
        webhook_id: parse_id(row, "webhook_id", WebhookId::parse)?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| corrupt(format!("delivery state {state}")))?,
        attempt_count: u32::try_from(attempts).map_err(corrupt)?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn attempt_from_row(row: &SqliteRow) -> StoreResult<Attempt> {
    let number: i64 = row.try_get("attempt_number")?;
    let status: Option<i64> = row.try_get("status_code")?;
    let kind: Option<String> = row.try_get("error_kind")?;
    Ok(Attempt {
        id: parse_id(row, "id", AttemptId::parse)?,
        delivery_id: parse_id(row, "delivery_id", DeliveryId::parse)?,
        webhook_id: parse_id(row, "webhook_id", WebhookId::parse)?,
        attempt_number: u32::try_from(number).map_err(corrupt)?,
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
