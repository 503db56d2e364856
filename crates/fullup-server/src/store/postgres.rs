//! The shared store: one PostgreSQL database that several `fullup serve` nodes use at
//! once, with no coordinator between them.
//!
//! What makes sharing safe: ingest claims its idempotency key with the insert itself
//! (`ON CONFLICT`), a delivery is leased by one `UPDATE` whose rows are picked
//! `FOR NO KEY UPDATE SKIP LOCKED`, every multi-row write is one transaction, and leases
//! survive a node's restart (they may belong to another node; an expired one is claimed
//! again by the normal claim). Each node keeps a pool of [`POOL_CONNECTIONS`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::QueryBuilder;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::filters;
use super::{
    ClaimedDelivery, Completion, DeliveryFilter, EventFilterQuery, IngestOutcome, NewEvent, Page,
    PageRequest, Store, StoreResult,
};
use crate::crypto::MainKey;
use crate::domain::ids::{ApiKeyId, DeliveryId, EventId, SiteId, WebhookId};
use crate::domain::models::{ApiKey, Attempt, Delivery, Event, Site, Webhook};
use crate::store::sealing::seal_secrets;
use fullup_signature::Secret;

mod rows;
mod secrets;
mod writes;

use rows::{
    api_key_from_row, attempt_from_row, delivery_from_row, event_from_row, fetch_page,
    filters_json, site_from_row, webhook_from_row,
};

/// Connections each node keeps at most: the API's queries and the dispatcher's claims
/// and completions are short transactions, so 16 serve hundreds of attempts in flight;
/// PostgreSQL's default `max_connections` (100) leaves room for several nodes.
pub const POOL_CONNECTIONS: u32 = 16;
/// How long a query waits for a free connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The PostgreSQL implementation of [`Store`]. Webhook secrets are sealed under `key`.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    key: Arc<MainKey>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`; it
    /// must exist), runs migrations (safe from several nodes at once: they take an
    /// advisory lock) and checks that `key` is the database's main key.
    pub async fn open(url: &str, key: MainKey) -> StoreResult<Self> {
        // Notices ("relation … already exists, skipping" at every start) are not news.
        let options =
            PgConnectOptions::from_str(url)?.options([("client_min_messages", "warning")]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        let store = Self {
            pool,
            key: Arc::new(key),
        };
        if let Err(err) = store.prepare().await {
            store.pool.close().await;
            return Err(err);
        }
        Ok(store)
    }

    async fn prepare(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        self.check_main_key().await
    }
}

#[async_trait]
impl Store for PgStore {
    async fn get_setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn add_setting(&self, key: &str, value: &[u8]) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_site(&self, site: &Site) -> StoreResult<()> {
        sqlx::query("INSERT INTO sites (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)")
            .bind(site.id.to_string())
            .bind(&site.name)
            .bind(site.created_at)
            .bind(site.updated_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_site(&self, id: SiteId) -> StoreResult<Option<Site>> {
        sqlx::query("SELECT * FROM sites WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(site_from_row)
            .transpose()
    }

    async fn list_sites(&self, page: &PageRequest) -> StoreResult<Page<Site>> {
        let q = QueryBuilder::new("SELECT * FROM sites WHERE TRUE");
        fetch_page(q, &self.pool, page, "id", site_from_row, |s| {
            s.id.to_string()
        })
        .await
    }

    async fn rename_site(&self, id: SiteId, name: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE sites SET name = $1, updated_at = $2 WHERE id = $3")
            .bind(name)
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_site(&self, id: SiteId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sites WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_keys (id, site_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(key.id.to_string())
            .bind(key.site_id.to_string())
            .bind(&key.name)
            .bind(&key.token_hash[..])
            .bind(key.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_api_key(&self, token_hash: &[u8; 32]) -> StoreResult<Option<ApiKey>> {
        sqlx::query("SELECT * FROM api_keys WHERE token_hash = $1")
            .bind(&token_hash[..])
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(api_key_from_row)
            .transpose()
    }

    async fn list_api_keys(&self, site: SiteId, page: &PageRequest) -> StoreResult<Page<ApiKey>> {
        let mut q = QueryBuilder::new("SELECT * FROM api_keys WHERE site_id = ");
        q.push_bind(site.to_string());
        fetch_page(q, &self.pool, page, "id", api_key_from_row, |k| {
            k.id.to_string()
        })
        .await
    }

    async fn delete_api_key(&self, site: SiteId, id: ApiKeyId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND site_id = $2")
            .bind(id.to_string())
            .bind(site.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_webhook(&self, w: &Webhook) -> StoreResult<()> {
        let sealed = seal_secrets(&self.key, w)?;
        sqlx::query(
            "INSERT INTO webhooks (id, site_id, url, event_types, description, enabled, disabled_reason, paused, \
             secret_sealed, old_secrets_sealed, failing_since, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(w.id.to_string())
        .bind(w.site_id.to_string())
        .bind(&w.url)
        .bind(filters_json(&w.event_types))
        .bind(&w.description)
        .bind(w.enabled)
        .bind(&w.disabled_reason)
        .bind(w.paused)
        .bind(sealed.current.into_bytes())
        .bind(sealed.old.map(String::into_bytes))
        .bind(w.failing_since)
        .bind(w.created_at)
        .bind(w.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_webhook(&self, site: SiteId, id: WebhookId) -> StoreResult<Option<Webhook>> {
        sqlx::query("SELECT * FROM webhooks WHERE id = $1 AND site_id = $2")
            .bind(id.to_string())
            .bind(site.to_string())
            .fetch_optional(&self.pool)
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
            &self.pool,
            page,
            "id",
            |row| webhook_from_row(row, key),
            |w| w.id.to_string(),
        )
        .await
    }

    async fn count_webhooks(&self, site: SiteId) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE site_id = $1")
            .bind(site.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn update_webhook(&self, w: &Webhook) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE webhooks SET url = $1, event_types = $2, description = $3, enabled = $4, disabled_reason = $5, \
             paused = $6, failing_since = $7, updated_at = $8 WHERE id = $9 AND site_id = $10",
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
        .execute(&self.pool)
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

    /// Deletes the deliveries before the webhook (the cascade would do it after), so
    /// rows are locked in the order `complete` locks them, delivery then webhook, and
    /// a delete racing an attempt's record cannot deadlock with it.
    async fn delete_webhook(&self, site: SiteId, id: WebhookId) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM deliveries WHERE webhook_id = $1 AND site_id = $2")
            .bind(id.to_string())
            .bind(site.to_string())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND site_id = $2")
            .bind(id.to_string())
            .bind(site.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn ingest(&self, new: &NewEvent) -> StoreResult<IngestOutcome> {
        writes::ingest(&self.pool, new).await
    }

    async fn get_event(&self, site: SiteId, id: EventId) -> StoreResult<Option<Event>> {
        sqlx::query("SELECT * FROM events WHERE id = $1 AND site_id = $2")
            .bind(id.to_string())
            .bind(site.to_string())
            .fetch_optional(&self.pool)
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
        let q = filters::events(site, f);
        fetch_page(q, &self.pool, page, "id", event_from_row, |e| {
            e.id.to_string()
        })
        .await
    }

    async fn get_delivery(&self, site: SiteId, id: DeliveryId) -> StoreResult<Option<Delivery>> {
        sqlx::query("SELECT * FROM deliveries WHERE id = $1 AND site_id = $2")
            .bind(id.to_string())
            .bind(site.to_string())
            .fetch_optional(&self.pool)
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
        let q = filters::deliveries(site, f);
        fetch_page(q, &self.pool, page, "id", delivery_from_row, |d| {
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
        // A live lease stays: the attempt in flight (on whichever node) decides what
        // happens next, and no second attempt of the same delivery runs beside it.
        sqlx::query(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, updated_at = $1, \
             lease_until = CASE WHEN lease_until > $1 THEN lease_until END \
             WHERE id = $2 AND site_id = $3 RETURNING *",
        )
        .bind(now)
        .bind(id.to_string())
        .bind(site.to_string())
        .fetch_optional(&self.pool)
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
            "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, lease_until = NULL, updated_at = $1 \
             WHERE site_id = $2 AND webhook_id = $3 AND state = 'failed' AND created_at >= $4 AND created_at < $5",
        )
        .bind(now)
        .bind(site.to_string())
        .bind(webhook.to_string())
        .bind(since)
        .bind(until)
        .execute(&self.pool)
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
        fetch_page(q, &self.pool, page, "a.id", attempt_from_row, |a| {
            a.id.to_string()
        })
        .await
    }

    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
        _per_webhook: u32,
        skip: &[WebhookId],
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        writes::claim_due(&self.pool, &self.key, now, lease_until, limit, skip).await
    }

    async fn complete(&self, c: &Completion, now: i64) -> StoreResult<()> {
        writes::complete(&self.pool, c, now).await
    }

    async fn release_claims(&self, ids: &[DeliveryId]) -> StoreResult<()> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        sqlx::query("UPDATE deliveries SET lease_until = NULL WHERE id = ANY($1::text[])")
            .bind(&ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Keeps every lease: other nodes may hold them. A lease of a node that died ends
    /// on its own, and the normal claim takes the delivery then.
    async fn recover_after_restart(&self) -> StoreResult<u64> {
        Ok(0)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
