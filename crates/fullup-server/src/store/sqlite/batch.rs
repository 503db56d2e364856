//! Group commit: concurrent ingests and attempt completions share one transaction, so
//! one fsync covers many of them.
//!
//! A single task owns the write path. It takes every job waiting (up to
//! [`MAX_BATCH`]), runs each inside its own savepoint (one job's failure does not undo
//! the others), commits once, and only then answers each caller. An answer therefore
//! always means "on disk": ingest still says 202 only after a durable commit.

use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Acquire as _, Row};
use tokio::sync::{mpsc, oneshot};

use super::rows::{corrupt, parse_id};
use crate::domain::event_type::{EventFilter, any_matches};
use crate::domain::ids::{DeliveryId, EventId, WebhookId};
use crate::domain::models::{DeliveryState, ErrorKind};
use crate::store::{
    Completion, IngestOutcome, NewEvent, NextStep, StoreError, StoreResult, WebhookEffect,
};

/// Most jobs in one transaction: enough to amortise the fsync, small enough that a
/// batch's latency stays a few milliseconds.
pub const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer before callers wait to enqueue (backpressure).
const QUEUE_DEPTH: usize = 4096;

/// One write.
#[derive(Debug)]
pub enum WriteJob {
    /// Store an event and its deliveries.
    Ingest(NewEvent),
    /// Record an attempt, at this time.
    Complete(Completion, i64),
}

/// What a job wrote.
#[derive(Debug)]
pub enum Written {
    /// The event's outcome.
    Ingested(IngestOutcome),
    /// The attempt was recorded.
    Completed,
}

type Reply = oneshot::Sender<StoreResult<Written>>;

/// The handle callers submit jobs through.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    queue: mpsc::Sender<(WriteJob, Reply)>,
}

impl BatchWriter {
    /// Starts the writer task on `pool` (the single writer connection).
    pub fn spawn(pool: SqlitePool) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(pool, rx));
        Self { queue }
    }

    /// Runs `job` in the next batch; answers once that batch is committed.
    pub async fn submit(&self, job: WriteJob) -> StoreResult<Written> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((job, reply))
            .await
            .map_err(|_| StoreError::WriteFailed("the writer task has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::WriteFailed("the writer task dropped the job".into()))?
    }
}

async fn run(pool: SqlitePool, mut rx: mpsc::Receiver<(WriteJob, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match write_batch(&pool, &batch).await {
            Ok(results) => {
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, jobs = batch.len(), "a write batch failed");
                let message = err.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(StoreError::WriteFailed(message.clone())));
                }
            }
        }
    }
}

/// One transaction for the whole batch, one savepoint per job.
async fn write_batch(
    pool: &SqlitePool,
    batch: &[(WriteJob, Reply)],
) -> StoreResult<Vec<StoreResult<Written>>> {
    let mut tx = pool.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for (job, _) in batch {
        let mut savepoint = tx.begin().await?;
        let conn = savepoint.acquire().await?;
        let result = match job {
            WriteJob::Ingest(new) => ingest_one(conn, new).await.map(Written::Ingested),
            WriteJob::Complete(c, now) => complete_one(conn, c, *now)
                .await
                .map(|()| Written::Completed),
        };
        if result.is_ok() {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
        results.push(result);
    }
    tx.commit().await?;
    Ok(results)
}

/// Stores one event and its deliveries inside the batch's transaction.
async fn ingest_one(tx: &mut SqliteConnection, new: &NewEvent) -> StoreResult<IngestOutcome> {
    let event = &new.event;
    if let Some(key) = &event.idempotency_key {
        let earlier = sqlx::query(
            "SELECT id, request_hash FROM events WHERE site_id = ? AND idempotency_key = ?",
        )
        .bind(event.site_id.to_string())
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = earlier {
            let hash: Vec<u8> = row.try_get("request_hash")?;
            return Ok(IngestOutcome::Duplicate {
                event_id: parse_id(&row, "id", EventId::parse)?,
                same_request: hash == new.request_hash,
            });
        }
    }
    sqlx::query("INSERT INTO events (id, site_id, type, payload, created_at, idempotency_key, request_hash) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind(event.id.to_string())
        .bind(event.site_id.to_string())
        .bind(&event.event_type)
        .bind(&event.payload)
        .bind(event.created_at)
        .bind(&event.idempotency_key)
        .bind(&new.request_hash[..])
        .execute(&mut *tx)
        .await?;
    let rows =
        sqlx::query("SELECT id, event_types FROM webhooks WHERE site_id = ? AND enabled = 1")
            .bind(event.site_id.to_string())
            .fetch_all(&mut *tx)
            .await?;
    let mut deliveries = 0u32;
    for row in rows {
        let id = parse_id(&row, "id", WebhookId::parse)?;
        let wanted = match new.only_webhook {
            Some(only) => only == id,
            None => {
                let filters: String = row.try_get("event_types")?;
                let filters: Vec<EventFilter> = serde_json::from_str(&filters).map_err(corrupt)?;
                any_matches(&filters, &event.event_type)
            }
        };
        if !wanted {
            continue;
        }
        sqlx::query(
            "INSERT INTO deliveries (id, site_id, event_id, webhook_id, state, attempt_count, next_attempt_at, lease_until, created_at, updated_at) \
             VALUES (?, ?, ?, ?, 'pending', 0, ?, NULL, ?, ?)",
        )
        .bind(DeliveryId::new(event.created_at).to_string())
        .bind(event.site_id.to_string())
        .bind(event.id.to_string())
        .bind(id.to_string())
        .bind(event.created_at)
        .bind(event.created_at)
        .bind(event.created_at)
        .execute(&mut *tx)
        .await?;
        deliveries += 1;
    }
    Ok(IngestOutcome::Created {
        event_id: event.id,
        deliveries,
    })
}

/// Records one attempt and its consequences inside the batch's transaction.
async fn complete_one(tx: &mut SqliteConnection, c: &Completion, now: i64) -> StoreResult<()> {
    let a = &c.attempt;
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, webhook_id, attempt_number, started_at, duration_ms, status_code, error_kind, error_message, response_body) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(a.id.to_string())
    .bind(a.delivery_id.to_string())
    .bind(a.webhook_id.to_string())
    .bind(i64::from(a.attempt_number))
    .bind(a.started_at)
    .bind(a.duration_ms)
    .bind(a.status_code.map(i64::from))
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
        "UPDATE deliveries SET state = ?, attempt_count = ?, next_attempt_at = ?, lease_until = NULL, updated_at = ? WHERE id = ?",
    )
    .bind(state.as_str())
    .bind(i64::from(a.attempt_number))
    .bind(next_at)
    .bind(now)
    .bind(a.delivery_id.to_string())
    .execute(&mut *tx)
    .await?;
    let webhook = a.webhook_id.to_string();
    match &c.webhook {
        WebhookEffect::Healthy => {
            sqlx::query("UPDATE webhooks SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL")
                .bind(&webhook)
                .execute(&mut *tx)
                .await?;
        }
        WebhookEffect::Failing {
            disable_if_failing_since,
        } => {
            sqlx::query(
                "UPDATE webhooks SET failing_since = COALESCE(failing_since, ?) WHERE id = ?",
            )
            .bind(a.started_at)
            .bind(&webhook)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE webhooks SET enabled = 0, updated_at = ?, disabled_reason = 'every attempt failed since ' || \
                 strftime('%Y-%m-%dT%H:%M:%SZ', failing_since / 1000, 'unixepoch') \
                 WHERE id = ? AND enabled = 1 AND failing_since <= ?",
            )
            .bind(now)
            .bind(&webhook)
            .bind(disable_if_failing_since)
            .execute(&mut *tx)
            .await?;
        }
        WebhookEffect::Disable(reason) => {
            sqlx::query(
                "UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?",
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
