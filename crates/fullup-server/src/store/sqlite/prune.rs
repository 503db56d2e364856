//! Retention's writes on SQLite, run by the writer thread inside a batch (see
//! [`super::batch`]): deleting a webhook while keeping its history, and pruning one
//! batch of old events. Each is a handful of statements over a bounded set of rows, so
//! the ingests and attempt outcomes committed in the same batch wait for it only briefly.

use rusqlite::{Connection, params};

use crate::domain::ids::{EventId, SiteId, WebhookId};
use crate::domain::time::Timestamp;
use crate::store::rows::corrupt;
use crate::store::{PruneBatch, Pruned, StoreResult, sql};

/// Cancels the webhook's pending deliveries, marks it deleted, and drops its row at once
/// when no delivery names it (see [`crate::store::Store::delete_webhook`]).
pub(super) fn delete_webhook(
    conn: &Connection,
    site: SiteId,
    id: WebhookId,
    now: Timestamp,
) -> StoreResult<bool> {
    let (id, site) = (id.to_string(), site.to_string());
    conn.prepare_cached(sql::CANCEL_PENDING)?
        .execute(params![now, id, site])?;
    let marked = conn
        .prepare_cached(sql::MARK_WEBHOOK_DELETED)?
        .execute(params![now, id, site])?;
    if marked == 1 {
        conn.prepare_cached(
            "DELETE FROM webhooks WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.webhook_id = webhooks.id)",
        )?
        .execute(params![id])?;
    }
    Ok(marked == 1)
}

/// Prunes one batch (see [`crate::store::Store::prune`]): the candidates from the
/// `events_site` index, then, for those with no unfinished delivery, their attempts,
/// deliveries and the events themselves.
pub(super) fn batch(conn: &Connection, b: &PruneBatch) -> StoreResult<Pruned> {
    let after = b.after.map(|e| e.to_string()).unwrap_or_default();
    let candidates: Vec<String> = conn
        .prepare_cached(sql::PRUNE_CANDIDATES)?
        .query_map(
            params![
                b.site.to_string(),
                after,
                b.below.to_string(),
                i64::from(b.limit)
            ],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let last = candidates
        .last()
        .map(|id| EventId::parse(id).map_err(corrupt))
        .transpose()?;
    let mut pruned = Pruned {
        scanned: u32::try_from(candidates.len()).unwrap_or(u32::MAX),
        last,
        ..Pruned::default()
    };
    if candidates.is_empty() {
        return Ok(pruned);
    }
    let ids = serde_json::to_string(&candidates).map_err(corrupt)?;
    let finished: Vec<String> = conn
        .prepare_cached(&format!(
            "SELECT value FROM json_each(?1) WHERE NOT EXISTS (SELECT 1 FROM deliveries \
             WHERE event_id = value AND {})",
            sql::UNFINISHED
        ))?
        .query_map(params![ids], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let ids = serde_json::to_string(&finished).map_err(corrupt)?;
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    pruned.attempts = count(
        conn.prepare_cached(
            "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries \
             WHERE event_id IN (SELECT value FROM json_each(?1)))",
        )?
        .execute(params![ids])?,
    );
    pruned.deliveries = count(
        conn.prepare_cached(
            "DELETE FROM deliveries WHERE event_id IN (SELECT value FROM json_each(?1))",
        )?
        .execute(params![ids])?,
    );
    pruned.events = count(
        conn.prepare_cached("DELETE FROM events WHERE id IN (SELECT value FROM json_each(?1))")?
            .execute(params![ids])?,
    );
    Ok(pruned)
}
