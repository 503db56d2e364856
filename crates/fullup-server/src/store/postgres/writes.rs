//! The writes several nodes race on: claiming due deliveries (leases), and the parts of
//! ingest (idempotency keys) and of recording attempts (a webhook's health) that the
//! group commit ([`super::batch`]) runs inside its transactions. Each is one statement or
//! part of one transaction, so a node that dies between two of them leaves nothing
//! half-written.

use std::time::Duration;

use sqlx::Row as _;
use sqlx::postgres::{PgConnection, PgPool};

use crate::crypto::MainKey;
use crate::domain::health::Health;
use crate::domain::ids::{DeliveryId, EventId, SiteId, WebhookId};
use crate::domain::operational::Notice;
use crate::domain::throttle::RateLimit;
use crate::domain::time::Timestamp;
use crate::store::rows::postgres::{count, health, parsed, webhook};
use crate::store::{
    Claim, ClaimedDelivery, Completion, IngestOutcome, NewEvent, StoreError, StoreResult,
    health_change, sql,
};

/// Reads before recording a webhook's health gives up: every lost race means another
/// attempt of the same webhook changed its health in between, which a handful of
/// attempts can do only a handful of times.
const HEALTH_ATTEMPTS: usize = 8;

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

/// Leases due deliveries in one statement (see [`crate::store::DeliveryQueue::claim_due`]).
///
/// `live` counts the attempts in flight on every node (live leases, but the caller's
/// settling ones, `$6`) per webhook and site. Each eligible webhook's due, unleased deliveries come from its own range of
/// `queue_due` (the queue holds exactly the pending deliveries), as many as its limit
/// (the adaptive one, and a second's worth of its rate limit:
/// [`crate::domain::webhook::in_flight_limit`]) leaves room for (a paused or saturated
/// webhook's backlog is never scanned; `$7` leases per request:
/// [`crate::domain::webhook::lease_limit`]), locked `FOR UPDATE SKIP LOCKED` so that
/// concurrent claims (of any nodes) pick different rows. They are then ranked within
/// their site (its webhooks in turn) and taken round-robin across sites, within each
/// site's room. A lease is a row of `leases`, inserted, or renewed only if it has ended:
/// the primary key decides against the latest committed lease, whatever this statement's
/// snapshot saw, so two nodes never lease one delivery. Each leased delivery's attempt
/// is counted as started (`attempt_count` raised, `attempt_started_at` set: a HOT update,
/// neither column is indexed); the main query reads the row as the statement's snapshot
/// saw it, before that update, so it answers the attempts started before and the start
/// of one whose outcome was lost (a dead node's, or one given back at shutdown).
/// The claimed rows' deliveries and events are read by key (`LATERAL`): a join let the
/// planner read the whole `deliveries` table for a handful of rows.
///
/// An ordered webhook ([`crate::domain::ordering`]) with no live lease gives its head
/// only: the queue row with the lowest `(seq, delivery_id)` (one probe of `queue_fifo`),
/// if it is due. It is locked without looking past it: a head another node's claim holds
/// locked, or that a completion deleted or rescheduled since this statement's snapshot,
/// is skipped, and the webhook gives nothing this time rather than its second delivery.
pub(super) async fn claim_due(
    pool: &PgPool,
    key: &MainKey,
    claim: &Claim,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let rows = sqlx::query(
        "WITH live AS ( \
             SELECT webhook_id, site_id, COUNT(*) AS n FROM leases \
             WHERE until > $2 AND delivery_id NOT IN (SELECT unnest($6::text[])) \
             GROUP BY webhook_id, site_id), \
         site_live AS (SELECT site_id, SUM(n) AS n FROM live GROUP BY site_id), \
         candidates AS ( \
             SELECT d.id, d.next_attempt_at, w.id AS webhook_id, w.site_id, \
                    $5 - COALESCE(s.n, 0) AS site_room, \
                    ROW_NUMBER() OVER (PARTITION BY w.id ORDER BY d.next_attempt_at) AS webhook_rank \
             FROM webhooks w LEFT JOIN live l ON l.webhook_id = w.id \
             LEFT JOIN site_live s ON s.site_id = w.site_id CROSS JOIN LATERAL ( \
                 SELECT q.delivery_id AS id, q.due_at AS next_attempt_at FROM queue q \
                 WHERE q.webhook_id = w.id AND q.due_at <= $2 \
                   AND NOT EXISTS (SELECT 1 FROM leases x WHERE x.delivery_id = q.delivery_id AND x.until > $2) \
                 ORDER BY q.due_at \
                 LIMIT LEAST(GREATEST(LEAST(LEAST(COALESCE(w.concurrency_limit, $4), $4) * $7, \
                                      COALESCE(w.rate_limit_per_second, $4 * $7)) - COALESCE(l.n, 0), 0), $3) \
                 FOR UPDATE OF q SKIP LOCKED) d \
             WHERE w.enabled AND NOT w.paused AND w.ordering <> 'fifo' AND $5 - COALESCE(s.n, 0) > 0 \
             UNION ALL \
             SELECT d.id, d.next_attempt_at, w.id AS webhook_id, w.site_id, \
                    $5 - COALESCE(s.n, 0) AS site_room, 1 AS webhook_rank \
             FROM webhooks w LEFT JOIN live l ON l.webhook_id = w.id \
             LEFT JOIN site_live s ON s.site_id = w.site_id CROSS JOIN LATERAL ( \
                 SELECT q.delivery_id AS id, q.due_at AS next_attempt_at FROM queue q \
                 WHERE q.delivery_id = (SELECT h.delivery_id FROM queue h WHERE h.webhook_id = w.id \
                                        ORDER BY h.seq, h.delivery_id LIMIT 1) \
                   AND q.due_at <= $2 \
                   AND NOT EXISTS (SELECT 1 FROM leases x WHERE x.delivery_id = q.delivery_id AND x.until > $2) \
                 FOR UPDATE OF q SKIP LOCKED) d \
             WHERE w.enabled AND NOT w.paused AND w.ordering = 'fifo' AND l.n IS NULL \
               AND $5 - COALESCE(s.n, 0) > 0), \
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
             RETURNING delivery_id), \
         started AS ( \
             UPDATE deliveries d SET attempt_count = d.attempt_count + 1, attempt_started_at = $2 \
             FROM claimed c WHERE d.id = c.delivery_id) \
         SELECT d.id AS delivery_id, d.attempt_count, d.attempt_started_at, e.id AS event_id, e.type AS event_type, e.payload, w.* \
         FROM claimed c \
         CROSS JOIN LATERAL (SELECT * FROM deliveries d WHERE d.id = c.delivery_id) d \
         CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.id = d.event_id) e \
         JOIN webhooks w ON w.id = d.webhook_id \
         ORDER BY d.next_attempt_at",
    )
    .bind(claim.now + claim.lease)
    .bind(claim.now)
    .bind(i64::from(claim.limit))
    .bind(i64::from(claim.per_webhook))
    .bind(i64::from(claim.per_site))
    .bind(
        claim
            .settling
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    )
    .bind(i64::from(claim.leases_per_request.max(1)))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ClaimedDelivery {
                delivery_id: parsed(row, "delivery_id", DeliveryId::parse)?,
                attempt_count: count(row, "attempt_count")?,
                interrupted: row.try_get("attempt_started_at")?,
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

/// Takes `webhook`'s next slot by [`crate::domain::throttle::grant`] in one atomic
/// upsert of its `throttles` row, on the database server's clock (one clock for every
/// node, whatever their own clocks say): `max(tat, now)`, `tat` moved one spacing past
/// it. Answers how long from the database's now the slot is; a webhook deleted
/// meanwhile has no row and waits for nothing.
pub(super) async fn take_slot(
    pool: &PgPool,
    webhook: WebhookId,
    limit: RateLimit,
) -> StoreResult<Duration> {
    let wait: Option<i64> = sqlx::query_scalar(
        "WITH now AS (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::int8 AS us) \
         INSERT INTO throttles (webhook_id, tat) \
         SELECT w.id, now.us + $2 FROM webhooks w, now WHERE w.id = $1 \
         ON CONFLICT (webhook_id) DO UPDATE \
             SET tat = GREATEST(throttles.tat, (SELECT us FROM now)) + $2 \
         RETURNING tat - $2 - (SELECT us FROM now)",
    )
    .bind(webhook.to_string())
    .bind(limit.spacing().0)
    .fetch_optional(pool)
    .await?;
    let wait = u64::try_from(wait.unwrap_or(0)).unwrap_or(0);
    Ok(Duration::from_micros(wait))
}

/// A row of [`sql::READ_HEALTH`]: the webhook's site and health.
pub(super) fn site_and_health(row: &sqlx::postgres::PgRow) -> StoreResult<(SiteId, Health)> {
    Ok((parsed(row, "site_id", SiteId::parse)?, health(row)?))
}

/// A concurrency limit as its `INTEGER` column holds it.
fn limit_column(limit: u32) -> i32 {
    i32::try_from(limit).unwrap_or(i32::MAX)
}

/// Applies the effect of `attempts` (all of `webhook`, in the order they were made) to
/// its health: read, rule, and a write only if the health changes and is still the one
/// read (compare and swap; a lost race reads again). No lock is taken when nothing
/// changes, which is almost every attempt.
/// `first` is the site and health already read in this transaction, if they were.
/// Returns the webhook's site and the service's own events the attempts call for (see
/// [`crate::store::HealthRecord`]), or None if the webhook is gone.
pub(super) async fn record_health(
    tx: &mut PgConnection,
    webhook: WebhookId,
    mut first: Option<(SiteId, Health)>,
    attempts: &[(&Completion, Timestamp)],
) -> StoreResult<Option<(SiteId, Vec<Notice>)>> {
    let id = webhook.to_string();
    for _ in 0..HEALTH_ATTEMPTS {
        let read = match first.take() {
            Some(read) => Some(read),
            None => {
                let row = sqlx::query(sql::READ_HEALTH)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
                row.as_ref().map(site_and_health).transpose()?
            }
        };
        // Deleted since the claim: nothing to record.
        let Some((site, read)) = read else {
            return Ok(None);
        };
        let record = health_change(webhook, &read, attempts.iter().copied());
        let Some((next, updated)) = record.write else {
            return Ok(Some((site, record.notices)));
        };
        let done = sqlx::query(sql::WRITE_HEALTH)
            .bind(next.enabled)
            .bind(&next.disabled_reason)
            .bind(next.failing_since)
            .bind(next.concurrency.map(limit_column))
            .bind(updated)
            .bind(&id)
            .bind(read.enabled)
            .bind(&read.disabled_reason)
            .bind(read.failing_since)
            .bind(read.concurrency.map(limit_column))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 1 {
            return Ok(Some((site, record.notices)));
        }
    }
    Err(StoreError::WriteFailed(
        "the webhook's health kept changing while this attempt was recorded".into(),
    ))
}
