//! Group commit: concurrent ingests and attempt completions share one transaction and
//! one multi-row statement per table, so one WAL flush and a handful of statements
//! cover hundreds of them.
//!
//! [`WRITERS`] tasks take turns at the queue: each takes every job waiting (up to
//! [`MAX_BATCH`]), writes them in one transaction and answers each caller only after the
//! commit, so a 202 still means "committed". While one writer waits for its commit to
//! be flushed, the next collects the jobs that arrived meanwhile. A batch that fails
//! (a deadlock with another node, say) is not retried as a whole: each of its jobs is
//! then written alone, in a transaction of its own, so one job's failure is its own.
//!
//! Every pending delivery has a row in `queue` (migration 0005), written here with the
//! delivery: inserted at ingest, moved to the next attempt's time after a retryable
//! failure, deleted once the delivery succeeded or failed for good.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use sqlx::Row as _;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::writes::{earlier_event, record_health, site_and_health};
use crate::crypto::MainKey;
use crate::domain::event_type::EventFilter;
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::models::ErrorKind;
use crate::domain::ordering::{Ordering, Sequence};
use crate::domain::throttle::RateLimit;
use crate::domain::time::Timestamp;
use crate::domain::webhook::{Webhook, targets};
use crate::store::rows::corrupt;
use crate::store::rows::postgres::{filters, parsed, rate_limit, webhook};
use crate::store::{
    Completion, Fresh, Handed, IngestOutcome, NewEvent, StoreError, StoreResult, delivery_after,
    needs_targets,
};

/// Most jobs in one transaction: enough to amortise the commit, few enough that a
/// batch's statements stay a few milliseconds.
pub const MAX_BATCH: usize = 256;
/// Writer tasks, each with a connection while it writes: two, so one collects while the
/// other commits.
pub const WRITERS: usize = 2;
/// Jobs waiting before callers wait to enqueue (backpressure).
const QUEUE_DEPTH: usize = 4096;
/// The channel on which nodes announce deliveries that are due now (see
/// [`super::PgStore::watch`]).
pub const DUE_CHANNEL: &str = "fullup_due";

enum Job {
    Ingest(NewEvent, oneshot::Sender<StoreResult<IngestOutcome>>),
    Complete(Completion, Timestamp, oneshot::Sender<StoreResult<()>>),
}

/// The handle callers submit writes through; cheap to clone.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writers over `pool`, announcing new deliveries as `node`, opening
    /// the secrets of handed-over deliveries' webhooks with `key`. They stop when the
    /// last handle is dropped.
    pub fn spawn(pool: &PgPool, node: Arc<str>, key: Arc<MainKey>) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WRITERS {
            let w = Writer {
                pool: pool.clone(),
                node: Arc::clone(&node),
                key: Arc::clone(&key),
            };
            tokio::spawn(run(w, Arc::clone(&rx)));
        }
        Self { queue }
    }

    /// Stores an event and its deliveries in the next batch.
    pub async fn ingest(&self, new: NewEvent) -> StoreResult<IngestOutcome> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Ingest(new, reply), answer).await
    }

    /// Records an attempt and its consequences in the next batch.
    pub async fn complete(&self, c: Completion, now: Timestamp) -> StoreResult<()> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Complete(c, now, reply), answer).await
    }

    async fn submit<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<StoreResult<T>>,
    ) -> StoreResult<T> {
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::WriteFailed("the store is closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::WriteFailed("the writer dropped the job".into()))?
    }
}

/// What a writer task writes with: the pool, the node id its announcements carry, and
/// the main key.
struct Writer {
    pool: PgPool,
    node: Arc<str>,
    key: Arc<MainKey>,
}

async fn run(w: Writer, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            jobs.push(first);
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        write(&w, jobs).await;
    }
}

/// Writes `jobs` in one transaction, hands the deliveries it admitted over and answers
/// each; on failure, writes each alone.
async fn write(w: &Writer, jobs: Vec<Job>) {
    let mut ingests = Vec::new();
    let mut completions = Vec::new();
    for job in jobs {
        match job {
            Job::Ingest(new, reply) => ingests.push((new, reply)),
            Job::Complete(c, now, reply) => completions.push((c, now, reply)),
        }
    }
    let result = {
        let news: Vec<&NewEvent> = ingests.iter().map(|(new, _)| new).collect();
        let done: Vec<(&Completion, Timestamp)> =
            completions.iter().map(|(c, now, _)| (c, *now)).collect();
        write_batch(w, &news, &done).await
    };
    let alone = ingests.len() + completions.len() == 1;
    match result {
        Ok(written) => {
            let webhooks = &written.webhooks;
            for ((new, reply), (outcome, handed)) in ingests.into_iter().zip(written.events) {
                if let Some(handed) = handed {
                    handed.start(&new, |id| webhooks.get(&id).cloned());
                }
                let _ = reply.send(Ok(outcome));
            }
            for (_, _, reply) in completions {
                let _ = reply.send(Ok(()));
            }
        }
        Err(err) if alone => {
            if let Some((_, reply)) = ingests.pop() {
                let _ = reply.send(Err(err));
            } else if let Some((_, _, reply)) = completions.pop() {
                let _ = reply.send(Err(err));
            }
        }
        // Written one by one, each job would wait for a connection in turn.
        Err(err) if err.is_unavailable() => {
            tracing::warn!(error = %crate::error_chain(&err), ingests = ingests.len(),
                completions = completions.len(), "a write batch failed: the database is unavailable");
            let message = crate::error_chain(&err);
            for (_, reply) in ingests {
                let _ = reply.send(Err(StoreError::Unavailable(message.clone())));
            }
            for (_, _, reply) in completions {
                let _ = reply.send(Err(StoreError::Unavailable(message.clone())));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, ingests = ingests.len(), completions = completions.len(),
                "a write batch failed; writing its jobs one by one");
            for (new, reply) in ingests {
                let outcome = match write_batch(w, &[&new], &[]).await {
                    Ok(mut written) => written.events.pop().ok_or_else(lost).map(|(o, handed)| {
                        if let Some(handed) = handed {
                            handed.start(&new, |id| written.webhooks.get(&id).cloned());
                        }
                        o
                    }),
                    Err(err) => Err(err),
                };
                let _ = reply.send(outcome);
            }
            for (c, now, reply) in completions {
                let _ = reply.send(write_batch(w, &[], &[(&c, now)]).await.map(drop));
            }
        }
    }
}

fn lost() -> StoreError {
    StoreError::WriteFailed("the write had no result".into())
}

/// What a batch's ingests wrote: each event's outcome and the deliveries its hand-off
/// admitted (in the order of the events), and the webhooks those go to.
#[derive(Default)]
struct Ingested {
    events: Vec<(IngestOutcome, Option<Handed>)>,
    webhooks: HashMap<WebhookId, Webhook>,
}

/// One transaction: the events, their deliveries, the attempts and their effects (one
/// statement when there are only events).
async fn write_batch(
    w: &Writer,
    news: &[&NewEvent],
    done: &[(&Completion, Timestamp)],
) -> StoreResult<Ingested> {
    if done.is_empty() {
        // Ingest alone writes in one statement, atomic by itself: no BEGIN and COMMIT
        // round trips, unless it numbers deliveries of ordered webhooks, whose row locks
        // must be held until the deliveries are committed.
        let mut conn = w.pool.acquire().await?;
        let candidates = candidates(&mut conn, news).await?;
        if !candidates.values().flatten().any(|c| c.ordering.is_fifo()) {
            return ingest_batch(&mut conn, w, news, candidates).await;
        }
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let ingested = ingest_batch(&mut tx, w, news, candidates).await?;
        tx.commit().await?;
        return Ok(ingested);
    }
    let mut tx = w.pool.begin().await?;
    let ingested = if news.is_empty() {
        Ingested::default()
    } else {
        let candidates = candidates(&mut tx, news).await?;
        ingest_batch(&mut tx, w, news, candidates).await?
    };
    complete_batch(&mut tx, w, done).await?;
    tx.commit().await?;
    Ok(ingested)
}

/// Stores the events with one delivery per target of each (see [`targets`]), queued, in
/// one statement after one read of the sites' webhooks: an event whose idempotency key
/// is already held is left out with its deliveries (and answered with the earlier
/// event), and one of the service's own events that no webhook takes is not stored
/// ([`needs_targets`]). Each delivery due now is offered to its event's hand-off, and
/// leased to this node in the same statement when admitted. The other new deliveries are
/// announced on [`DUE_CHANNEL`] at commit, with the node id as the payload, so that this
/// node's listener can ignore its own. The deliveries to ordered webhooks are numbered
/// ([`Sequence`]) under those webhooks' row locks, which `tx` must hold until it commits,
/// and are never handed over. `candidates` are the enabled webhooks of the events' sites.
async fn ingest_batch(
    tx: &mut PgConnection,
    w: &Writer,
    news: &[&NewEvent],
    candidates: HashMap<String, Vec<Candidate>>,
) -> StoreResult<Ingested> {
    let by_id: HashMap<WebhookId, &Candidate> =
        candidates.values().flatten().map(|c| (c.id, c)).collect();
    let mut stored: Vec<&NewEvent> = Vec::with_capacity(news.len());
    let mut rows = DeliveryRows::default();
    let mut counts = HashMap::with_capacity(news.len());
    let mut handed: Vec<Option<Handed>> = Vec::with_capacity(news.len());
    let all_targets: Vec<Vec<WebhookId>> = news
        .iter()
        .map(|new| {
            let event = &new.event;
            let of_site = candidates
                .get(&event.site_id.to_string())
                .map_or(&[][..], Vec::as_slice);
            targets(
                of_site.iter().map(|c| (c.id, c.filters.as_slice())),
                &event.event_type,
                new.only_webhook,
            )
        })
        .collect();
    let mut sequence = reserve(tx, &by_id, &all_targets).await?;
    for (new, to) in news.iter().zip(all_targets) {
        let event = &new.event;
        let site = event.site_id.to_string();
        let mut offers = Handed::of(new);
        if to.is_empty() && needs_targets(new) {
            handed.push(None);
            continue;
        }
        counts.insert(
            event.id.to_string(),
            u32::try_from(to.len()).map_err(corrupt)?,
        );
        stored.push(new);
        for webhook in to {
            let id = DeliveryId::new(event.created_at);
            let candidate = by_id.get(&webhook);
            let admitted = match (offers.as_mut(), candidate) {
                (Some(offers), Some(c)) if !c.paused && c.ordering.hands_off() => {
                    offers.offer(Fresh {
                        delivery: id,
                        webhook,
                        site: event.site_id,
                        concurrency: c.concurrency,
                        rate_limit: c.rate_limit,
                    })
                }
                (Some(offers), Some(c)) if !c.paused => {
                    offers.leave_to_claims();
                    false
                }
                _ => false,
            };
            let lease = offers
                .as_ref()
                .filter(|_| admitted)
                .map(|o| event.created_at + o.lease());
            let ordering = candidate.map_or(Ordering::None, |c| c.ordering);
            let seq = sequence.next(webhook, ordering);
            rows.push(new, (id, seq), &site, webhook, lease);
        }
        handed.push(offers);
    }
    let inserted = if stored.is_empty() {
        HashSet::new()
    } else {
        insert(tx, &w.node, &stored, &rows).await?
    };
    store_sequence(tx, &sequence).await?;
    let mut ingested = Ingested::default();
    for (new, offers) in news.iter().zip(handed) {
        let id = new.event.id.to_string();
        let event = match counts.get(&id) {
            Some(&deliveries) if inserted.contains(&id) => (
                IngestOutcome::Created {
                    event_id: new.event.id,
                    deliveries,
                },
                offers,
            ),
            // A notice nobody takes: nothing stored, nothing to answer (the service
            // never asks).
            None => (
                IngestOutcome::Created {
                    event_id: new.event.id,
                    deliveries: 0,
                },
                None,
            ),
            // Its key was held: nothing stored, and what it admitted is given back.
            Some(_) => (earlier_event(tx, new).await?, None),
        };
        ingested.events.push(event);
    }
    for (_, offers) in &ingested.events {
        for fresh in offers.iter().flat_map(Handed::admitted) {
            if ingested.webhooks.contains_key(&fresh.webhook) {
                continue;
            }
            // A webhook whose row does not read (a secret that does not open) fails its
            // hand-off, not the batch: its delivery waits for its lease to end and a
            // claim, which reports the error.
            match by_id.get(&fresh.webhook).map(|c| webhook(&c.row, &w.key)) {
                Some(Ok(read)) => {
                    ingested.webhooks.insert(fresh.webhook, read);
                }
                Some(Err(err)) => {
                    tracing::error!(error = %err, webhook = %fresh.webhook, "a webhook of new deliveries does not read; they wait for a claim");
                }
                None => {}
            }
        }
    }
    Ok(ingested)
}

/// Locks the ordered webhooks among `targets` (in id order, so that two ingests never
/// wait for each other crosswise) and reads their last sequence numbers: the
/// [`Sequence`] to number their new deliveries with. The locks are held until the
/// caller's transaction ends, so a concurrent ingest to the same webhook numbers after
/// this one and commits after it.
async fn reserve(
    tx: &mut PgConnection,
    by_id: &HashMap<WebhookId, &Candidate>,
    targets: &[Vec<WebhookId>],
) -> StoreResult<Sequence> {
    let mut ordered: Vec<String> = targets
        .iter()
        .flatten()
        .filter(|w| by_id.get(w).is_some_and(|c| c.ordering.is_fifo()))
        .map(ToString::to_string)
        .collect();
    if ordered.is_empty() {
        return Ok(Sequence::default());
    }
    ordered.sort_unstable();
    ordered.dedup();
    let rows = sqlx::query(
        "SELECT id, next_seq FROM webhooks WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(&ordered)
    .fetch_all(&mut *tx)
    .await?;
    let last = rows
        .iter()
        .map(|row| {
            Ok((
                parsed(row, "id", WebhookId::parse)?,
                row.try_get("next_seq")?,
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Sequence::after(last))
}

/// Stores each ordered webhook's last sequence number (rows locked by [`reserve`]).
async fn store_sequence(tx: &mut PgConnection, sequence: &Sequence) -> StoreResult<()> {
    let (ids, last): (Vec<String>, Vec<i64>) =
        sequence.last().map(|(w, n)| (w.to_string(), n)).unzip();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE webhooks w SET next_seq = v.n FROM UNNEST($1::text[], $2::int8[]) AS v(id, n) \
         WHERE w.id = v.id",
    )
    .bind(&ids)
    .bind(&last)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// An enabled webhook an event may go to.
struct Candidate {
    id: WebhookId,
    filters: Vec<EventFilter>,
    paused: bool,
    concurrency: Option<u32>,
    rate_limit: Option<RateLimit>,
    ordering: Ordering,
    /// Its whole row, for a delivery handed over.
    row: PgRow,
}

/// The enabled webhooks of the events' sites, by site id.
async fn candidates(
    tx: &mut PgConnection,
    news: &[&NewEvent],
) -> StoreResult<HashMap<String, Vec<Candidate>>> {
    let sites: Vec<String> = news
        .iter()
        .map(|new| new.event.site_id.to_string())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let rows = sqlx::query("SELECT * FROM webhooks WHERE site_id = ANY($1) AND enabled = TRUE")
        .bind(&sites)
        .fetch_all(&mut *tx)
        .await?;
    let mut candidates: HashMap<String, Vec<Candidate>> = HashMap::new();
    for row in rows {
        let site: String = row.try_get("site_id")?;
        let concurrency: Option<i32> = row.try_get("concurrency_limit")?;
        let candidate = Candidate {
            id: parsed(&row, "id", WebhookId::parse)?,
            filters: filters(&row, "event_types")?,
            paused: row.try_get("paused")?,
            concurrency: concurrency.map(|c| u32::try_from(c).unwrap_or(0)),
            rate_limit: rate_limit(&row)?,
            ordering: parsed(&row, "ordering", Ordering::parse)?,
            row,
        };
        candidates.entry(site).or_default().push(candidate);
    }
    Ok(candidates)
}

/// Events `$1`…`$7`, then deliveries `$8`…`$12` (id, site, event, webhook, created),
/// then `$13` the channel, `$14` the node, `$15` each delivery's lease end when it
/// is handed over (else NULL), and `$16` its sequence number (0 if unordered): the events not held back by their idempotency key go in,
/// and the deliveries, queue rows and leases of those events only. Answers the inserted
/// events' ids, and a NULL row if it announced deliveries left to the claims (the
/// announcement is the main query's, since PostgreSQL runs a CTE that writes nothing
/// only if something reads it).
const INGEST_SQL: &str = "WITH e AS ( \
        INSERT INTO events (id, site_id, type, payload, created_at, idempotency_key, request_hash) \
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
                             $6::text[], $7::bytea[]) \
        ON CONFLICT (site_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
        RETURNING id), \
    v AS ( \
        SELECT v.* FROM UNNEST($8::text[], $9::text[], $10::text[], $11::text[], $12::int8[], \
                               $15::int8[], $16::int8[]) AS v(d, s, ev, w, t, until, seq) \
        WHERE v.ev IN (SELECT id FROM e)), \
    delivery AS ( \
        INSERT INTO deliveries (id, site_id, event_id, webhook_id, state, attempt_count, \
                                next_attempt_at, created_at, updated_at, attempt_started_at, seq) \
        SELECT d, s, ev, w, 'pending', CASE WHEN until IS NULL THEN 0 ELSE 1 END, t, t, t, \
               CASE WHEN until IS NULL THEN NULL ELSE t END, seq FROM v), \
    queued AS (INSERT INTO queue (delivery_id, webhook_id, due_at, seq) SELECT d, w, t, seq FROM v), \
    leased AS (INSERT INTO leases (delivery_id, webhook_id, site_id, until) \
               SELECT d, w, s, until FROM v WHERE until IS NOT NULL) \
    SELECT id FROM e \
    UNION ALL SELECT NULL FROM (SELECT pg_notify($13, $14) FROM v WHERE until IS NULL LIMIT 1) AS told";

/// Runs [`INGEST_SQL`]; returns the ids of the events inserted.
async fn insert(
    tx: &mut PgConnection,
    node: &str,
    news: &[&NewEvent],
    rows: &DeliveryRows,
) -> StoreResult<HashSet<String>> {
    let events = news.iter().map(|new| &new.event);
    let ids: Vec<Option<String>> = sqlx::query_scalar(INGEST_SQL)
        .bind(events.clone().map(|e| e.id.to_string()).collect::<Vec<_>>())
        .bind(
            events
                .clone()
                .map(|e| e.site_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .clone()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .clone()
                .map(|e| e.payload.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .clone()
                .map(|e| e.created_at.unix_ms())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .map(|e| e.idempotency_key.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            news.iter()
                .map(|new| &new.request_hash[..])
                .collect::<Vec<_>>(),
        )
        .bind(&rows.ids)
        .bind(&rows.sites)
        .bind(&rows.events)
        .bind(&rows.webhooks)
        .bind(&rows.created)
        .bind(DUE_CHANNEL)
        .bind(node)
        .bind(&rows.leases)
        .bind(&rows.seqs)
        .fetch_all(&mut *tx)
        .await?;
    Ok(ids.into_iter().flatten().collect())
}

/// The columns of the deliveries a batch creates.
#[derive(Default)]
struct DeliveryRows {
    ids: Vec<String>,
    sites: Vec<String>,
    events: Vec<String>,
    webhooks: Vec<String>,
    created: Vec<i64>,
    leases: Vec<Option<i64>>,
    seqs: Vec<i64>,
}

impl DeliveryRows {
    /// Adds the delivery `id` (with its sequence number) of `new` to `webhook`.
    fn push(
        &mut self,
        new: &NewEvent,
        (id, seq): (DeliveryId, i64),
        site: &str,
        webhook: WebhookId,
        lease: Option<Timestamp>,
    ) {
        let event = &new.event;
        self.ids.push(id.to_string());
        self.sites.push(site.to_owned());
        self.events.push(event.id.to_string());
        self.webhooks.push(webhook.to_string());
        self.created.push(event.created_at.unix_ms());
        self.leases.push(lease.map(Timestamp::unix_ms));
        self.seqs.push(seq);
    }
}

/// Records the attempts (of deliveries that still exist), their deliveries' next steps
/// (ending their leases, moving or removing their queue rows), and each webhook's health
/// after its attempts, in the order they were made: one statement, a health write for a
/// webhook whose health changed, and the service's own events they call for
/// ([`crate::domain::operational`]), ingested like any other.
async fn complete_batch(
    tx: &mut PgConnection,
    w: &Writer,
    done: &[(&Completion, Timestamp)],
) -> StoreResult<()> {
    // Rows are locked in id order, so two batches (of any nodes) cannot deadlock.
    let mut sorted: Vec<&(&Completion, Timestamp)> = done.iter().collect();
    sorted.sort_by_key(|(c, _)| c.attempt.delivery_id);
    let rows = outcomes(&sorted)?
        .bind_attempts(sqlx::query(COMPLETE_SQL), &sorted)?
        .fetch_all(&mut *tx)
        .await?;
    let mut read = HashMap::with_capacity(rows.len());
    for row in &rows {
        read.insert(row.try_get::<String, _>("id")?, site_and_health(row)?);
    }
    let mut by_webhook: BTreeMap<WebhookId, Vec<(&Completion, Timestamp)>> = BTreeMap::new();
    for (c, now) in done {
        by_webhook
            .entry(c.attempt.webhook_id)
            .or_default()
            .push((c, *now));
    }
    let mut notices = Vec::new();
    for (webhook, attempts) in by_webhook {
        // Deleted since the claim: no health to record.
        let Some(first) = read.remove(&webhook.to_string()) else {
            continue;
        };
        if let Some((site, told)) = record_health(tx, webhook, Some(first), &attempts).await? {
            let now = attempts.last().map_or(Timestamp::EPOCH, |(_, now)| *now);
            notices.extend(told.into_iter().map(|n| NewEvent::notice(site, n, now)));
        }
    }
    if !notices.is_empty() {
        let news: Vec<&NewEvent> = notices.iter().collect();
        let candidates = candidates(tx, &news).await?;
        ingest_batch(tx, w, &news, candidates).await?;
    }
    Ok(())
}

/// The attempts (`$7`…`$18`, of deliveries that still exist: those the update found),
/// the deliveries' next steps
/// (`$1` id, `$2` state, `$3` attempts made, `$4` next attempt or NULL, `$5` updated,
/// `$6` webhook): their leases end, a delivery due again has its queue row (moved to its
/// time), one that is done has none. Answers the site and health of the webhooks
/// concerned.
/// Each table is reached through `= ANY($1)` as well as the join, so the planner looks
/// the rows up by key whatever it guesses of the arrays' length (a join alone was planned
/// as a scan of the whole table).
const COMPLETE_SQL: &str = "WITH v AS ( \
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::int8[], $5::int8[], $6::text[]) \
            AS v(id, state, n, next, updated, webhook)), \
    delivery AS ( \
        UPDATE deliveries d SET \
               state = CASE WHEN d.state = 'cancelled' AND v.state = 'pending' THEN 'cancelled' \
                            ELSE v.state END, \
               attempt_count = v.n, \
               next_attempt_at = CASE WHEN d.state = 'cancelled' THEN NULL ELSE v.next END, \
               updated_at = v.updated, attempt_started_at = NULL \
        FROM v WHERE d.id = v.id AND d.id = ANY($1) RETURNING d.id, d.seq, d.state), \
    attempt AS ( \
        INSERT INTO attempts (id, delivery_id, webhook_id, attempt_number, started_at, \
                              duration_ms, status_code, error_kind, error_message, response_body, \
                              request_headers, response_headers) \
        SELECT a.* FROM UNNEST($7::text[], $8::text[], $9::text[], $10::int4[], $11::int8[], \
                               $12::int8[], $13::int4[], $14::text[], $15::text[], $16::text[], \
                               $17::text[], $18::text[]) \
             AS a(id, delivery_id, webhook_id, attempt_number, started_at, duration_ms, \
                  status_code, error_kind, error_message, response_body, request_headers, \
                  response_headers) \
        JOIN delivery ON delivery.id = a.delivery_id), \
    lease AS (DELETE FROM leases WHERE delivery_id = ANY($1)), \
    done AS (DELETE FROM queue q USING v \
             WHERE q.delivery_id = ANY($1) AND q.delivery_id = v.id AND v.next IS NULL), \
    again AS ( \
        INSERT INTO queue (delivery_id, webhook_id, due_at, seq) \
        SELECT v.id, v.webhook, v.next, delivery.seq FROM v JOIN delivery ON delivery.id = v.id \
        WHERE v.next IS NOT NULL AND delivery.state = 'pending' \
        ON CONFLICT (delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at) \
    SELECT id, site_id, enabled, disabled_reason, failing_since, concurrency_limit FROM webhooks \
    WHERE id = ANY($6) AND deleted_at IS NULL";

/// The columns of the deliveries' next steps.
struct Outcomes {
    ids: Vec<String>,
    states: Vec<&'static str>,
    counts: Vec<i32>,
    next: Vec<Option<i64>>,
    updated: Vec<i64>,
    webhooks: Vec<String>,
}

fn outcomes(done: &[&(&Completion, Timestamp)]) -> StoreResult<Outcomes> {
    let mut o = Outcomes {
        ids: Vec::with_capacity(done.len()),
        states: Vec::with_capacity(done.len()),
        counts: Vec::with_capacity(done.len()),
        next: Vec::with_capacity(done.len()),
        updated: Vec::with_capacity(done.len()),
        webhooks: Vec::with_capacity(done.len()),
    };
    for (c, now) in done {
        let (state, next_at) = delivery_after(c.next);
        o.ids.push(c.attempt.delivery_id.to_string());
        o.states.push(state.as_str());
        o.counts
            .push(i32::try_from(c.attempt.attempt_number).map_err(corrupt)?);
        o.next.push(next_at.map(Timestamp::unix_ms));
        o.updated.push(now.unix_ms());
        o.webhooks.push(c.attempt.webhook_id.to_string());
    }
    Ok(o)
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl Outcomes {
    /// Binds `$1`…`$6`, then the attempts as `$7`…`$18`.
    fn bind_attempts<'q>(
        self,
        q: PgQuery<'q>,
        done: &[&(&'q Completion, Timestamp)],
    ) -> StoreResult<PgQuery<'q>> {
        let attempts = done.iter().map(|(c, _)| &c.attempt);
        let numbers = attempts
            .clone()
            .map(|a| i32::try_from(a.attempt_number).map_err(corrupt))
            .collect::<StoreResult<Vec<_>>>()?;
        let durations: Vec<i64> = attempts
            .clone()
            .map(|a| i64::try_from(a.duration.as_millis()).unwrap_or(i64::MAX))
            .collect();
        Ok(q.bind(self.ids)
            .bind(self.states)
            .bind(self.counts)
            .bind(self.next)
            .bind(self.updated)
            .bind(self.webhooks)
            .bind(
                attempts
                    .clone()
                    .map(|a| a.id.to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(
                attempts
                    .clone()
                    .map(|a| a.delivery_id.to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(
                attempts
                    .clone()
                    .map(|a| a.webhook_id.to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(numbers)
            .bind(
                attempts
                    .clone()
                    .map(|a| a.started_at.unix_ms())
                    .collect::<Vec<_>>(),
            )
            .bind(durations)
            .bind(
                attempts
                    .clone()
                    .map(|a| a.status_code.map(i32::from))
                    .collect::<Vec<_>>(),
            )
            .bind(
                attempts
                    .clone()
                    .map(|a| a.error_kind.map(ErrorKind::as_str))
                    .collect::<Vec<_>>(),
            )
            .bind(
                attempts
                    .clone()
                    .map(|a| a.error_message.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                attempts
                    .clone()
                    .map(|a| a.response_body.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                attempts
                    .clone()
                    .map(|a| a.request_headers.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                attempts
                    .map(|a| a.response_headers.as_str())
                    .collect::<Vec<_>>(),
            ))
    }
}
