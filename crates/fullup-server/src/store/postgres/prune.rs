//! Retention's writes on PostgreSQL: deleting a webhook while keeping its history, and
//! pruning one batch of old events. A batch is one short transaction over a bounded set
//! of rows, and it first takes the site's prune lock (a transaction-scoped advisory
//! lock, tried, never waited for), so of several nodes pruning at once only one works
//! on a site and the others move on; nothing an ingest or a claim takes is held long.

use sqlx::postgres::PgPool;

use crate::domain::ids::{EventId, SiteId, WebhookId};
use crate::domain::time::Timestamp;
use crate::store::rows::corrupt;
use crate::store::{PruneBatch, Pruned, StoreResult, sql};

/// The first key of the sites' prune locks ("prun" in ASCII), the second being the
/// hash of the site id: the two-key space of advisory locks, apart from the
/// single-key lock of [`super::key_lock`].
const PRUNE_LOCK: i32 = 0x7072_756e;

/// Cancels the webhook's pending deliveries (and their queue rows), marks it deleted,
/// and drops its row at once when no delivery names it. The deliveries are written
/// before the webhook, in the order `complete` locks them, so a delete racing an
/// attempt's record cannot deadlock with it.
pub(super) async fn delete_webhook(
    pool: &PgPool,
    site: SiteId,
    id: WebhookId,
    now: Timestamp,
) -> StoreResult<bool> {
    let (id, site) = (id.to_string(), site.to_string());
    let mut tx = pool.begin().await?;
    sqlx::query(sql::CANCEL_PENDING)
        .bind(now)
        .bind(&id)
        .bind(&site)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM queue WHERE webhook_id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    let marked = sqlx::query(sql::MARK_WEBHOOK_DELETED)
        .bind(now)
        .bind(&id)
        .bind(&site)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if marked == 1 {
        sqlx::query(
            "DELETE FROM webhooks WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = webhooks.id)",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(marked == 1)
}

/// Deletes the candidates' attempts, deliveries and events in one statement, leaving
/// out every event with an unfinished delivery: `$1` the candidates' ids. Returns the
/// three counts.
fn prune_sql() -> String {
    format!(
        "WITH finished AS ( \
            SELECT c.id FROM UNNEST($1::text[]) AS c(id) WHERE NOT EXISTS ( \
                SELECT 1 FROM deliveries WHERE event_id = c.id AND {unfinished})), \
         dl AS (SELECT id FROM deliveries WHERE event_id IN (SELECT id FROM finished)), \
         a AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM dl) RETURNING 1), \
         d AS (DELETE FROM deliveries WHERE id IN (SELECT id FROM dl) RETURNING 1), \
         e AS (DELETE FROM events WHERE id IN (SELECT id FROM finished) RETURNING 1) \
         SELECT (SELECT COUNT(*) FROM e), (SELECT COUNT(*) FROM d), (SELECT COUNT(*) FROM a)",
        unfinished = sql::UNFINISHED
    )
}

/// Prunes one batch (see [`crate::store::Store::prune`]), unless another node holds the
/// site's prune lock.
pub(super) async fn batch(pool: &PgPool, b: &PruneBatch) -> StoreResult<Pruned> {
    let site = b.site.to_string();
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1, hashtext($2))")
        .bind(PRUNE_LOCK)
        .bind(&site)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(Pruned {
            busy: true,
            ..Pruned::default()
        });
    }
    let candidates: Vec<String> = sqlx::query_scalar(sql::PRUNE_CANDIDATES)
        .bind(&site)
        .bind(b.after.map(|e| e.to_string()).unwrap_or_default())
        .bind(b.below.to_string())
        .bind(i64::from(b.limit))
        .fetch_all(&mut *tx)
        .await?;
    let last = candidates
        .last()
        .map(|id| EventId::parse(id).map_err(corrupt))
        .transpose()?;
    let scanned = u32::try_from(candidates.len()).unwrap_or(u32::MAX);
    if candidates.is_empty() {
        tx.commit().await?;
        return Ok(Pruned {
            scanned,
            last,
            ..Pruned::default()
        });
    }
    let (events, deliveries, attempts): (i64, i64, i64) = sqlx::query_as(&prune_sql())
        .bind(&candidates)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(Pruned {
        scanned,
        last,
        events: count(events),
        deliveries: count(deliveries),
        attempts: count(attempts),
        busy: false,
    })
}
