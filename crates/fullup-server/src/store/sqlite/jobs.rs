//! The hot writes, run by the writer thread inside a batch (see [`super::batch`]):
//! ingest and completion. Each is plain synchronous SQL on cached statements, applying
//! the domain's rules (an event's targets, an attempt's effect on its webhook's health)
//! to what it reads in the same transaction.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::domain::event_type::EventFilter;
use crate::domain::health::Health;
use crate::domain::ids::{DeliveryId, EventId, SiteId, WebhookId};
use crate::domain::models::ErrorKind;
use crate::domain::time::Timestamp;
use crate::domain::webhook::targets;
use crate::store::rows::corrupt;
use crate::store::{
    Completion, Fresh, Handed, IngestOutcome, NewEvent, StoreResult, delivery_after, health_change,
    needs_targets, sql,
};

/// The site's enabled webhooks an event may go to: `$1` site.
const FAN_OUT_CANDIDATES: &str = "SELECT id, event_types, paused, concurrency_limit FROM webhooks \
     WHERE site_id = $1 AND enabled = TRUE";

/// `$1` id, `$2` delivery, `$3` webhook, `$4` number, `$5` started, `$6` duration (ms),
/// `$7` status, `$8` error kind, `$9` error message, `$10` response body, `$11` request
/// headers, `$12` response headers.
const INSERT_ATTEMPT: &str = "INSERT INTO attempts (id, delivery_id, webhook_id, attempt_number, \
     started_at, duration_ms, status_code, error_kind, error_message, response_body, \
     request_headers, response_headers) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// An attempt's effect on its delivery: `$1` state, `$2` attempts made, `$3` next
/// attempt, `$4` updated, `$5` id. (Each store ends the attempt's lease its own way.)
const COMPLETE_DELIVERY: &str = "UPDATE deliveries SET state = $1, attempt_count = $2, \
     next_attempt_at = $3, updated_at = $4 WHERE id = $5";

/// Stores one event and its deliveries, offering each delivery due now to the event's
/// hand-off (see [`Handed`]); the caller leases the admitted ones after the commit.
pub(super) fn ingest(
    conn: &Connection,
    new: &NewEvent,
) -> StoreResult<(IngestOutcome, Option<Handed>)> {
    let event = &new.event;
    let site = event.site_id.to_string();
    if let Some(key) = &event.idempotency_key {
        let earlier = conn
            .prepare_cached(sql::EVENT_BY_IDEMPOTENCY_KEY)?
            .query_row(params![site, key], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .optional()?;
        if let Some((id, hash)) = earlier {
            let outcome = IngestOutcome::Duplicate {
                event_id: EventId::parse(&id).map_err(corrupt)?,
                same_request: hash == new.request_hash,
            };
            return Ok((outcome, None));
        }
    }
    let targets = targets_of(conn, &site, new)?;
    if targets.is_empty() && needs_targets(new) {
        let outcome = IngestOutcome::Created {
            event_id: event.id,
            deliveries: 0,
        };
        return Ok((outcome, None));
    }
    let event_id = event.id.to_string();
    conn.prepare_cached(
        "INSERT INTO events (id, site_id, type, payload, created_at, idempotency_key, request_hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        event_id,
        site,
        event.event_type.as_str(),
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
    let mut handed = Handed::of(new);
    for target in &targets {
        let id = DeliveryId::new(event.created_at);
        insert.execute(params![
            id.to_string(),
            site,
            event_id,
            target.webhook.to_string(),
            event.created_at
        ])?;
        if let (Some(handed), false) = (handed.as_mut(), target.paused) {
            handed.offer(Fresh {
                delivery: id,
                webhook: target.webhook,
                site: event.site_id,
                concurrency: target.concurrency,
            });
        }
    }
    let outcome = IngestOutcome::Created {
        event_id: event.id,
        deliveries: u32::try_from(targets.len()).map_err(corrupt)?,
    };
    Ok((outcome, handed))
}

/// A webhook an event goes to.
struct Target {
    webhook: WebhookId,
    paused: bool,
    concurrency: Option<u32>,
}

/// The webhooks `new` goes to (see [`targets`]).
fn targets_of(conn: &Connection, site: &str, new: &NewEvent) -> StoreResult<Vec<Target>> {
    let mut query = conn.prepare_cached(FAN_OUT_CANDIDATES)?;
    let mut rows = query.query([site])?;
    let mut candidates = Vec::new();
    let mut states = HashMap::new();
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let filters: String = row.get(1)?;
        let filters: Vec<EventFilter> = serde_json::from_str(&filters).map_err(corrupt)?;
        let id = WebhookId::parse(&id).map_err(corrupt)?;
        states.insert(id, (row.get::<_, bool>(2)?, row.get::<_, Option<u32>>(3)?));
        candidates.push((id, filters));
    }
    let candidates = candidates.iter().map(|(id, f)| (*id, f.as_slice()));
    Ok(targets(candidates, &new.event.event_type, new.only_webhook)
        .into_iter()
        .map(|webhook| {
            let (paused, concurrency) = states.get(&webhook).copied().unwrap_or((true, None));
            Target {
                webhook,
                paused,
                concurrency,
            }
        })
        .collect())
}

/// Records one attempt and its consequences.
pub(super) fn complete(conn: &Connection, c: &Completion, now: Timestamp) -> StoreResult<()> {
    let a = &c.attempt;
    let delivery = a.delivery_id.to_string();
    let webhook = a.webhook_id.to_string();
    conn.prepare_cached(INSERT_ATTEMPT)?.execute(params![
        a.id.to_string(),
        delivery,
        webhook,
        a.attempt_number,
        a.started_at,
        i64::try_from(a.duration.as_millis()).unwrap_or(i64::MAX),
        a.status_code,
        a.error_kind.map(ErrorKind::as_str),
        a.error_message,
        a.response_body,
        a.request_headers,
        a.response_headers,
    ])?;
    let (state, next_at) = delivery_after(c.next);
    conn.prepare_cached(COMPLETE_DELIVERY)?.execute(params![
        state.as_str(),
        a.attempt_number,
        next_at,
        now,
        delivery
    ])?;
    // The writer thread is the only writer: the health read here is still current
    // when it is written.
    let read = conn
        .prepare_cached(sql::READ_HEALTH)?
        .query_row([&webhook], |row| {
            let health = Health {
                enabled: row.get(1)?,
                disabled_reason: row.get(2)?,
                failing_since: row.get(3)?,
                concurrency: row.get(4)?,
            };
            Ok((row.get::<_, String>(0)?, health))
        })
        .optional()?;
    // Deleted since the claim: its deliveries and attempts are gone too.
    let Some((site, read)) = read else {
        return Ok(());
    };
    let record = health_change(a.webhook_id, &read, [(c, now)]);
    if let Some((next, updated)) = record.write {
        conn.prepare_cached(sql::WRITE_HEALTH)?.execute(params![
            next.enabled,
            next.disabled_reason,
            next.failing_since,
            next.concurrency,
            updated,
            webhook,
            read.enabled,
            read.disabled_reason,
            read.failing_since,
            read.concurrency,
        ])?;
    }
    let site = SiteId::parse(&site).map_err(corrupt)?;
    for notice in record.notices {
        ingest(conn, &NewEvent::notice(site, notice, now))?;
    }
    Ok(())
}
