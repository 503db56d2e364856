//! The shared store: one PostgreSQL database that several `fullup serve` nodes use at
//! once, with no coordinator between them.
//!
//! What makes sharing safe: ingest claims its idempotency key with the insert itself
//! (`ON CONFLICT`), a delivery is leased by one statement whose rows are picked
//! `FOR NO KEY UPDATE SKIP LOCKED` and whose lease rows are inserted with `ON CONFLICT`
//! (the `leases` table, migration 0004), every multi-row write is one transaction,
//! ingests and completions are committed in groups ([`batch`]), and leases
//! survive a node's restart (they may belong to another node; an expired one is claimed
//! again by the normal claim). Each node keeps a pool of [`POOL_CONNECTIONS`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::Notify;

use super::reads::impl_reads;
use super::rows::filters_json;
use super::rows::postgres::{api_key, delivery};
use super::{
    Claim, ClaimedDelivery, Completion, DeliveryQueue, IngestOutcome, NewEvent, PruneBatch, Pruned,
    Recovery, SecretRotation, Store, StoreResult, StoreSettings, sql,
};
use crate::crypto::MainKey;
use crate::domain::catalog::EventTypeEntry;
use crate::domain::ids::{ApiKeyId, DeliveryId, SiteId, WebhookId};
use crate::domain::models::{ApiKey, Attempt, Delivery, ErrorKind, Site};
use crate::domain::throttle::RateLimit;
use crate::domain::time::Timestamp;
use crate::domain::webhook::Webhook;

mod batch;
mod key_lock;
mod prune;
mod secrets;
mod writes;

/// Connections each node keeps at most by default: the API's queries, the dispatcher's
/// claims and the group-commit writers ([`batch::WRITERS`]) are short transactions, so
/// 16 serve hundreds of attempts in flight; PostgreSQL's default `max_connections` (100)
/// leaves room for several nodes.
pub const POOL_CONNECTIONS: u32 = 16;
/// The fewest connections a node can run on: the group-commit writers, a claim, and a
/// query of the API at once.
pub const MIN_POOL_CONNECTIONS: u32 = batch::WRITERS as u32 + 2;
/// How often each node vacuums the `leases` table (see [`vacuum_leases`]).
const LEASES_VACUUM_EVERY: Duration = Duration::from_secs(5);
/// Wait before listening again after the notification connection failed.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);
/// How long a query waits for a connection by default (a free one, or a new one while
/// the server refuses them) before it fails (`StoreSettings::acquire_timeout`).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL implementation of [`Store`]. Webhook secrets are sealed under `key`.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    key: Arc<MainKey>,
    /// Ingests and attempt completions, committed in groups.
    batch: batch::GroupCommit,
    /// This store's id among the nodes: the payload of its announcements of new
    /// deliveries, which its own listener ignores (its dispatcher was woken already).
    node: Arc<str>,
    /// This process's shared hold on the database, which a main key rotation needs
    /// alone.
    key_lock: key_lock::KeyLock,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`; it
    /// must exist), runs migrations (safe from several nodes at once: they take an
    /// advisory lock) and checks that `key` is the database's main key.
    pub async fn open(url: &str, key: MainKey) -> StoreResult<Self> {
        Self::open_with(url, key, &StoreSettings::default()).await
    }

    /// [`PgStore::open`] with `settings`' pool (at least [`MIN_POOL_CONNECTIONS`]
    /// connections) and acquire timeout.
    pub async fn open_with(url: &str, key: MainKey, settings: &StoreSettings) -> StoreResult<Self> {
        // Notices ("relation … already exists, skipping" at every start) are not news.
        // Every statement is prepared once per connection and its plan kept: planning
        // the batch statements afresh at every execution (PostgreSQL's default for the
        // first executions, and for good whenever a custom plan looks cheaper) cost
        // about an eighth of the database's CPU (docs/benchmarks.md).
        let options = PgConnectOptions::from_str(url)?.options([
            ("client_min_messages", "warning"),
            ("plan_cache_mode", "force_generic_plan"),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_connections.max(MIN_POOL_CONNECTIONS))
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        let key_lock = match key_lock::KeyLock::take(&options).await {
            Ok(held) => held,
            Err(err) => {
                pool.close().await;
                return Err(err);
            }
        };
        let node: Arc<str> = format!("node_{}", ulid::Ulid::new()).into();
        let key = Arc::new(key);
        let store = Self {
            batch: batch::GroupCommit::spawn(&pool, Arc::clone(&node), Arc::clone(&key)),
            node,
            pool,
            key,
            key_lock,
        };
        if let Err(err) = store.prepare().await {
            store.close().await;
            return Err(err);
        }
        tokio::spawn(vacuum_leases(store.pool.clone()));
        let (pool, key) = (store.pool.clone(), Arc::clone(&store.key));
        tokio::spawn(
            store
                .key_lock
                .keeper()
                .keep(move || secrets::check_main_key(pool.clone(), Arc::clone(&key))),
        );
        Ok(store)
    }

    /// Migrations, the main key check, and the re-sealing of values in an older
    /// format or under an older key of the ring.
    async fn prepare(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        self.check_main_key().await?;
        let resealed = self.reseal_stale().await?;
        if resealed > 0 {
            tracing::info!(
                webhooks = resealed,
                key = self.key.key_id(),
                "re-sealed webhook secrets of an older format or key under the current main key"
            );
        }
        Ok(())
    }
}

/// Binds the parameters of [`sql::WEBHOOK_COLUMNS`].
fn bind_webhook<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    key: &MainKey,
    w: &Webhook,
) -> StoreResult<sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>> {
    Ok(
        q.bind(crate::store::sealing::seal_url(key, w)?.into_bytes())
            .bind(filters_json(&w.event_types))
            .bind(w.description.clone())
            .bind(w.health.enabled)
            .bind(w.health.disabled_reason.clone())
            .bind(w.paused)
            .bind(w.health.failing_since)
            .bind(
                w.health
                    .concurrency
                    .map(|c| i32::try_from(c).unwrap_or(i32::MAX)),
            )
            .bind(w.updated_at)
            .bind(crate::store::sealing::seal_headers(key, w))
            .bind(
                w.rate_limit
                    .map(|r| i32::try_from(r.per_second()).unwrap_or(i32::MAX)),
            )
            .bind(w.ordering.as_str())
            .bind(w.id.to_string())
            .bind(w.site_id.to_string()),
    )
}

/// Vacuums `leases` every [`LEASES_VACUUM_EVERY`] until the pool is closed. The table
/// holds only the attempts in flight, but every attempt inserts a row and deletes it, and
/// every claim counts the live ones by reading the whole table: dead rows left for
/// autovacuum (which looks at a database once a minute, if it runs at all) made each
/// claim read hundreds of thousands of them in a large backlog's drain. Vacuuming a table
/// this small takes milliseconds; a node skips its turn while another node vacuums, and
/// the table is never truncated (migration 0006), so no vacuum takes a lock the hot
/// path waits behind.
async fn vacuum_leases(pool: PgPool) {
    let mut every = tokio::time::interval(LEASES_VACUUM_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(err) = sqlx::raw_sql("VACUUM (SKIP_LOCKED) leases")
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %err, "vacuuming the leases table failed");
        }
    }
}

/// Wakes `wake` at each notification on [`batch::DUE_CHANNEL`] from another node than
/// `node`, until the connection fails.
async fn listen(pool: &PgPool, node: &str, wake: &Notify) -> StoreResult<()> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(batch::DUE_CHANNEL).await?;
    // Whatever was announced while not listening is found by this claim.
    wake.notify_one();
    loop {
        if listener.recv().await?.payload() != node {
            wake.notify_one();
        }
    }
}

/// The pending deliveries are the rows of `queue` (migration 0005): its count, and one
/// probe of each enabled, unpaused webhook's range of `queue_due`.
const QUEUE_BACKLOG: (&str, &str) = (
    "SELECT COUNT(*) FROM queue",
    "SELECT MIN((SELECT MIN(q.due_at) FROM queue q WHERE q.webhook_id = w.id)) \
     FROM webhooks w WHERE w.enabled = TRUE AND w.paused = FALSE",
);

impl_reads!(PgStore, sqlx::Postgres, pool, postgres, QUEUE_BACKLOG);

#[async_trait]
impl DeliveryQueue for PgStore {
    async fn claim_due(&self, claim: &Claim) -> StoreResult<Vec<ClaimedDelivery>> {
        writes::claim_due(&self.pool, &self.key, claim).await
    }

    async fn complete(&self, c: Completion, now: Timestamp) -> StoreResult<()> {
        self.batch.complete(c, now).await
    }

    /// Listens on [`batch::DUE_CHANNEL`], on which every node's ingests announce new
    /// deliveries at commit, so deliveries ingested on another node start within
    /// milliseconds instead of at the next poll. A lost connection is re-established
    /// (the wait in between is covered by polling).
    async fn watch_due(&self, wake: Arc<Notify>) {
        loop {
            if let Err(err) = listen(&self.pool, &self.node, &wake).await {
                tracing::warn!(error = %err, "listening for due deliveries failed; polling meanwhile");
            }
            tokio::time::sleep(RELISTEN_AFTER).await;
        }
    }

    async fn record_interrupted(&self, a: &Attempt) -> StoreResult<()> {
        sqlx::query(sql::INSERT_ATTEMPT)
            .bind(a.id.to_string())
            .bind(a.delivery_id.to_string())
            .bind(a.webhook_id.to_string())
            .bind(i32::try_from(a.attempt_number).unwrap_or(i32::MAX))
            .bind(a.started_at)
            .bind(i64::try_from(a.duration.as_millis()).unwrap_or(i64::MAX))
            .bind(a.status_code.map(i32::from))
            .bind(a.error_kind.map(ErrorKind::as_str))
            .bind(a.error_message.as_deref())
            .bind(&a.response_body)
            .bind(&a.request_headers)
            .bind(&a.response_headers)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_claims(&self, ids: &[DeliveryId]) -> StoreResult<()> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        sqlx::query("DELETE FROM leases WHERE delivery_id = ANY($1::text[])")
            .bind(&ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_unsent(&self, ids: &[DeliveryId]) -> StoreResult<()> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        sqlx::query(
            "WITH gone AS (DELETE FROM leases WHERE delivery_id = ANY($1::text[]) \
                           RETURNING delivery_id) \
             UPDATE deliveries d SET attempt_count = d.attempt_count - 1, attempt_started_at = NULL \
             FROM gone WHERE d.id = gone.delivery_id AND d.attempt_started_at IS NOT NULL",
        )
        .bind(&ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_slot(&self, webhook: WebhookId, limit: RateLimit) -> StoreResult<Duration> {
        writes::take_slot(&self.pool, webhook, limit).await
    }
}

#[async_trait]
impl Store for PgStore {
    async fn add_setting(&self, key: &str, value: &[u8]) -> StoreResult<bool> {
        let done = sqlx::query(sql::ADD_SETTING)
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        sqlx::query(sql::PUT_SETTING)
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_site(&self, site: &Site) -> StoreResult<()> {
        sqlx::query(sql::INSERT_SITE)
            .bind(site.id.to_string())
            .bind(&site.name)
            .bind(site.created_at)
            .bind(site.updated_at)
            .bind(site.retention_days.map(i64::from))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn rename_site(&self, id: SiteId, name: &str, now: Timestamp) -> StoreResult<bool> {
        let q = sqlx::query(sql::RENAME_SITE).bind(name).bind(now);
        let done = q.bind(id.to_string()).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_strict_event_types(
        &self,
        id: SiteId,
        strict: bool,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let q = sqlx::query(sql::SET_STRICT_EVENT_TYPES)
            .bind(strict)
            .bind(now);
        let done = q.bind(id.to_string()).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_event_type(&self, e: &EventTypeEntry) -> StoreResult<()> {
        sqlx::query(sql::PUT_EVENT_TYPE)
            .bind(e.site_id.to_string())
            .bind(e.name.to_string())
            .bind(&e.description)
            .bind(e.schema.as_ref().map(|s| s.as_str().to_owned()))
            .bind(&e.example)
            .bind(e.created_at)
            .bind(e.updated_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_event_type(&self, site: SiteId, name: &str) -> StoreResult<bool> {
        let q = sqlx::query(sql::DELETE_EVENT_TYPE).bind(site.to_string());
        let done = q.bind(name).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes the site's deliveries before the site (see [`Store::delete_webhook`]).
    async fn delete_site(&self, id: SiteId) -> StoreResult<bool> {
        let id = id.to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM deliveries WHERE site_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(sql::DELETE_SITE)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        sqlx::query(sql::INSERT_API_KEY)
            .bind(key.id.to_string())
            .bind(key.site_id.to_string())
            .bind(&key.name)
            .bind(&key.token_hash[..])
            .bind(key.created_at)
            .bind(key.scopes.to_text())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_api_key(&self, token_hash: &[u8; 32]) -> StoreResult<Option<ApiKey>> {
        let q = sqlx::query("SELECT * FROM api_keys WHERE token_hash = $1").bind(&token_hash[..]);
        let row = q.fetch_optional(&self.pool).await?;
        row.as_ref().map(api_key).transpose()
    }

    async fn delete_api_key(&self, site: SiteId, id: ApiKeyId) -> StoreResult<bool> {
        let q = sqlx::query(sql::DELETE_API_KEY).bind(id.to_string());
        let done = q.bind(site.to_string()).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_portal_token(
        &self,
        token_hash: &[u8; 32],
        site: SiteId,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(sql::DELETE_EXPIRED_PORTAL_TOKENS)
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(sql::INSERT_PORTAL_TOKEN)
            .bind(&token_hash[..])
            .bind(site.to_string())
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn take_portal_token(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> StoreResult<Option<SiteId>> {
        let site: Option<String> = sqlx::query_scalar(
            "DELETE FROM portal_tokens WHERE token_hash = $1 AND expires_at > $2 RETURNING site_id",
        )
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        site.map(|s| SiteId::parse(&s).map_err(super::rows::corrupt))
            .transpose()
    }

    async fn create_webhook(&self, w: &Webhook) -> StoreResult<()> {
        let sealed = crate::store::sealing::seal_new(&self.key, w)?;
        let sql = format!(
            "INSERT INTO webhooks ({}, secret_sealed, old_secrets_sealed, created_at, url) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, '')",
            sql::WEBHOOK_COLUMNS
        );
        bind_webhook(sqlx::query(&sql), &self.key, w)?
            .bind(sealed.current.into_bytes())
            .bind(sealed.old.map(String::into_bytes))
            .bind(w.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn update_webhook(&self, w: &Webhook) -> StoreResult<bool> {
        let q = bind_webhook(sqlx::query(sql::UPDATE_WEBHOOK), &self.key, w)?;
        Ok(q.execute(&self.pool).await?.rows_affected() == 1)
    }

    async fn rotate_webhook_secret(&self, r: &SecretRotation) -> StoreResult<Option<Webhook>> {
        self.rotate_secret_atomically(r).await
    }

    async fn delete_webhook(
        &self,
        site: SiteId,
        id: WebhookId,
        now: Timestamp,
    ) -> StoreResult<bool> {
        prune::delete_webhook(&self.pool, site, id, now).await
    }

    async fn set_site_retention(
        &self,
        id: SiteId,
        days: Option<u32>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let q = sqlx::query(sql::SET_SITE_RETENTION).bind(days.map(i64::from));
        let done = q.bind(now).bind(id.to_string()).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune(&self, batch: &PruneBatch) -> StoreResult<Pruned> {
        prune::batch(&self.pool, batch).await
    }

    async fn drop_deleted_webhooks(&self, site: SiteId) -> StoreResult<u64> {
        let q = sqlx::query(sql::DROP_DELETED_WEBHOOKS).bind(site.to_string());
        Ok(q.execute(&self.pool).await?.rows_affected())
    }

    async fn ingest(&self, new: NewEvent) -> StoreResult<IngestOutcome> {
        self.batch.ingest(new).await
    }

    async fn retry_delivery(&self, d: &Delivery, now: Timestamp) -> StoreResult<Option<Delivery>> {
        let (site, id) = (d.site_id, d.id);
        // A live lease stays: the attempt in flight (on whichever node) decides what
        // happens next, and no second attempt of the same delivery runs beside it. An
        // ended one no longer counts.
        let row = again_after_deadlock(|| {
            sqlx::query(
            "WITH d AS ( \
                 UPDATE deliveries SET state = 'pending', next_attempt_at = $1, updated_at = $1 \
                 WHERE id = $2 AND site_id = $3 \
                   AND webhook_id IN (SELECT id FROM webhooks WHERE deleted_at IS NULL) RETURNING *), \
             queued AS ( \
                 INSERT INTO queue (delivery_id, webhook_id, due_at, seq) \
                 SELECT id, webhook_id, $1, seq FROM d \
                 ON CONFLICT (delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at) \
             SELECT * FROM d",
            )
            .bind(now)
            .bind(id.to_string())
            .bind(site.to_string())
            .fetch_optional(&self.pool)
        })
        .await?;
        row.as_ref().map(delivery).transpose()
    }

    async fn recover_deliveries(&self, r: &Recovery) -> StoreResult<u64> {
        let done = again_after_deadlock(|| {
            sqlx::query(
                "WITH d AS ( \
                 UPDATE deliveries SET state = 'pending', next_attempt_at = $1, updated_at = $1 \
                 WHERE site_id = $2 AND webhook_id = $3 AND state = 'failed' \
                   AND created_at >= $4 AND created_at < $5 RETURNING id, webhook_id, seq) \
             INSERT INTO queue (delivery_id, webhook_id, due_at, seq) \
             SELECT id, webhook_id, $1, seq FROM d \
             ON CONFLICT (delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at",
            )
            .bind(r.now)
            .bind(r.site.to_string())
            .bind(r.webhook.to_string())
            .bind(r.since)
            .bind(r.until)
            .execute(&self.pool)
        })
        .await?;
        Ok(done.rows_affected())
    }

    /// Keeps every lease: other nodes may hold them. A lease of a node that died ends
    /// on its own, and the normal claim takes the delivery then.
    async fn recover_after_restart(&self) -> StoreResult<u64> {
        Ok(0)
    }

    async fn rotate_main_key(&self, new: &MainKey) -> StoreResult<u64> {
        self.reseal_under(new).await
    }

    /// Takes a connection from the pool (a new one when the idle ones are gone) and
    /// runs a trivial query on it.
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.key_lock.release().await;
        self.pool.close().await;
    }
}

/// How many times a statement chosen as a deadlock's victim is run in all.
const DEADLOCK_TRIES: u32 = 3;

/// Runs `statement`, again (up to [`DEADLOCK_TRIES`] in all) while PostgreSQL picks it
/// as a deadlock's victim. Putting a delivery back in the queue locks its delivery row,
/// then its queue row; a claim locks queue rows, then their deliveries: a retry through
/// the API of a delivery being claimed at that moment deadlocked, and answered 500 (the
/// hostile-API suite, once in a CI run). The victim is rolled back whole, so running it
/// again is safe.
async fn again_after_deadlock<T, F>(mut statement: impl FnMut() -> F) -> StoreResult<T>
where
    F: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 1;
    loop {
        match statement().await.map_err(super::StoreError::from) {
            Err(err) if err.is_deadlock() && tries < DEADLOCK_TRIES => {
                tracing::debug!("a statement was a deadlock's victim; running it again");
                tries += 1;
            }
            other => return other,
        }
    }
}
