//! The writes several nodes race on: ingest (idempotency keys), claiming due
//! deliveries (leases) and recording attempts. Each is one transaction or one statement,
//! so a node that dies between two of them leaves nothing half-written.

use sqlx::Row as _;
use sqlx::postgres::{PgConnection, PgPool};

use crate::crypto::MainKey;
use crate::domain::ids::{DeliveryId, EventId, WebhookId};
use crate::domain::models::ErrorKind;
use crate::domain::time::Timestamp;
use crate::domain::webhook::targets;
use crate::store::rows::corrupt;
use crate::store::rows::postgres::{count, filters, health, parsed, webhook};
use crate::store::{
    Claim, ClaimedDelivery, Completion, IngestOutcome, NewEvent, StoreError, StoreResult,
    delivery_after, health_change, sql,
};

/// Reads before recording a webhook's health gives up: every lost race means another
/// attempt of the same webhook changed its health in between, which a handful of
/// attempts can do only a handful of times.
const HEALTH_ATTEMPTS: usize = 8;

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
    .bind(event.event_type.as_str())
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
pub(super) async fn earlier_event(
    tx: &mut PgConnection,
    new: &NewEvent,
) -> StoreResult<IngestOutcome> {
    let event = &new.event;
    let key = event
        .idempotency_key
        .as_deref()
        .ok_or_else(|| StoreError::WriteFailed("the event was not stored".into()))?;
    let row = sqlx::query(sql::EVENT_BY_IDEMPOTENCY_KEY)
        .bind(event.site_id.to_string())
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
    let hash: Vec<u8> = row.try_get("request_hash")?;
    Ok(IngestOutcome::Duplicate {
        event_id: parsed(&row, "id", EventId::parse)?,
        same_request: hash == new.request_hash,
    })
}

/// One delivery per webhook the event goes to (see [`targets`]), in one statement.
async fn insert_deliveries(tx: &mut PgConnection, new: &NewEvent) -> StoreResult<u32> {
    let event = &new.event;
    let rows = sqlx::query(sql::FAN_OUT_CANDIDATES)
        .bind(event.site_id.to_string())
        .fetch_all(&mut *tx)
        .await?;
    let candidates = rows
        .iter()
        .map(|row| {
            Ok((
                parsed(row, "id", WebhookId::parse)?,
                filters(row, "event_types")?,
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let candidates = candidates.iter().map(|(id, f)| (*id, f.as_slice()));
    let webhooks: Vec<String> = targets(candidates, &event.event_type, new.only_webhook)
        .iter()
        .map(ToString::to_string)
        .collect();
    if webhooks.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = webhooks
        .iter()
        .map(|_| DeliveryId::new(event.created_at).to_string())
        .collect();
    sqlx::query(
        "INSERT INTO deliveries (id, site_id, event_id, webhook_id, state, attempt_count, next_attempt_at, created_at, updated_at) \
         SELECT d, $3, $4, w, 'pending', 0, $5, $5, $5 FROM UNNEST($1::text[], $2::text[]) AS t(d, w)",
    )
    .bind(&ids)
    .bind(&webhooks)
    .bind(event.site_id.to_string())
    .bind(event.id.to_string())
    .bind(event.created_at)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(super::batch::DUE_CHANNEL)
        .execute(&mut *tx)
        .await?;
    u32::try_from(webhooks.len()).map_err(corrupt)
}

/// Leases due deliveries in one statement (see [`crate::store::DeliveryQueue::claim_due`]).
///
/// `live` counts the attempts in flight on every node (live leases) per webhook and
/// site. Each eligible webhook's due, unleased deliveries come from its own range of
/// `deliveries_due_webhook`, as many as its limit leaves room for (a paused or saturated
/// webhook's backlog is never scanned), locked `FOR NO KEY UPDATE SKIP LOCKED` so that
/// concurrent claims (of any nodes) pick different rows. They are then ranked within
/// their site (its webhooks in turn) and taken round-robin across sites, within each
/// site's room. A lease is a row of `leases`, inserted, or renewed only if it has ended:
/// the primary key decides against the latest committed lease, whatever this statement's
/// snapshot saw, so two nodes never lease one delivery. The delivery row is not written.
pub(super) async fn claim_due(
    pool: &PgPool,
    key: &MainKey,
    claim: &Claim,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let rows = sqlx::query(
        "WITH live AS ( \
             SELECT webhook_id, site_id, COUNT(*) AS n FROM leases WHERE until > $2 \
             GROUP BY webhook_id, site_id), \
         site_live AS (SELECT site_id, SUM(n) AS n FROM live GROUP BY site_id), \
         candidates AS ( \
             SELECT d.id, d.next_attempt_at, w.id AS webhook_id, w.site_id, \
                    $5 - COALESCE(s.n, 0) AS site_room, \
                    ROW_NUMBER() OVER (PARTITION BY w.id ORDER BY d.next_attempt_at) AS webhook_rank \
             FROM webhooks w LEFT JOIN live l ON l.webhook_id = w.id \
             LEFT JOIN site_live s ON s.site_id = w.site_id CROSS JOIN LATERAL ( \
                 SELECT d.id, d.next_attempt_at FROM deliveries d \
                 WHERE d.webhook_id = w.id AND d.state = 'pending' AND d.next_attempt_at <= $2 \
                   AND NOT EXISTS (SELECT 1 FROM leases x WHERE x.delivery_id = d.id AND x.until > $2) \
                 ORDER BY d.next_attempt_at \
                 LIMIT GREATEST(LEAST(COALESCE(w.concurrency_limit, $4), $4) - COALESCE(l.n, 0), 0) \
                 FOR NO KEY UPDATE OF d SKIP LOCKED) d \
             WHERE w.enabled AND NOT w.paused AND $5 - COALESCE(s.n, 0) > 0), \
         ranked AS ( \
             SELECT c.id, c.webhook_id, c.site_id, c.next_attempt_at, c.site_room, \
                    ROW_NUMBER() OVER (PARTITION BY c.site_id ORDER BY c.webhook_rank, c.next_attempt_at) AS site_rank \
             FROM candidates c), \
         due AS ( \
             SELECT id, webhook_id, site_id FROM ranked WHERE site_rank <= site_room \
             ORDER BY site_rank, next_attempt_at LIMIT $3), \
         claimed AS ( \
             INSERT INTO leases (delivery_id, webhook_id, site_id, until) \
             SELECT id, webhook_id, site_id, $1 FROM due \
             ON CONFLICT (delivery_id) DO UPDATE SET until = EXCLUDED.until WHERE leases.until <= $2 \
             RETURNING delivery_id) \
         SELECT d.id AS delivery_id, d.attempt_count, e.id AS event_id, e.type AS event_type, e.payload, w.* \
         FROM claimed c JOIN deliveries d ON d.id = c.delivery_id \
         JOIN events e ON e.id = d.event_id JOIN webhooks w ON w.id = d.webhook_id \
         ORDER BY d.next_attempt_at",
    )
    .bind(claim.now + claim.lease)
    .bind(claim.now)
    .bind(i64::from(claim.limit))
    .bind(i64::from(claim.per_webhook.min(claim.limit)))
    .bind(i64::from(claim.per_site))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ClaimedDelivery {
                delivery_id: parsed(row, "delivery_id", DeliveryId::parse)?,
                attempt_count: count(row, "attempt_count")?,
                event_id: parsed(row, "event_id", EventId::parse)?,
                event_type: parsed(
                    row,
                    "event_type",
                    crate::domain::event_type::EventType::parse,
                )?,
                payload: row.try_get("payload")?,
                webhook: webhook(row, key)?,
            })
        })
        .collect()
}

/// A concurrency limit as its `INTEGER` column holds it.
fn limit_column(limit: u32) -> i32 {
    i32::try_from(limit).unwrap_or(i32::MAX)
}

/// Records one attempt and its consequences in one transaction.
pub(super) async fn complete(pool: &PgPool, c: &Completion, now: Timestamp) -> StoreResult<()> {
    let a = &c.attempt;
    let number = i32::try_from(a.attempt_number).map_err(corrupt)?;
    let mut tx = pool.begin().await?;
    sqlx::query(sql::INSERT_ATTEMPT)
        .bind(a.id.to_string())
        .bind(a.delivery_id.to_string())
        .bind(a.webhook_id.to_string())
        .bind(number)
        .bind(a.started_at)
        .bind(i64::try_from(a.duration.as_millis()).unwrap_or(i64::MAX))
        .bind(a.status_code.map(i32::from))
        .bind(a.error_kind.map(ErrorKind::as_str))
        .bind(&a.error_message)
        .bind(&a.response_body)
        .execute(&mut *tx)
        .await?;
    let (state, next_at) = delivery_after(c.next);
    sqlx::query(sql::COMPLETE_DELIVERY)
        .bind(state.as_str())
        .bind(number)
        .bind(next_at)
        .bind(now)
        .bind(a.delivery_id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM leases WHERE delivery_id = $1")
        .bind(a.delivery_id.to_string())
        .execute(&mut *tx)
        .await?;
    record_health(&mut tx, &a.webhook_id.to_string(), &[(c, now)]).await?;
    tx.commit().await?;
    Ok(())
}

/// Applies the effect of `attempts` (all of `webhook`, in the order they were made) to
/// its health: read, rule, and a write only if the health changes and is still the one
/// read (compare and swap; a lost race reads again). No lock is taken when nothing
/// changes, which is almost every attempt.
pub(super) async fn record_health(
    tx: &mut PgConnection,
    webhook: &str,
    attempts: &[(&Completion, Timestamp)],
) -> StoreResult<()> {
    for _ in 0..HEALTH_ATTEMPTS {
        let row = sqlx::query(sql::READ_HEALTH)
            .bind(webhook)
            .fetch_optional(&mut *tx)
            .await?;
        // Deleted since the claim: nothing to record.
        let Some(read) = row.as_ref().map(health).transpose()? else {
            return Ok(());
        };
        let Some((next, updated)) = health_change(&read, attempts.iter().copied()) else {
            return Ok(());
        };
        let done = sqlx::query(sql::WRITE_HEALTH)
            .bind(next.enabled)
            .bind(&next.disabled_reason)
            .bind(next.failing_since)
            .bind(next.concurrency.map(limit_column))
            .bind(updated)
            .bind(webhook)
            .bind(read.enabled)
            .bind(&read.disabled_reason)
            .bind(read.failing_since)
            .bind(read.concurrency.map(limit_column))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
    }
    Err(StoreError::WriteFailed(
        "the webhook's health kept changing while this attempt was recorded".into(),
    ))
}
