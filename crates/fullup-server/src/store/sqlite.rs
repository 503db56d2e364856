//! The embedded store: one SQLite file, so `fullup serve` runs with no other server.
//!
//! Writes go through a pool of exactly one connection, so they queue in-process instead
//! of failing with `SQLITE_BUSY`; reads use a separate pool and see WAL snapshots.
//! `synchronous=FULL`: an event is on disk before ingest answers 202.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row};

use super::{
    ClaimedDelivery, Completion, DeliveryFilter, EventFilterQuery, IngestOutcome, NewEvent, Page,
    PageRequest, Store, StoreError, StoreResult,
};
use crate::crypto::MainKey;
use crate::domain::ids::{ApiKeyId, DeliveryId, EventId, SiteId, WebhookId};
use crate::domain::models::{ApiKey, Attempt, Delivery, Event, Site, Webhook};
use fullup_signature::Secret;

mod batch;
mod rows;
mod secrets;

use batch::{BatchWriter, WriteJob, Written};

use rows::{
    api_key_from_row, attempt_from_row, corrupt, delivery_from_row, event_from_row, fetch_page,
    filters_json, parse_id, site_from_row, webhook_from_row,
};

/// How long a connection waits for a lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Readers: enough for the API's concurrent queries; SQLite reads do not block writes in WAL.
const READ_CONNECTIONS: u32 = 4;

/// The SQLite implementation of [`Store`]. Webhook secrets are sealed under `key`.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    key: Arc<MainKey>,
    /// Group-commits ingests and attempt completions.
    batch: BatchWriter,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or
    /// `sqlite:path`), runs migrations, checks that `key` is the database's main key
    /// and seals any secret still stored in clear.
    pub async fn open(url: &str, key: MainKey) -> StoreResult<Self> {
        // secure_delete: bytes of deleted or rewritten rows are zeroed, not left in free space.
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("secure_delete", "ON");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(options.read_only(true))
            .await?;
        let store = Self {
            batch: BatchWriter::spawn(writer.clone()),
            writer,
            reader,
            key: Arc::new(key),
        };
        store.check_main_key().await?;
        let sealed = store.seal_legacy_secrets().await?;
        if sealed > 0 {
            tracing::info!(
                webhooks = sealed,
                "sealed webhook secrets stored in clear by an earlier version"
            );
        }
        Ok(store)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get_setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn create_site(&self, site: &Site) -> StoreResult<()> {
        sqlx::query("INSERT INTO sites (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)")
            .bind(site.id.to_string())
            .bind(&site.name)
            .bind(site.created_at)
            .bind(site.updated_at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn get_site(&self, id: SiteId) -> StoreResult<Option<Site>> {
        sqlx::query("SELECT * FROM sites WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(site_from_row)
            .transpose()
    }

    async fn list_sites(&self, page: &PageRequest) -> StoreResult<Page<Site>> {
        let q = QueryBuilder::new("SELECT * FROM sites WHERE 1 = 1");
        fetch_page(q, &self.reader, page, "id", site_from_row, |s| {
            s.id.to_string()
        })
        .await
    }

    async fn rename_site(&self, id: SiteId, name: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE sites SET name = ?, updated_at = ? WHERE id = ?")
            .bind(name)
            .bind(now)
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_site(&self, id: SiteId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sites WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_keys (id, site_id, name, token_hash, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(key.id.to_string())
            .bind(key.site_id.to_string())
            .bind(&key.name)
            .bind(&key.token_hash[..])
            .bind(key.created_at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn find_api_key(&self, token_hash: &[u8; 32]) -> StoreResult<Option<ApiKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE token_hash = ?")
            .bind(&token_hash[..])
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(api_key_from_row)
            .transpose()
    }

    async fn list_api_keys(&self, site: SiteId, page: &PageRequest) -> StoreResult<Page<ApiKey>> {
        let mut q = QueryBuilder::new("SELECT * FROM api_keys WHERE site_id = ");
        q.push_bind(site.to_string());
        fetch_page(q, &self.reader, page, "id", api_key_from_row, |k| {
            k.id.to_string()
        })
        .await
    }

    async fn delete_api_key(&self, site: SiteId, id: ApiKeyId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = ? AND site_id = ?")
            .bind(id.to_string())
            .bind(site.to_string())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_webhook(&self, w: &Webhook) -> StoreResult<()> {
        let sealed = secrets::seal_secrets(&self.key, w)?;
        sqlx::query(
            "INSERT INTO webhooks (id, site_id, url, event_types, description, enabled, disabled_reason, paused, secret, \
             secret_sealed, old_secrets_sealed, failing_since, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?)",
        )
        .bind(w.id.to_string())
        .bind(w.site_id.to_string())
        .bind(&w.url)
        .bind(filters_json(&w.event_types))
        .bind(&w.description)
        .bind(w.enabled)
        .bind(&w.disabled_reason)
        .bind(w.paused)
        .bind(sealed.current)
        .bind(sealed.old)
        .bind(w.failing_since)
        .bind(w.created_at)
        .bind(w.updated_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_webhook(&self, site: SiteId, id: WebhookId) -> StoreResult<Option<Webhook>> {
        sqlx::query("SELECT * FROM webhooks WHERE id = ? AND site_id = ?")
            .bind(id.to_string())
            .bind(site.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(|row| webhook_from_row(row, &self.key))
            .transpose()
    }

    async fn list_webhooks(&self, site: SiteId, page: &PageRequest) -> StoreResult<Page<Webhook>> {
        let mut q = QueryBuilder::new("SELECT * FROM webhooks WHERE site_id = ");
        q.push_bind(site.to_string());
        let key = &self.key;
        fetch_page(
            q,
            &self.reader,
            page,
            "id",
            |row| webhook_from_row(row, key),
            |w| w.id.to_string(),
        )
        .await
    }

    async fn count_webhooks(&self, site: SiteId) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE site_id = ?")
            .bind(site.to_string())
            .fetch_one(&self.reader)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn update_webhook(&self, w: &Webhook) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE webhooks SET url = ?, event_types = ?, description = ?, enabled = ?, disabled_reason = ?, \
             paused = ?, failing_since = ?, updated_at = ? WHERE id = ? AND site_id = ?",
        )
        .bind(&w.url)
        .bind(filters_json(&w.event_types))
        .bind(&w.description)
        .bind(w.enabled)
        .bind(&w.disabled_reason)
        .bind(w.paused)
        .bind(w.failing_since)
        .bind(w.updated_at)
        .bind(w.id.to_string())
        .bind(w.site_id.to_string())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn rotate_webhook_secret(
        &self,
        site: SiteId,
        id: WebhookId,
        new: Secret,
        grace_ms: i64,
        now: i64,
    ) -> StoreResult<Option<Webhook>> {
        self.rotate_secret_atomically(site, id, new, grace_ms, now)
            .await
    }

    async fn delete_webhook(&self, site: SiteId, id: WebhookId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = ? AND site_id = ?")
            .bind(id.to_string())
            .bind(site.to_string())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn ingest(&self, new: &NewEvent) -> StoreResult<IngestOutcome> {
        match self.batch.submit(WriteJob::Ingest(new.clone())).await? {
            Written::Ingested(outcome) => Ok(outcome),
            Written::Completed => Err(StoreError::WriteFailed("unexpected batch answer".into())),
        }
    }

    async fn get_event(&self, site: SiteId, id: EventId) -> StoreResult<Option<Event>> {
        sqlx::query("SELECT * FROM events WHERE id = ? AND site_id = ?")
            .bind(id.to_string())
            .bind(site.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(event_from_row)
            .transpose()
    }

    async fn list_events(
        &self,
        site: SiteId,
        f: &EventFilterQuery,
        page: &PageRequest,
    ) -> StoreResult<Page<Event>> {
        let mut q = QueryBuilder::new("SELECT * FROM events WHERE site_id = ");
        q.push_bind(site.to_string());
        if let Some(t) = &f.event_type {
            q.push(" AND type = ").push_bind(t.clone());
        }
        if let Some(since) = f.since {
            q.push(" AND created_at >= ").push_bind(since);
        }
        if let Some(until) = f.until {
            q.push(" AND created_at < ").push_bind(until);
        }
        fetch_page(q, &self.reader, page, "id", event_from_row, |e| {
            e.id.to_string()
        })
        .await
    }

    async fn get_delivery(&self, site: SiteId, id: DeliveryId) -> StoreResult<Option<Delivery>> {
        sqlx::query("SELECT * FROM deliveries WHERE id = ? AND site_id = ?")
            .bind(id.to_string())
            .bind(site.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(delivery_from_row)
            .transpose()
    }

    async fn list_deliveries(
        &self,
        site: SiteId,
        f: &DeliveryFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        let mut q = QueryBuilder::new("SELECT * FROM deliveries WHERE site_id = ");
        q.push_bind(site.to_string());
        if let Some(e) = f.event_id {
            q.push(" AND event_id = ").push_bind(e.to_string());
        }
        if let Some(w) = f.webhook_id {
            q.push(" AND webhook_id = ").push_bind(w.to_string());
        }
        if let Some(s) = f.state {
            q.push(" AND state = ").push_bind(s.as_str());
        }
        if let Some(since) = f.since {
            q.push(" AND created_at >= ").push_bind(since);
        }
        if let Some(until) = f.until {
            q.push(" AND created_at < ").push_bind(until);
        }
        fetch_page(q, &self.reader, page, "id", delivery_from_row, |d| {
            d.id.to_string()
        })
        .await
    }

    async fn retry_delivery(
        &self,
        site: SiteId,
        id: DeliveryId,
        now: i64,
    ) -> StoreResult<Option<Delivery>> {
        // A live lease stays: the attempt in flight decides what happens next, and no
        // second attempt of the same delivery runs beside it.
        sqlx::query(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?1, updated_at = ?1, \
             lease_until = CASE WHEN lease_until > ?1 THEN lease_until END \
             WHERE id = ?2 AND site_id = ?3 RETURNING *",
        )
        .bind(now)
        .bind(id.to_string())
        .bind(site.to_string())
        .fetch_optional(&self.writer)
        .await?
        .as_ref()
        .map(delivery_from_row)
        .transpose()
    }

    async fn recover_deliveries(
        &self,
        site: SiteId,
        webhook: WebhookId,
        since: i64,
        until: i64,
        now: i64,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, lease_until = NULL, updated_at = ? \
             WHERE site_id = ? AND webhook_id = ? AND state = 'failed' AND created_at >= ? AND created_at < ?",
        )
        .bind(now)
        .bind(now)
        .bind(site.to_string())
        .bind(webhook.to_string())
        .bind(since)
        .bind(until)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn list_attempts(
        &self,
        site: SiteId,
        delivery: DeliveryId,
        page: &PageRequest,
    ) -> StoreResult<Page<Attempt>> {
        let mut q = QueryBuilder::new(
            "SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.site_id = ",
        );
        q.push_bind(site.to_string())
            .push(" AND a.delivery_id = ")
            .push_bind(delivery.to_string());
        fetch_page(q, &self.reader, page, "a.id", attempt_from_row, |a| {
            a.id.to_string()
        })
        .await
    }

    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
        skip: &[WebhookId],
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let skip = serde_json::to_string(&skip.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(corrupt)?;
        let mut tx = self.writer.begin().await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE deliveries SET lease_until = ?1 WHERE id IN ( \
                SELECT d.id FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                WHERE d.state = 'pending' AND d.next_attempt_at <= ?2 \
                  AND (d.lease_until IS NULL OR d.lease_until <= ?2) AND w.enabled = 1 AND w.paused = 0 \
                  AND d.webhook_id NOT IN (SELECT value FROM json_each(?3)) \
                ORDER BY d.next_attempt_at LIMIT ?4) RETURNING id",
        )
        .bind(lease_until)
        .bind(now)
        .bind(skip)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT d.id AS delivery_id, d.attempt_count, e.id AS event_id, e.type AS event_type, e.payload, w.* \
             FROM deliveries d JOIN events e ON e.id = d.event_id JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.id IN (SELECT value FROM json_each(?)) ORDER BY d.next_attempt_at",
        )
        .bind(serde_json::to_string(&ids).map_err(corrupt)?)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                let attempts: i64 = row.try_get("attempt_count")?;
                Ok(ClaimedDelivery {
                    delivery_id: parse_id(row, "delivery_id", DeliveryId::parse)?,
                    attempt_count: u32::try_from(attempts).map_err(corrupt)?,
                    event_id: parse_id(row, "event_id", EventId::parse)?,
                    event_type: row.try_get("event_type")?,
                    payload: row.try_get("payload")?,
                    webhook: webhook_from_row(row, &self.key)?,
                })
            })
            .collect()
    }

    async fn complete(&self, c: &Completion, now: i64) -> StoreResult<()> {
        self.batch
            .submit(WriteJob::Complete(c.clone(), now))
            .await
            .map(drop)
    }

    async fn release_claims(&self, ids: &[DeliveryId]) -> StoreResult<()> {
        let ids = serde_json::to_string(&ids.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(corrupt)?;
        sqlx::query(
            "UPDATE deliveries SET lease_until = NULL WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(ids)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn recover_after_restart(&self) -> StoreResult<u64> {
        let done = sqlx::query("UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL AND state = 'pending'")
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
