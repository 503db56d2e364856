//! The hot writes, run by the writer thread inside a batch (see [`super::batch`]):
//! ingest and completion. Each is plain synchronous SQL on cached statements, applying
//! the domain's rules (an event's targets, an attempt's effect on its webhook's health)
//! to what it reads in the same transaction.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::domain::event_type::EventFilter;
use crate::domain::health::Health;
use crate::domain::ids::{DeliveryId, EventId, SiteId, WebhookId};
use crate::domain::models::{Attempt, ErrorKind};
use crate::domain::ordering::{Ordering, Sequence};
use crate::domain::throttle::RateLimit;
use crate::domain::time::Timestamp;
use crate::domain::webhook::targets;
use crate::store::rows::corrupt;
use crate::store::{
    Completion, Fresh, Handed, IngestOutcome, NewEvent, StoreResult, delivery_after, health_change,
    needs_targets, sql,
};

/// The site's enabled webhooks an event may go to: `$1` site.
const FAN_OUT_CANDIDATES: &str = "SELECT id, event_types, paused, concurrency_limit, rate_limit_per_second, ordering \
     FROM webhooks WHERE site_id = $1 AND enabled = TRUE";

/// An ordered webhook's last sequence number: `$1` id.
const LAST_SEQ: &str = "SELECT next_seq FROM webhooks WHERE id = $1";
/// Stores an ordered webhook's last sequence number: `$1` number, `$2` id.
const STORE_SEQ: &str = "UPDATE webhooks SET next_seq = $1 WHERE id = $2";

/// An attempt's effect on its delivery: `$1` state, `$2` attempts made, `$3` next
/// attempt, `$4` updated, `$5` id. (Each store ends the attempt's lease its own way.) A
/// delivery cancelled meanwhile (its webhook deleted) stays cancelled unless the
/// attempt settled it (see [`crate::store::sql::CANCEL_PENDING`]).
const COMPLETE_DELIVERY: &str = "UPDATE deliveries SET \
     state = CASE WHEN state = 'cancelled' AND $1 = 'pending' THEN 'cancelled' ELSE $1 END, \
     attempt_count = $2, \
     next_attempt_at = CASE WHEN state = 'cancelled' THEN NULL ELSE $3 END, \
     updated_at = $4, attempt_started_at = NULL WHERE id = $5";

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
    // A delivery handed over is leased now: its first attempt is counted as started
    // (see `DeliveryQueue::claim_due`).
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (id, site_id, event_id, webhook_id, state, attempt_count, \
         next_attempt_at, lease_until, created_at, updated_at, attempt_started_at, seq) \
         VALUES (?1, ?2, ?3, ?4, 'pending', ?6, ?5, NULL, ?5, ?5, ?7, ?8)",
    )?;
    let mut handed = Handed::of(new);
    for target in &targets {
        let id = DeliveryId::new(event.created_at);
        let seq = sequence(conn, target)?;
        let admitted = match (handed.as_mut(), target.paused) {
            (Some(handed), false) if target.ordering.hands_off() => handed.offer(Fresh {
                delivery: id,
                webhook: target.webhook,
                site: event.site_id,
                concurrency: target.concurrency,
                rate_limit: target.rate_limit,
            }),
            (Some(handed), false) => {
                handed.leave_to_claims();
                false
            }
            _ => false,
        };
        insert.execute(params![
            id.to_string(),
            site,
            event_id,
            target.webhook.to_string(),
            event.created_at,
            u32::from(admitted),
            admitted.then_some(event.created_at),
            seq,
        ])?;
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
    rate_limit: Option<RateLimit>,
    ordering: Ordering,
}

/// The sequence number of a new delivery to `target` (see [`Sequence`]), stored as its
/// webhook's last. The writer thread is the only writer, so numbers are taken in commit
/// order.
fn sequence(conn: &Connection, target: &Target) -> StoreResult<i64> {
    if !target.ordering.is_fifo() {
        return Ok(0);
    }
    let id = target.webhook.to_string();
    let last: i64 = conn
        .prepare_cached(LAST_SEQ)?
        .query_row([&id], |row| row.get(0))?;
    let seq = Sequence::after([(target.webhook, last)]).next(target.webhook, target.ordering);
    conn.prepare_cached(STORE_SEQ)?.execute(params![seq, id])?;
    Ok(seq)
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
        let rate_limit = row
            .get::<_, Option<i64>>(4)?
            .map(RateLimit::new)
            .transpose()
            .map_err(corrupt)?;
        let ordering = Ordering::parse(&row.get::<_, String>(5)?).map_err(corrupt)?;
        let state = (
            row.get::<_, bool>(2)?,
            row.get::<_, Option<u32>>(3)?,
            rate_limit,
            ordering,
        );
        states.insert(id, state);
        candidates.push((id, filters));
    }
    let candidates = candidates.iter().map(|(id, f)| (*id, f.as_slice()));
    Ok(targets(candidates, &new.event.event_type, new.only_webhook)
        .into_iter()
        .map(|webhook| {
            let (paused, concurrency, rate_limit, ordering) = states
                .get(&webhook)
                .copied()
                .unwrap_or((true, None, None, Ordering::None));
            Target {
                webhook,
                paused,
                concurrency,
                rate_limit,
                ordering,
            }
        })
        .collect())
}

/// Stores an attempt's log row.
pub(super) fn insert_attempt(conn: &Connection, a: &Attempt) -> StoreResult<()> {
    conn.prepare_cached(sql::INSERT_ATTEMPT)?.execute(params![
        a.id.to_string(),
        a.delivery_id.to_string(),
        a.webhook_id.to_string(),
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
    Ok(())
}

/// Records one attempt and its consequences.
pub(super) fn complete(conn: &Connection, c: &Completion, now: Timestamp) -> StoreResult<()> {
    let a = &c.attempt;
    let delivery = a.delivery_id.to_string();
    let webhook = a.webhook_id.to_string();
    insert_attempt(conn, a)?;
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
    // Deleted since the claim: the attempt is logged, no health is recorded.
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

/// Counts an attempt of each claimed delivery of `ids` as started at `now`, unless it
/// is no longer due (recorded, rescheduled or deleted since the claim read it) or an
/// attempt of it started after `stale` is still unrecorded (an ingest just handed it
/// over, and leases it in a moment); answers, for each one started, the attempts
/// started before and the start of one whose outcome was lost, if there is one.
pub(super) fn start_attempts(
    conn: &Connection,
    ids: &[DeliveryId],
    now: Timestamp,
    stale: Timestamp,
) -> StoreResult<HashMap<DeliveryId, (u32, Option<Timestamp>)>> {
    let mut read = conn.prepare_cached(
        "SELECT attempt_count, attempt_started_at FROM deliveries WHERE id = ?1 \
         AND state = 'pending' AND next_attempt_at <= ?2 \
         AND (attempt_started_at IS NULL OR attempt_started_at <= ?3)",
    )?;
    let mut start = conn.prepare_cached(
        "UPDATE deliveries SET attempt_count = attempt_count + 1, attempt_started_at = ?2 \
         WHERE id = ?1",
    )?;
    let mut started = HashMap::with_capacity(ids.len());
    for id in ids {
        let key = id.to_string();
        let found = read
            .query_row(params![key, now, stale], |row| {
                Ok((row.get::<_, u32>(0)?, row.get::<_, Option<Timestamp>>(1)?))
            })
            .optional()?;
        if let Some(found) = found {
            start.execute(params![key, now])?;
            started.insert(*id, found);
        }
    }
    Ok(started)
}

/// At start: records every attempt the previous process left unrecorded as
/// `interrupted` (see [`Attempt::interrupted`]) and clears the marks, so that each
/// delivery is claimed at once, its next attempt numbered after the lost one. Returns
/// how many there were.
pub(super) fn interrupt_unrecorded(conn: &Connection) -> StoreResult<u64> {
    let lost = conn
        .prepare_cached(
            "SELECT id, webhook_id, attempt_count, attempt_started_at FROM deliveries \
             WHERE attempt_started_at IS NOT NULL",
        )?
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, u32>(2)?,
                row.get::<_, Timestamp>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for (delivery, webhook, number, started_at) in &lost {
        let delivery = DeliveryId::parse(delivery).map_err(corrupt)?;
        let webhook = WebhookId::parse(webhook).map_err(corrupt)?;
        insert_attempt(
            conn,
            &Attempt::interrupted(delivery, webhook, *number, *started_at),
        )?;
    }
    conn.prepare_cached(
        "UPDATE deliveries SET attempt_started_at = NULL WHERE attempt_started_at IS NOT NULL",
    )?
    .execute([])?;
    Ok(u64::try_from(lost.len()).unwrap_or(u64::MAX))
}
