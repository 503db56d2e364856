//! The embedded store: one SQLite file, so `fullup serve` runs with no other server.
//!
//! Every write of a running service goes through one writer thread that commits them
//! in batches ([`batch`]): ingest, attempt outcomes and the management API's writes, so
//! none of them waits on another connection's lock. A pool of one sqlx connection only
//! runs migrations, startup sealing and main-key rotation, before or instead of the
//! service. Reads, including claims, use a separate pool and see WAL snapshots; leases
//! live in memory ([`leases`]).
//! `synchronous=FULL`: an event is on disk before ingest answers 202.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::reads::impl_reads;
use super::rows::sqlite::webhook as webhook_from_row;
use super::rows::{corrupt, filters_json};
use super::{
    Claim, ClaimedDelivery, Completion, DeliveryQueue, Handed, IngestOutcome, NewEvent, PruneBatch,
    Pruned, Reads as _, Recovery, SecretRotation, Store, StoreError, StoreResult, sql,
};
use crate::crypto::MainKey;
use crate::domain::catalog::EventTypeEntry;
use crate::domain::event_type::EventType;
use crate::domain::fairness::{Candidate, pick};
use crate::domain::ids::{ApiKeyId, DeliveryId, EventId, SiteId, WebhookId};
use crate::domain::models::{ApiKey, Attempt, Delivery, Site};
use crate::domain::throttle::RateLimit;
use crate::domain::time::Timestamp;
use crate::domain::webhook::Webhook;

mod batch;
mod jobs;
mod key_cache;
mod leases;
mod prune;
mod secrets;
mod throttles;

use batch::BatchWriter;
use key_cache::KeyCache;
use leases::Leases;
use throttles::Throttles;

/// The due deliveries a claim may take (see [`crate::store::DeliveryQueue::claim_due`]):
/// ?1 now, ?2 leased ids (the attempts in flight), ?3 most of one webhook, ?4 most of one
/// site, ?5 and ?6 the leases per webhook and per site (`[id, n]` pairs), ?7 the leases
/// per request. Each eligible webhook with room left (?7 times its adaptive limit, and a
/// second's worth of its rate limit ([`crate::domain::webhook::lease_limit`]), less its
/// leases, and its site's cap
/// less the site's) gives its oldest due deliveries, from its own range of the
/// `deliveries_due_webhook` index, so a paused or saturated webhook's backlog is never
/// scanned; [`crate::domain::fairness::pick`] then chooses among them. `CROSS JOIN` fixes
/// SQLite's join order, which would otherwise scan `deliveries`. An ordered webhook
/// ([`crate::domain::ordering`]) with none of its deliveries leased gives its head only
/// (the pending delivery with the lowest `(seq, id)`, one probe of `deliveries_fifo`),
/// if it is due.
const CANDIDATES_SQL: &str = "WITH live AS ( \
                SELECT value ->> 0 AS webhook_id, value ->> 1 AS n FROM json_each(?5)), \
             site_live AS ( \
                SELECT value ->> 0 AS site_id, value ->> 1 AS n FROM json_each(?6)), \
             rooms AS ( \
                SELECT w.id, w.site_id, w.ordering = 'fifo' AS fifo, \
                       CASE WHEN w.ordering = 'fifo' THEN 1 \
                            ELSE MIN(MIN(COALESCE(w.concurrency_limit, ?3), ?3) * ?7, \
                                     COALESCE(w.rate_limit_per_second, ?3 * ?7)) END \
                         - COALESCE(l.n, 0) AS webhook_room, \
                       ?4 - COALESCE(s.n, 0) AS site_room \
                FROM webhooks w LEFT JOIN live l ON l.webhook_id = w.id \
                LEFT JOIN site_live s ON s.site_id = w.site_id \
                WHERE w.enabled = 1 AND w.paused = 0) \
             SELECT d.id, r.id AS webhook_id, r.site_id, d.next_attempt_at, r.webhook_room, r.site_room \
             FROM rooms r CROSS JOIN deliveries d ON d.rowid IN ( \
                SELECT rowid FROM deliveries WHERE webhook_id = r.id AND state = 'pending' \
                  AND next_attempt_at <= ?1 AND id NOT IN (SELECT value FROM json_each(?2)) \
                ORDER BY next_attempt_at LIMIT ?3 * ?7) \
             WHERE NOT r.fifo AND r.webhook_room > 0 AND r.site_room > 0 \
             UNION ALL \
             SELECT d.id, r.id AS webhook_id, r.site_id, d.next_attempt_at, r.webhook_room, r.site_room \
             FROM rooms r CROSS JOIN deliveries d ON d.rowid = ( \
                SELECT rowid FROM deliveries WHERE webhook_id = r.id AND state = 'pending' \
                ORDER BY seq, id LIMIT 1) \
             WHERE r.fifo AND r.webhook_room > 0 AND r.site_room > 0 AND d.next_attempt_at <= ?1 \
               AND d.id NOT IN (SELECT value FROM json_each(?2))";

/// What an attempt of each chosen delivery needs: ?1 their ids.
const CHOSEN_SQL: &str = "SELECT d.id, d.attempt_count, d.event_id, e.type, e.payload, d.webhook_id \
             FROM deliveries d CROSS JOIN events e ON e.id = d.event_id \
             WHERE d.id IN (SELECT value FROM json_each(?1))";

/// A webhook's failed deliveries created in a range, due again: `$1` now, `$2` site,
/// `$3` webhook, `$4` since, `$5` until.
const RECOVER_DELIVERIES: &str = "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, \
     updated_at = $1 WHERE site_id = $2 AND webhook_id = $3 \
     AND state = 'failed' AND created_at >= $4 AND created_at < $5";

/// How long a connection waits for a lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Readers: enough for the API's concurrent queries; SQLite reads do not block writes in WAL.
const READ_CONNECTIONS: u32 = 4;

/// The SQLite implementation of [`Store`]. Webhook secrets are sealed under `key`.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The claim's own read connection (rusqlite, statements cached): a claim reads
    /// hundreds of candidate rows, which sqlx would hand over one by one.
    claimer: Arc<std::sync::Mutex<rusqlite::Connection>>,
    key: Arc<MainKey>,
    /// The writer thread: group-commits ingests and attempt completions.
    batch: BatchWriter,
    /// Deliveries with an attempt in flight.
    leases: Arc<Leases>,
    /// Each throttled webhook's next slot.
    throttles: Arc<Throttles>,
    /// API keys already looked up.
    api_keys: Arc<KeyCache>,
    /// Held while the store is open: leases live in this process's memory, so a second
    /// process on the same file would attempt the same deliveries.
    lock: Arc<std::fs::File>,
    /// The database file, which the readiness probe opens afresh.
    path: Arc<PathBuf>,
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
        let lock = Arc::new(lock_database(options.get_filename())?);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(options.clone().read_only(true))
            .await?;
        let store = Self {
            batch: BatchWriter::spawn(options.get_filename())?,
            claimer: Arc::new(std::sync::Mutex::new(open_claimer(options.get_filename())?)),
            leases: Arc::default(),
            throttles: Arc::default(),
            api_keys: Arc::default(),
            lock,
            path: Arc::new(options.get_filename().to_path_buf()),
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
        let resealed = store.reseal_stale().await?;
        if resealed > 0 {
            tracing::info!(
                webhooks = resealed,
                key = store.key.key_id(),
                "re-sealed webhook secrets of an older format or key under the current main key"
            );
        }
        Ok(store)
    }
}

impl SqliteStore {
    /// Runs one statement on the writer thread, in its next batch; rows changed.
    async fn execute(&self, sql: &'static str, params: Vec<Value>) -> StoreResult<u64> {
        self.execute_owned(sql.to_owned(), params).await
    }

    /// [`Self::execute`] of a statement built at run time (prepared once, then cached).
    async fn execute_owned(&self, sql: String, params: Vec<Value>) -> StoreResult<u64> {
        self.batch
            .call(move |conn| {
                let changed = conn
                    .prepare_cached(&sql)?
                    .execute(rusqlite::params_from_iter(params.iter()))?;
                Ok(u64::try_from(changed).unwrap_or(u64::MAX))
            })
            .await
    }

    /// Leases the deliveries the hand-off admitted (those a claim has not leased since
    /// the commit) and hands them over with their webhooks; if the webhooks cannot be
    /// read, gives them back to the claims.
    async fn hand_over(&self, new: &NewEvent, mut handed: Handed) {
        if handed.admitted().is_empty() {
            handed.start(new, |_| None);
            return;
        }
        let ids = handed
            .admitted()
            .iter()
            .map(|f| f.webhook.to_string())
            .collect();
        let webhooks = match self.webhooks_by_id(ids).await {
            Ok(webhooks) => webhooks,
            Err(err) => {
                tracing::warn!(error = %err, "reading the webhooks of new deliveries failed; they wait for a claim");
                handed.give_up();
                return;
            }
        };
        let leased = handed
            .admitted()
            .iter()
            .map(|f| (f.delivery, f.webhook, f.site));
        // Not while a claim is between its read and its lease: that read may predate
        // the outcome of an attempt this hand-off starts, and the claim would lease
        // the delivery again once that attempt released it (a duplicate attempt).
        let taken = {
            let _no_claim = self.leases.claiming.lock().await;
            self.leases.take(leased, handed.lease())
        };
        handed.retain(|f| taken.contains(&f.delivery));
        handed.start(new, |id| webhooks.get(&id.to_string()).cloned());
    }

    /// Webhooks by id, each read (and its secrets opened) once.
    async fn webhooks_by_id(&self, mut ids: Vec<String>) -> StoreResult<HashMap<String, Webhook>> {
        ids.sort_unstable();
        ids.dedup();
        let rows =
            sqlx::query("SELECT * FROM webhooks WHERE id IN (SELECT value FROM json_each(?))")
                .bind(serde_json::to_string(&ids).map_err(corrupt)?)
                .fetch_all(&self.reader)
                .await?;
        rows.iter()
            .map(|row| {
                let webhook = webhook_from_row(row, &self.key)?;
                Ok((webhook.id.to_string(), webhook))
            })
            .collect()
    }
}

/// Opens the claim's read-only connection to the database at `path`.
fn open_claimer(path: &Path) -> StoreResult<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Takes the lock file beside the database (`PATH.lock`), or says who holds it.
fn lock_database(db: &Path) -> StoreResult<std::fs::File> {
    let path = PathBuf::from(format!("{}.lock", db.display()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::WriteFailed(format!("opening {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse(path)),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::WriteFailed(format!(
            "locking {}: {e}",
            path.display()
        ))),
    }
}

/// The parameters of [`sql::WEBHOOK_COLUMNS`].
fn webhook_params(key: &MainKey, w: &Webhook) -> StoreResult<Vec<Value>> {
    Ok(vec![
        Value::from(crate::store::sealing::seal_url(key, w)?),
        Value::from(filters_json(&w.event_types)),
        Value::from(w.description.clone()),
        Value::from(w.health.enabled),
        Value::from(w.health.disabled_reason.clone()),
        Value::from(w.paused),
        Value::from(w.health.failing_since.map(Timestamp::unix_ms)),
        Value::from(w.health.concurrency),
        Value::from(w.updated_at),
        Value::from(crate::store::sealing::seal_headers(key, w)),
        Value::from(w.rate_limit.map(RateLimit::per_second)),
        Value::from(w.ordering.as_str().to_owned()),
        Value::from(w.id.to_string()),
        Value::from(w.site_id.to_string()),
    ])
}

/// `value` as the JSON that `json_each` reads.
fn json(value: &impl serde::Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(corrupt)
}

impl_reads!(
    SqliteStore,
    sqlx::Sqlite,
    reader,
    sqlite,
    (sql::COUNT_PENDING, sql::OLDEST_DUE)
);

impl SqliteStore {
    /// The deliveries `claim` takes, in the fair order of
    /// [`crate::domain::fairness::pick`], with what their attempts need but the webhook
    /// (webhook id first); the caller holds the claiming lock.
    async fn choose(&self, claim: &Claim) -> StoreResult<Vec<(String, Chosen)>> {
        let live = self.leases.live(&claim.settling);
        let params = (
            claim.now.unix_ms(),
            json(&live.ids)?,
            i64::from(claim.per_webhook),
            i64::from(claim.per_site),
            json(&live.webhooks)?,
            json(&live.sites)?,
            i64::from(claim.leases_per_request.max(1)),
        );
        let limit = usize::try_from(claim.limit).unwrap_or(usize::MAX);
        let conn = self.claimer.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let picked = candidates(&conn, &params, limit)?;
            chosen(&conn, &picked)
        })
        .await
        .map_err(|e| StoreError::WriteFailed(format!("the claim task failed: {e}")))?
    }
}

/// What a chosen delivery's attempt needs, but its webhook.
struct Chosen {
    delivery: DeliveryId,
    attempt_count: u32,
    event_id: EventId,
    event_type: EventType,
    payload: String,
}

/// The parameters of [`CANDIDATES_SQL`].
type CandidateParams = (i64, String, i64, i64, String, String, i64);

/// Reads the candidates and picks among them.
fn candidates(
    conn: &rusqlite::Connection,
    params: &CandidateParams,
    limit: usize,
) -> StoreResult<Vec<DeliveryId>> {
    let mut query = conn.prepare_cached(CANDIDATES_SQL)?;
    let mut rows = query.query(rusqlite::params![
        params.0, params.1, params.2, params.3, params.4, params.5, params.6
    ])?;
    let (mut webhook_rooms, mut site_rooms) = (HashMap::new(), HashMap::new());
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        let id = |i: usize| -> StoreResult<String> { Ok(row.get(i)?) };
        let candidate = Candidate {
            delivery: DeliveryId::parse(&id(0)?).map_err(corrupt)?,
            webhook: WebhookId::parse(&id(1)?).map_err(corrupt)?,
            site: SiteId::parse(&id(2)?).map_err(corrupt)?,
            due_at: row.get(3)?,
        };
        let room = |i: usize| -> StoreResult<usize> {
            Ok(usize::try_from(row.get::<_, i64>(i)?).unwrap_or(0))
        };
        webhook_rooms.insert(candidate.webhook, room(4)?);
        site_rooms.insert(candidate.site, room(5)?);
        all.push(candidate);
    }
    let picked = pick(
        all,
        limit,
        |w| webhook_rooms.get(&w).copied().unwrap_or(0),
        |s| site_rooms.get(&s).copied().unwrap_or(0),
    );
    Ok(picked.into_iter().map(|c| c.delivery).collect())
}

/// The attempts' needs of the `picked` deliveries, in that order; webhook id first.
fn chosen(
    conn: &rusqlite::Connection,
    picked: &[DeliveryId],
) -> StoreResult<Vec<(String, Chosen)>> {
    if picked.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = conn.prepare_cached(CHOSEN_SQL)?;
    let mut rows = query.query([json(&picked)?])?;
    let mut by_id = HashMap::with_capacity(picked.len());
    while let Some(row) = rows.next()? {
        let text = |i: usize| -> StoreResult<String> { Ok(row.get(i)?) };
        let delivery = DeliveryId::parse(&text(0)?).map_err(corrupt)?;
        let chosen = Chosen {
            delivery,
            attempt_count: row.get(1)?,
            event_id: EventId::parse(&text(2)?).map_err(corrupt)?,
            event_type: EventType::parse(&text(3)?).map_err(corrupt)?,
            payload: text(4)?,
        };
        by_id.insert(delivery, (text(5)?, chosen));
    }
    Ok(picked.iter().filter_map(|id| by_id.remove(id)).collect())
}

#[async_trait]
impl DeliveryQueue for SqliteStore {
    async fn claim_due(&self, claim: &Claim) -> StoreResult<Vec<ClaimedDelivery>> {
        let _one_claim = self.leases.claiming.lock().await;
        let chosen = self.choose(claim).await?;
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let webhooks = self
            .webhooks_by_id(chosen.iter().map(|(w, _)| w.clone()).collect())
            .await?;
        // A webhook deleted since the read took its deliveries with it.
        let mut out: Vec<ClaimedDelivery> = chosen
            .into_iter()
            .filter_map(|(webhook_id, c)| {
                Some(ClaimedDelivery {
                    delivery_id: c.delivery,
                    attempt_count: c.attempt_count,
                    interrupted: None,
                    event_id: c.event_id,
                    event_type: c.event_type,
                    payload: c.payload,
                    webhook: webhooks.get(&webhook_id)?.clone(),
                })
            })
            .collect();
        let leased = out
            .iter()
            .map(|c| (c.delivery_id, c.webhook.id, c.webhook.site_id));
        // An ingest's hand-off may have leased one since the read.
        let taken = self.leases.take(leased, claim.lease);
        out.retain(|c| taken.contains(&c.delivery_id));
        let ids: Vec<DeliveryId> = out.iter().map(|c| c.delivery_id).collect();
        let (now, stale) = (claim.now, claim.now - claim.lease);
        let job_ids = ids.clone();
        let started = match self
            .batch
            .call(move |conn| jobs::start_attempts(conn, &job_ids, now, stale))
            .await
        {
            Ok(started) => started,
            Err(err) => {
                self.leases.release(&ids);
                return Err(err);
            }
        };
        // What the read found due and is no longer (or not yet: a hand-off's) is left.
        let left: Vec<DeliveryId> = ids
            .into_iter()
            .filter(|id| !started.contains_key(id))
            .collect();
        self.leases.release(&left);
        out.retain_mut(|c| {
            let Some(&(count, interrupted)) = started.get(&c.delivery_id) else {
                return false;
            };
            c.attempt_count = count;
            c.interrupted = interrupted;
            true
        });
        Ok(out)
    }

    async fn record_interrupted(&self, attempt: &Attempt) -> StoreResult<()> {
        let attempt = attempt.clone();
        self.batch
            .call(move |conn| jobs::insert_attempt(conn, &attempt))
            .await
    }

    async fn complete(&self, c: Completion, now: Timestamp) -> StoreResult<()> {
        let id = c.attempt.delivery_id;
        self.batch
            .call(move |conn| jobs::complete(conn, &c, now))
            .await?;
        // Only once the outcome is on disk may the delivery be claimed again; when
        // recording failed, the lease runs out and the attempt is made again.
        self.leases.release(&[id]);
        Ok(())
    }

    async fn release_claims(&self, ids: &[DeliveryId]) -> StoreResult<()> {
        self.leases.release(ids);
        Ok(())
    }

    async fn release_unsent(&self, ids: &[DeliveryId]) -> StoreResult<()> {
        // Uncounted first: released, a lease could be taken again before the commit.
        self.execute(
            "UPDATE deliveries SET attempt_count = attempt_count - 1, attempt_started_at = NULL \
             WHERE id IN (SELECT value FROM json_each(?1)) AND attempt_started_at IS NOT NULL",
            vec![Value::from(json(&ids)?)],
        )
        .await?;
        self.leases.release(ids);
        Ok(())
    }

    async fn take_slot(&self, webhook: WebhookId, limit: RateLimit) -> StoreResult<Duration> {
        Ok(self.throttles.take(webhook, limit))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_setting(&self, key: &str, value: &[u8]) -> StoreResult<bool> {
        let added = self
            .execute(
                sql::ADD_SETTING,
                vec![Value::from(key.to_owned()), Value::from(value.to_vec())],
            )
            .await?;
        Ok(added == 1)
    }

    async fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        self.execute(
            sql::PUT_SETTING,
            vec![Value::from(key.to_owned()), Value::from(value.to_vec())],
        )
        .await?;
        Ok(())
    }

    async fn create_site(&self, site: &Site) -> StoreResult<()> {
        let params = vec![
            Value::from(site.id.to_string()),
            Value::from(site.name.clone()),
            Value::from(site.created_at),
            Value::from(site.updated_at),
            Value::from(site.retention_days.map(i64::from)),
        ];
        self.execute(sql::INSERT_SITE, params).await?;
        Ok(())
    }

    async fn rename_site(&self, id: SiteId, name: &str, now: Timestamp) -> StoreResult<bool> {
        let params = vec![
            Value::from(name.to_owned()),
            Value::from(now),
            Value::from(id.to_string()),
        ];
        Ok(self.execute(sql::RENAME_SITE, params).await? == 1)
    }

    async fn set_strict_event_types(
        &self,
        id: SiteId,
        strict: bool,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let params = vec![
            Value::from(strict),
            Value::from(now),
            Value::from(id.to_string()),
        ];
        Ok(self.execute(sql::SET_STRICT_EVENT_TYPES, params).await? == 1)
    }

    async fn put_event_type(&self, e: &EventTypeEntry) -> StoreResult<()> {
        let params = vec![
            Value::from(e.site_id.to_string()),
            Value::from(e.name.to_string()),
            Value::from(e.description.clone()),
            Value::from(e.schema.as_ref().map(|s| s.as_str().to_owned())),
            Value::from(e.example.clone()),
            Value::from(e.created_at),
            Value::from(e.updated_at),
        ];
        self.execute(sql::PUT_EVENT_TYPE, params).await?;
        Ok(())
    }

    async fn delete_event_type(&self, site: SiteId, name: &str) -> StoreResult<bool> {
        let params = vec![Value::from(site.to_string()), Value::from(name.to_owned())];
        Ok(self.execute(sql::DELETE_EVENT_TYPE, params).await? == 1)
    }

    async fn delete_site(&self, id: SiteId) -> StoreResult<bool> {
        let done = self
            .execute(sql::DELETE_SITE, vec![Value::from(id.to_string())])
            .await?;
        self.api_keys.invalidate();
        Ok(done == 1)
    }

    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        let params = vec![
            Value::from(key.id.to_string()),
            Value::from(key.site_id.to_string()),
            Value::from(key.name.clone()),
            Value::from(key.token_hash.to_vec()),
            Value::from(key.created_at),
            Value::from(key.scopes.to_text()),
        ];
        self.execute(sql::INSERT_API_KEY, params).await?;
        Ok(())
    }

    async fn find_api_key(&self, token_hash: &[u8; 32]) -> StoreResult<Option<ApiKey>> {
        let generation = match self.api_keys.get(token_hash) {
            Ok(key) => return Ok(Some(key)),
            Err(generation) => generation,
        };
        let key = sqlx::query("SELECT * FROM api_keys WHERE token_hash = ?")
            .bind(&token_hash[..])
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(super::rows::sqlite::api_key)
            .transpose()?;
        if let Some(key) = &key {
            self.api_keys.put(key.clone(), generation);
        }
        Ok(key)
    }

    async fn delete_api_key(&self, site: SiteId, id: ApiKeyId) -> StoreResult<bool> {
        let params = vec![Value::from(id.to_string()), Value::from(site.to_string())];
        let done = self.execute(sql::DELETE_API_KEY, params).await?;
        self.api_keys.invalidate();
        Ok(done == 1)
    }

    async fn create_portal_token(
        &self,
        token_hash: &[u8; 32],
        site: SiteId,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.execute(sql::DELETE_EXPIRED_PORTAL_TOKENS, vec![Value::from(now)])
            .await?;
        let params = vec![
            Value::from(token_hash.to_vec()),
            Value::from(site.to_string()),
            Value::from(expires_at),
        ];
        self.execute(sql::INSERT_PORTAL_TOKEN, params).await?;
        Ok(())
    }

    async fn take_portal_token(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> StoreResult<Option<SiteId>> {
        let site: Option<String> = sqlx::query_scalar(sql::PORTAL_TOKEN_SITE)
            .bind(&token_hash[..])
            .fetch_optional(&self.reader)
            .await?;
        let Some(site) = site else { return Ok(None) };
        let params = vec![Value::from(token_hash.to_vec()), Value::from(now)];
        if self.execute(sql::TAKE_PORTAL_TOKEN, params).await? != 1 {
            return Ok(None);
        }
        SiteId::parse(&site).map(Some).map_err(corrupt)
    }

    async fn create_webhook(&self, w: &Webhook) -> StoreResult<()> {
        let sealed = crate::store::sealing::seal_new(&self.key, w)?;
        let mut params = webhook_params(&self.key, w)?;
        params.extend([
            Value::from(sealed.current),
            Value::from(sealed.old),
            Value::from(w.created_at),
        ]);
        // `secret` is the plain column of the first schema, kept empty since sealing.
        let sql = format!(
            "INSERT INTO webhooks ({}, secret_sealed, old_secrets_sealed, created_at, secret, url) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, '', '')",
            sql::WEBHOOK_COLUMNS
        );
        self.execute_owned(sql, params).await?;
        Ok(())
    }

    async fn update_webhook(&self, w: &Webhook) -> StoreResult<bool> {
        let params = webhook_params(&self.key, w)?;
        Ok(self.execute(sql::UPDATE_WEBHOOK, params).await? == 1)
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
        self.batch
            .call(move |conn| prune::delete_webhook(conn, site, id, now))
            .await
    }

    async fn set_site_retention(
        &self,
        id: SiteId,
        days: Option<u32>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let params = vec![
            Value::from(days.map(i64::from)),
            Value::from(now),
            Value::from(id.to_string()),
        ];
        Ok(self.execute(sql::SET_SITE_RETENTION, params).await? == 1)
    }

    async fn prune(&self, batch: &PruneBatch) -> StoreResult<Pruned> {
        let batch = *batch;
        self.batch
            .call(move |conn| prune::batch(conn, &batch))
            .await
    }

    async fn drop_deleted_webhooks(&self, site: SiteId) -> StoreResult<u64> {
        self.execute(
            sql::DROP_DELETED_WEBHOOKS,
            vec![Value::from(site.to_string())],
        )
        .await
    }

    async fn ingest(&self, new: NewEvent) -> StoreResult<IngestOutcome> {
        let new = Arc::new(new);
        let job = Arc::clone(&new);
        let (outcome, handed) = self
            .batch
            .call(move |conn| jobs::ingest(conn, &job))
            .await?;
        if let Some(handed) = handed {
            self.hand_over(&new, handed).await;
        }
        Ok(outcome)
    }

    async fn retry_delivery(&self, d: &Delivery, now: Timestamp) -> StoreResult<Option<Delivery>> {
        let (site, id) = (d.site_id, d.id);
        // A lease in flight stays (it lives in memory): that attempt decides what
        // happens next, and no second attempt of the same delivery runs beside it.
        let params = vec![
            Value::from(now),
            Value::from(id.to_string()),
            Value::from(site.to_string()),
        ];
        let changed = self
            .execute(
                "UPDATE deliveries SET state = 'pending', next_attempt_at = $1, updated_at = $1 \
                 WHERE id = $2 AND site_id = $3 \
                 AND webhook_id IN (SELECT id FROM webhooks WHERE deleted_at IS NULL)",
                params,
            )
            .await?;
        if changed == 0 {
            return Ok(None);
        }
        self.get_delivery(site, id).await
    }

    async fn recover_deliveries(&self, r: &Recovery) -> StoreResult<u64> {
        let params = vec![
            Value::from(r.now),
            Value::from(r.site.to_string()),
            Value::from(r.webhook.to_string()),
            Value::from(r.since),
            Value::from(r.until),
        ];
        self.execute(RECOVER_DELIVERIES, params).await
    }

    /// Leases lived in the previous process's memory: none is left. Its attempts whose
    /// outcomes it did not record are recorded as `interrupted`.
    async fn recover_after_restart(&self) -> StoreResult<u64> {
        self.execute(
            "UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL AND state = 'pending'",
            vec![],
        )
        .await?;
        self.batch.call(jobs::interrupt_unrecorded).await
    }

    async fn rotate_main_key(&self, new: &MainKey) -> StoreResult<u64> {
        self.reseal_under(new).await
    }

    /// Opens the file at the configured path read-only, on a connection of its own,
    /// and reads a table: the pooled connections hold the file open, so they would go
    /// on reading it after it was moved, deleted or its disk unmounted.
    async fn ping(&self) -> StoreResult<()> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_claimer(&path)?;
            conn.query_row("SELECT COUNT(*) FROM settings", [], |row| {
                row.get::<_, i64>(0)
            })?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::WriteFailed(format!("the readiness probe panicked: {e}")))?
    }

    async fn close(&self) {
        self.batch.close().await;
        self.writer.close().await;
        self.reader.close().await;
        if let Err(err) = self.lock.unlock() {
            tracing::warn!(error = %err, "releasing the database lock failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row as _;

    use super::*;

    /// Regression: claims scanned every paused delivery (the bench's backlog run).
    #[tokio::test]
    async fn the_claim_reads_index_ranges_and_never_scans_deliveries() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url, MainKey::generate())
            .await
            .expect("open");
        let plan = sqlx::query(&format!("EXPLAIN QUERY PLAN {CANDIDATES_SQL}"))
            .bind(0)
            .bind("[]")
            .bind(16)
            .bind(64)
            .bind("[]")
            .bind("[]")
            .fetch_all(&store.reader)
            .await
            .expect("plan")
            .iter()
            .map(|row| row.try_get::<String, _>("detail").expect("detail"))
            .collect::<Vec<_>>()
            .join("\n");
        println!("{plan}");
        assert!(plan.contains("deliveries_due_webhook"), "{plan}");
        assert!(
            plan.contains("deliveries_fifo"),
            "an ordered webhook's head: {plan}"
        );
        assert!(
            !plan.contains("SCAN d") && !plan.contains("SCAN deliveries"),
            "{plan}"
        );
    }
}
