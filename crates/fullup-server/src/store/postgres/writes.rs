//! The writes several nodes race on: ingest (idempotency keys), claiming due
//! deliveries (leases) and recording attempts. Each is one transaction or one statement,
//! so a node that dies between two of them leaves nothing half-written.

use sqlx::Row as _;
use sqlx::postgres::{PgConnection, PgPool};

use super::rows::{corrupt, count, parse_id, webhook_from_row};
use crate::crypto::MainKey;
use crate::domain::event_type::{EventFilter, any_matches};
use crate::domain::ids::{DeliveryId, EventId, WebhookId};
use crate::domain::models::{DeliveryState, ErrorKind};
use crate::store::{
    ClaimedDelivery, Completion, IngestOutcome, NewEvent, NextStep, StoreError, StoreResult,
    WebhookEffect,
};

/// Stores an event and its deliveries in one transaction.
///
/// The idempotency key is claimed by the insert itself (`ON CONFLICT DO NOTHING` on the
/// unique index): of two concurrent requests with one key, on any nodes, the second
/// waits for the first to commit and then finds its event, so exactly one is Created.
pub(super) async fn ingest(pool: &PgPool, new: &NewEvent) -> StoreResult<IngestOutcome> {
    let event = &new.event;
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO events (id, site_id, type, payload, created_at, idempotency_key, request_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (site_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
    )
    .bind(event.id.to_string())
    .bind(event.site_id.to_string())
    .bind(&event.event_type)
    .bind(&event.payload)
    .bind(event.created_at)
    .bind(&event.idempotency_key)
    .bind(&new.request_hash[..])
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        let outcome = earlier_event(&mut tx, new).await?;
        tx.rollback().await?;
        return Ok(outcome);
    }
    let deliveries = insert_deliveries(&mut tx, new).await?;
    tx.commit().await?;
    Ok(IngestOutcome::Created {
        event_id: event.id,
        deliveries,
    })
}

/// The event that holds `new`'s idempotency key.
async fn earlier_event(tx: &mut PgConnection, new: &NewEvent) -> StoreResult<IngestOutcome> {
    let event = &new.event;
    let key = event
        .idempotency_key
        .as_deref()
        .ok_or_else(|| StoreError::WriteFailed("the event was not stored".into()))?;
    let row = sqlx::query(
        "SELECT id, request_hash FROM events WHERE site_id = $1 AND idempotency_key = $2",
    )
    .bind(event.site_id.to_string())
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    let hash: Vec<u8> = row.try_get("request_hash")?;
    Ok(IngestOutcome::Duplicate {
        event_id: parse_id(&row, "id", EventId::parse)?,
        same_request: hash == new.request_hash,
    })
}

/// One delivery per enabled webhook of the site that wants the event, in one statement.
async fn insert_deliveries(tx: &mut PgConnection, new: &NewEvent) -> StoreResult<u32> {
    let event = &new.event;
    let rows = sqlx::query("SELECT id, event_types FROM webhooks WHERE site_id = $1 AND enabled")
        .bind(event.site_id.to_string())
        .fetch_all(&mut *tx)
        .await?;
    let mut webhooks = Vec::new();
    for row in &rows {
        let id = parse_id(row, "id", WebhookId::parse)?;
        let wanted = match new.only_webhook {
            Some(only) => only == id,
            None => {
                let filters: String = row.try_get("event_types")?;
                let filters: Vec<EventFilter> = serde_json::from_str(&filters).map_err(corrupt)?;
                any_matches(&filters, &event.event_type)
            }
        };
        if wanted {
            webhooks.push(id.to_string());
        }
    }
    if webhooks.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = webhooks
        .iter()
        .map(|_| DeliveryId::new(event.created_at).to_string())
        .collect();
    sqlx::query(
        "INSERT INTO deliveries (id, site_id, event_id, webhook_id, state, attempt_count, next_attempt_at, lease_until, created_at, updated_at) \
         SELECT d, $3, $4, w, 'pending', 0, $5, NULL, $5, $5 FROM UNNEST($1::text[], $2::text[]) AS t(d, w)",
    )
    .bind(&ids)
    .bind(&webhooks)
    .bind(event.site_id.to_string())
    .bind(event.id.to_string())
    .bind(event.created_at)
    .execute(&mut *tx)
    .await?;
    u32::try_from(webhooks.len()).map_err(corrupt)
}

/// Leases due deliveries in one statement. `FOR NO KEY UPDATE SKIP LOCKED`: rows another
/// node is claiming at this moment are skipped, not waited for, and a row whose lease
/// another node committed after this statement's snapshot is re-checked against the
/// lease condition before it is taken. Two nodes therefore never lease one delivery.
pub(super) async fn claim_due(
    pool: &PgPool,
    key: &MainKey,
    now: i64,
    lease_until: i64,
    limit: u32,
    skip: &[WebhookId],
) -> StoreResult<Vec<ClaimedDelivery>> {
    let skip: Vec<String> = skip.iter().map(ToString::to_string).collect();
    let rows = sqlx::query(
        "WITH due AS ( \
             SELECT d.id FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $2 \
               AND (d.lease_until IS NULL OR d.lease_until <= $2) \
               AND w.enabled AND NOT w.paused AND d.webhook_id <> ALL($3::text[]) \
             ORDER BY d.next_attempt_at LIMIT $4 \
             FOR NO KEY UPDATE OF d SKIP LOCKED), \
         claimed AS ( \
             UPDATE deliveries d SET lease_until = $1 FROM due WHERE d.id = due.id \
             RETURNING d.id, d.attempt_count, d.event_id, d.webhook_id, d.next_attempt_at) \
         SELECT c.id AS delivery_id, c.attempt_count, e.id AS event_id, e.type AS event_type, e.payload, w.* \
         FROM claimed c JOIN events e ON e.id = c.event_id JOIN webhooks w ON w.id = c.webhook_id \
         ORDER BY c.next_attempt_at",
    )
    .bind(lease_until)
    .bind(now)
    .bind(&skip)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ClaimedDelivery {
                delivery_id: parse_id(row, "delivery_id", DeliveryId::parse)?,
                attempt_count: count(row, "attempt_count")?,
                event_id: parse_id(row, "event_id", EventId::parse)?,
                event_type: row.try_get("event_type")?,
                payload: row.try_get("payload")?,
                webhook: webhook_from_row(row, key)?,
            })
        })
        .collect()
}

/// Records one attempt and its consequences in one transaction.
pub(super) async fn complete(pool: &PgPool, c: &Completion, now: i64) -> StoreResult<()> {
    let a = &c.attempt;
    let number = i32::try_from(a.attempt_number).map_err(corrupt)?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, webhook_id, attempt_number, started_at, duration_ms, status_code, error_kind, error_message, response_body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(a.id.to_string())
    .bind(a.delivery_id.to_string())
    .bind(a.webhook_id.to_string())
    .bind(number)
    .bind(a.started_at)
    .bind(a.duration_ms)
    .bind(a.status_code.map(i32::from))
    .bind(a.error_kind.map(ErrorKind::as_str))
    .bind(&a.error_message)
    .bind(&a.response_body)
    .execute(&mut *tx)
    .await?;
    let (state, next_at) = match c.next {
        NextStep::Succeeded => (DeliveryState::Succeeded, None),
        NextStep::RetryAt(at) => (DeliveryState::Pending, Some(at)),
        NextStep::Failed => (DeliveryState::Failed, None),
    };
    sqlx::query(
        "UPDATE deliveries SET state = $1, attempt_count = $2, next_attempt_at = $3, lease_until = NULL, updated_at = $4 WHERE id = $5",
    )
    .bind(state.as_str())
    .bind(number)
    .bind(next_at)
    .bind(now)
    .bind(a.delivery_id.to_string())
    .execute(&mut *tx)
    .await?;
    apply_webhook_effect(&mut tx, c, now).await?;
    tx.commit().await?;
    Ok(())
}

async fn apply_webhook_effect(tx: &mut PgConnection, c: &Completion, now: i64) -> StoreResult<()> {
    let webhook = c.attempt.webhook_id.to_string();
    match &c.webhook {
        WebhookEffect::Healthy => {
            // A success ends the failing streak only if it started after the streak
            // did: a slow success recorded late must not hide failures since.
            sqlx::query(
                "UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since <= $2",
            )
            .bind(&webhook)
            .bind(c.attempt.started_at)
            .execute(&mut *tx)
            .await?;
        }
        WebhookEffect::Failing {
            disable_if_failing_since,
        } => {
            sqlx::query(
                "UPDATE webhooks SET failing_since = COALESCE(failing_since, $1) WHERE id = $2",
            )
            .bind(c.attempt.started_at)
            .bind(&webhook)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE webhooks SET enabled = FALSE, updated_at = $1, disabled_reason = 'every attempt failed since ' || \
                 to_char(to_timestamp(failing_since / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                 WHERE id = $2 AND enabled AND failing_since <= $3",
            )
            .bind(now)
            .bind(&webhook)
            .bind(disable_if_failing_since)
            .execute(&mut *tx)
            .await?;
        }
        WebhookEffect::Disable(reason) => {
            sqlx::query(
                "UPDATE webhooks SET enabled = FALSE, disabled_reason = $1, updated_at = $2 WHERE id = $3",
            )
            .bind(reason)
            .bind(now)
            .bind(&webhook)
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}
