//! The hot writes, run by the writer thread inside a batch (see [`super::batch`]):
//! ingest and completion. Each is plain synchronous SQL on cached statements.

use rusqlite::{Connection, OptionalExtension as _, params};

use super::rows::corrupt;
use crate::domain::event_type::{EventFilter, any_matches};
use crate::domain::ids::{DeliveryId, EventId};
use crate::domain::models::{DeliveryState, ErrorKind};
use crate::store::{Completion, IngestOutcome, NewEvent, NextStep, StoreResult, WebhookEffect};

/// Stores one event and its deliveries.
pub(super) fn ingest(conn: &Connection, new: &NewEvent) -> StoreResult<IngestOutcome> {
    let event = &new.event;
    let site = event.site_id.to_string();
    if let Some(key) = &event.idempotency_key {
        let earlier = conn
            .prepare_cached(
                "SELECT id, request_hash FROM events WHERE site_id = ?1 AND idempotency_key = ?2",
            )?
            .query_row(params![site, key], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .optional()?;
        if let Some((id, hash)) = earlier {
            return Ok(IngestOutcome::Duplicate {
                event_id: EventId::parse(&id).map_err(corrupt)?,
                same_request: hash == new.request_hash,
            });
        }
    }
    let event_id = event.id.to_string();
    conn.prepare_cached(
        "INSERT INTO events (id, site_id, type, payload, created_at, idempotency_key, request_hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        event_id,
        site,
        event.event_type,
        event.payload,
        event.created_at,
        event.idempotency_key,
        &new.request_hash[..],
    ])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (id, site_id, event_id, webhook_id, state, attempt_count, \
         next_attempt_at, lease_until, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, NULL, ?5, ?5)",
    )?;
    let mut deliveries = 0u32;
    for webhook in targets(conn, &site, new)? {
        let id = DeliveryId::new(event.created_at).to_string();
        insert.execute(params![id, site, event_id, webhook, event.created_at])?;
        deliveries += 1;
    }
    Ok(IngestOutcome::Created {
        event_id: event.id,
        deliveries,
    })
}

/// The webhooks an event goes to: the one asked for, or every enabled webhook of the
/// site whose filter matches.
fn targets(conn: &Connection, site: &str, new: &NewEvent) -> StoreResult<Vec<String>> {
    let mut query = conn.prepare_cached(
        "SELECT id, event_types FROM webhooks WHERE site_id = ?1 AND enabled = 1",
    )?;
    let mut rows = query.query([site])?;
    let mut targets = Vec::new();
    let only = new.only_webhook.map(|w| w.to_string());
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let wanted = match &only {
            Some(only) => *only == id,
            None => {
                let filters: String = row.get(1)?;
                let filters: Vec<EventFilter> = serde_json::from_str(&filters).map_err(corrupt)?;
                any_matches(&filters, &new.event.event_type)
            }
        };
        if wanted {
            targets.push(id);
        }
    }
    Ok(targets)
}

/// Records one attempt and its consequences.
pub(super) fn complete(conn: &Connection, c: &Completion, now: i64) -> StoreResult<()> {
    let a = &c.attempt;
    let delivery = a.delivery_id.to_string();
    let webhook = a.webhook_id.to_string();
    conn.prepare_cached(
        "INSERT INTO attempts (id, delivery_id, webhook_id, attempt_number, started_at, duration_ms, \
         status_code, error_kind, error_message, response_body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        a.id.to_string(),
        delivery,
        webhook,
        a.attempt_number,
        a.started_at,
        a.duration_ms,
        a.status_code,
        a.error_kind.map(ErrorKind::as_str),
        a.error_message,
        a.response_body,
    ])?;
    let (state, next_at) = match c.next {
        NextStep::Succeeded => (DeliveryState::Succeeded, None),
        NextStep::RetryAt(at) => (DeliveryState::Pending, Some(at)),
        NextStep::Failed => (DeliveryState::Failed, None),
    };
    conn.prepare_cached(
        "UPDATE deliveries SET state = ?1, attempt_count = ?2, next_attempt_at = ?3, \
         lease_until = NULL, updated_at = ?4 WHERE id = ?5",
    )?
    .execute(params![
        state.as_str(),
        a.attempt_number,
        next_at,
        now,
        delivery
    ])?;
    match &c.webhook {
        WebhookEffect::Healthy => {
            // A success ends the failing streak only if it started after the streak
            // did: a slow success recorded late must not hide failures since.
            conn.prepare_cached(
                "UPDATE webhooks SET failing_since = NULL WHERE id = ?1 AND failing_since <= ?2",
            )?
            .execute(params![webhook, a.started_at])?;
        }
        WebhookEffect::Failing {
            disable_if_failing_since,
        } => {
            conn.prepare_cached(
                "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?1) WHERE id = ?2",
            )?
            .execute(params![a.started_at, webhook])?;
            conn.prepare_cached(
                "UPDATE webhooks SET enabled = 0, updated_at = ?1, \
                 disabled_reason = 'every attempt failed since ' || \
                 strftime('%Y-%m-%dT%H:%M:%SZ', failing_since / 1000, 'unixepoch') \
                 WHERE id = ?2 AND enabled = 1 AND failing_since <= ?3",
            )?
            .execute(params![now, webhook, disable_if_failing_since])?;
        }
        WebhookEffect::Disable(reason) => {
            conn.prepare_cached(
                "UPDATE webhooks SET enabled = 0, disabled_reason = ?1, updated_at = ?2 WHERE id = ?3",
            )?
            .execute(params![reason, now, webhook])?;
        }
    }
    Ok(())
}
