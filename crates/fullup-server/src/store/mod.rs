//! Persistence behind one trait, so the service runs on SQLite (one node) or PostgreSQL
//! (several nodes sharing one database).
//!
//! What both stores share is written once: the read queries ([`reads`], through sqlx's
//! `QueryBuilder`, which numbers placeholders for each database), the write statements
//! ([`sql`]), the row mappers ([`rows`]), sealing ([`sealing`]), and the rules they apply
//! inside their transactions, which live in `domain/` as pure functions (an event's
//! targets, an attempt's effect on its webhook's health). Each implementation keeps only
//! what its database does differently: how a transaction runs, how rows are leased.
//! The service layer speaks [`Store`]; the dispatcher only [`DeliveryQueue`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::crypto::MainKey;
use sha2::{Digest as _, Sha256};

use crate::domain::canonical_json::CanonicalJson;
use crate::domain::catalog::EventTypeEntry;
use crate::domain::envelope::envelope;
use crate::domain::event_type::EventType;
use crate::domain::health::Health;
use crate::domain::health::{HealthEffect, HealthPolicy};
use crate::domain::ids::{ApiKeyId, DeliveryId, EventId, SiteId, WebhookId};
use crate::domain::models::{
    ApiKey, Attempt, Delivery, DeliveryState, ErrorKind, Event, EventSummary, Site,
};
use crate::domain::operational::{self, Notice};
use crate::domain::outcome::NextStep;
use crate::domain::throttle::RateLimit;
use crate::domain::time::Timestamp;
use crate::domain::webhook::Webhook;

mod availability;
mod filters;
pub use availability::open_waiting;
pub mod postgres;
mod reads;
mod rows;
mod sealing;
mod sql;
pub mod sqlite;

/// Opens the store `url` names, running its migrations and checking that `key` is the
/// database's main key: PostgreSQL for `postgres://`/`postgresql://`, SQLite for
/// `sqlite:`. The one place that chooses a backend, for `fullup serve` and `fullup admin`.
pub async fn open(url: &str, key: MainKey) -> StoreResult<Arc<dyn Store>> {
    open_with(url, key, &StoreSettings::default()).await
}

/// [`open`] with `settings` instead of the defaults.
pub async fn open_with(
    url: &str,
    key: MainKey,
    settings: &StoreSettings,
) -> StoreResult<Arc<dyn Store>> {
    Ok(match Backend::of(url)? {
        Backend::Postgres => Arc::new(postgres::PgStore::open_with(url, key, settings).await?),
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::open(url, key).await?),
    })
}

/// How a store connects, where the database lets it choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Connections each node keeps at most to PostgreSQL (SQLite has its own fixed set:
    /// one writer, a few readers).
    pub pool_connections: u32,
    /// How long a PostgreSQL query waits for a connection (a free one, or a new one
    /// while the server refuses them) before it fails as unavailable.
    pub acquire_timeout: Duration,
    /// How long `fullup serve` waits at start for a PostgreSQL database that is
    /// unreachable, trying again with backoff ([`open_waiting`]); zero: one try.
    pub wait: Duration,
}

/// Default of [`StoreSettings::wait`]: five minutes, longer than a database server's
/// restart or a container platform starting the database beside the service, short
/// enough that a node pointed at the wrong host exits (status 2) while someone watches.
pub const DEFAULT_DATABASE_WAIT: Duration = Duration::from_secs(300);

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            pool_connections: postgres::POOL_CONNECTIONS,
            acquire_timeout: postgres::ACQUIRE_TIMEOUT,
            wait: DEFAULT_DATABASE_WAIT,
        }
    }
}

/// The kinds of database the service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file, one node (`sqlite://PATH`).
    Sqlite,
    /// One server, any number of nodes (`postgres://…`).
    Postgres,
}

impl Backend {
    /// The backend a database URL names, or [`StoreError::UnsupportedUrl`].
    pub fn of(url: &str) -> StoreResult<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed or could not be reached.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// The SQLite write connection failed.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// Schema migrations failed at start.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row could not be read back (corruption or a newer schema).
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
    /// The batch a write was part of could not be committed; nothing of it was stored.
    #[error("database write failed: {0}")]
    WriteFailed(String),
    /// The database cannot be used for now (unreachable, out of disk space): nothing of
    /// the write was stored, and trying again later may work. Other variants can mean
    /// the same: [`StoreError::is_unavailable`] says.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A sealed value did not open, or the main key does not match the database.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A webhook's sealed secrets do not open with this node's key ring (sealed under
    /// a key it does not hold, moved to another site, or altered): only that webhook's
    /// secret reads and deliveries fail.
    #[error(transparent)]
    SecretUnreadable(#[from] crate::domain::webhook::Unreadable),
    /// A main key rotation was refused because running processes hold the database.
    #[error(
        "{0} process(es) hold this database (`fullup serve` nodes or admin commands): a main key rotation re-seals every secret, and a running node would go on sealing under the old key; stop every node, then run `fullup admin rotate-main-key` again"
    )]
    HeldByNodes(u64),
    /// Another process has this SQLite database open (its lock file is named).
    #[error(
        "another fullup process is using this database (it holds {0}): a SQLite database serves one `fullup serve` at a time; stop the other one, or use PostgreSQL for several nodes"
    )]
    InUse(std::path::PathBuf),
    /// The database URL names no supported database.
    #[error(
        "unsupported --database-url scheme: use sqlite://PATH or postgres://USER@HOST/DATABASE"
    )]
    UnsupportedUrl,
    /// The database was sealed under another main key than the one configured.
    #[error(
        "the main key does not match this database: set FULLUP_MAIN_KEY or --main-key-file to the key it was created with (after an interrupted `fullup admin rotate-main-key`, try the `.new` key file)"
    )]
    WrongMainKey,
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A page request: newest first, strictly older than `before` (an id) when given.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// At most this many items.
    pub limit: u32,
    /// The previous page's `next_cursor`.
    pub before: Option<String>,
}

/// One page of results and the cursor of the next, if there is one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Pass as `before` to get the next page.
    pub next_cursor: Option<String>,
}

/// Filters of the delivery list; every one is optional.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this event's deliveries.
    pub event_id: Option<EventId>,
    /// Only this webhook's deliveries.
    pub webhook_id: Option<WebhookId>,
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
    /// Only deliveries of events of this exact type.
    pub event_type: Option<String>,
    /// Look for matches among at most this many of the site's deliveries, newest first
    /// from the cursor; None looks until the page is full. With a window, every query
    /// reads one bounded range of the `deliveries_site` index however rare the matches
    /// (a filter on state or event type has no index of its own), and a page may hold
    /// fewer matches than asked, even none, with a `next_cursor` to search on from.
    pub scan_window: Option<u32>,
}

/// What a webhook's attempts since some time did (its health over a window, such as
/// the console's last 24 h).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptStats {
    /// Attempts started in the window.
    pub attempts: u64,
    /// Those the receiver answered with a 2xx status.
    pub succeeded: u64,
}

/// Filters of the event list.
#[derive(Debug, Clone, Default)]
pub struct EventFilterQuery {
    /// Only events of this exact type.
    pub event_type: Option<String>,
    /// Created at or after.
    pub since: Option<Timestamp>,
    /// Created before.
    pub until: Option<Timestamp>,
}

/// An event to accept, with what identifies a retried request.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event, payload already canonical.
    pub event: Event,
    /// SHA-256 of what makes two requests "the same" (type and canonical data).
    pub request_hash: [u8; 32],
    /// Deliver to this webhook only, whatever its filter (test pings); otherwise to
    /// every enabled webhook of the site whose filter matches.
    pub only_webhook: Option<WebhookId>,
    /// This node's dispatcher, offered the new deliveries (see [`HandOff`]); None
    /// queues them all for the claims.
    pub hand_off: Option<Arc<dyn HandOff>>,
}

impl NewEvent {
    /// The event of `site` with `event_type` and `data`, created at `now`: its id, its
    /// envelope (the body every delivery sends) and its request hash.
    pub fn new(
        site: SiteId,
        event_type: EventType,
        data: &CanonicalJson,
        now: Timestamp,
        idempotency_key: Option<String>,
        only_webhook: Option<WebhookId>,
    ) -> Self {
        let id = EventId::new(now);
        let mut hasher = Sha256::new();
        hasher.update(event_type.as_str().as_bytes());
        hasher.update([0]);
        hasher.update(data.as_bytes());
        Self {
            event: Event {
                id,
                site_id: site,
                payload: envelope(id, &event_type, now, data),
                event_type,
                created_at: now,
                idempotency_key,
            },
            request_hash: hasher.finalize().into(),
            only_webhook,
            hand_off: None,
        }
    }

    /// This event, its new deliveries offered to `to`.
    #[must_use]
    pub fn handing_off_to(mut self, to: Arc<dyn HandOff>) -> Self {
        self.hand_off = Some(to);
        self
    }

    /// The service's own event `notice` about `site`, at `now`.
    pub fn notice(site: SiteId, notice: Notice, now: Timestamp) -> Self {
        Self::new(site, notice.event_type, &notice.data, now, None, None)
    }
}

/// Whether `new` is stored only if some webhook gets it: the service's own events are
/// (a notice nobody subscribes to is dropped, so a site's event list holds only the
/// notices someone asked for); a site's events are stored whatever their targets.
pub(crate) fn needs_targets(new: &NewEvent) -> bool {
    operational::is_operational(new.event.event_type.as_str())
}

/// A new delivery offered to a [`HandOff`]: what its limits are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fresh {
    /// The delivery.
    pub delivery: DeliveryId,
    /// Its webhook.
    pub webhook: WebhookId,
    /// The webhook's site.
    pub site: SiteId,
    /// The webhook's stored adaptive concurrency limit, if it has one (see
    /// [`Health::concurrency_limit`]).
    pub concurrency: Option<u32>,
    /// The webhook's rate limit, if it has one: it bounds the attempts in flight too
    /// (see [`crate::domain::webhook::in_flight_limit`]).
    pub rate_limit: Option<RateLimit>,
}

/// A node's dispatcher, taking fresh deliveries straight from ingest: when it has
/// nothing queued to claim and room for one more attempt, the store leases the new
/// delivery to this node inside the ingest's own transaction and hands it over after
/// the commit, so fresh work costs no claim (see `crate::delivery::inbox`).
pub trait HandOff: Send + Sync + std::fmt::Debug {
    /// Takes a slot for the first attempt of `fresh` if it may start on this node now;
    /// false leaves the delivery queued for the claims.
    fn admit(&self, fresh: &Fresh) -> bool;
    /// Gives back the slot of an admitted delivery that will not be handed over (its
    /// transaction failed, or a claim took it first).
    fn release(&self, fresh: &Fresh);
    /// Starts the attempts of admitted deliveries, now committed and leased to this
    /// node; `refused` says whether this ingest queued deliveries it did not admit,
    /// which the dispatcher then claims.
    fn start(&self, deliveries: Vec<ClaimedDelivery>, refused: bool);
    /// How long a handed-over delivery is leased.
    fn lease(&self) -> Duration;
}

/// The deliveries of one ingest that a [`HandOff`] admitted: handed over with
/// [`Handed::start`] once committed, or given back when dropped unstarted (the
/// transaction failed, or the event was a duplicate and nothing was stored).
#[derive(Debug)]
pub(crate) struct Handed {
    to: Arc<dyn HandOff>,
    admitted: Vec<Fresh>,
    refused: bool,
}

impl Handed {
    /// Nothing admitted yet, for `new`'s offers; None when `new` has no hand-off.
    pub(crate) fn of(new: &NewEvent) -> Option<Self> {
        new.hand_off.as_ref().map(|to| Self {
            to: Arc::clone(to),
            admitted: Vec::new(),
            refused: false,
        })
    }

    /// Offers `fresh` (a delivery due now, to an unpaused webhook); true when admitted,
    /// and then the caller leases it to this node before committing.
    pub(crate) fn offer(&mut self, fresh: Fresh) -> bool {
        let admitted = self.to.admit(&fresh);
        if admitted {
            self.admitted.push(fresh);
        } else {
            self.refused = true;
        }
        admitted
    }

    /// Notes a delivery due now that is not offered but left to the claims (an ordered
    /// webhook's, see [`crate::domain::ordering::Ordering::hands_off`]), so that the
    /// dispatcher is woken to claim it.
    pub(crate) fn leave_to_claims(&mut self) {
        self.refused = true;
    }

    /// The admitted deliveries.
    pub(crate) fn admitted(&self) -> &[Fresh] {
        &self.admitted
    }

    /// How long the admitted deliveries are leased.
    pub(crate) fn lease(&self) -> Duration {
        self.to.lease()
    }

    /// Keeps the admitted deliveries `keep` accepts and gives back the others.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Fresh) -> bool) {
        let to = &self.to;
        self.admitted.retain(|fresh| {
            let kept = keep(fresh);
            if !kept {
                to.release(fresh);
            }
            kept
        });
    }

    /// Gives every admitted delivery back to the claims (and has the dispatcher claim).
    pub(crate) fn give_up(mut self) {
        self.retain(|_| false);
        self.refused = true;
        self.to.start(Vec::new(), true);
    }

    /// Hands the admitted deliveries of the committed event `new` over, each with its
    /// webhook from `webhooks` (one deleted meanwhile is given back).
    pub(crate) fn start(mut self, new: &NewEvent, webhooks: impl Fn(WebhookId) -> Option<Webhook>) {
        let admitted = std::mem::take(&mut self.admitted);
        let mut deliveries = Vec::with_capacity(admitted.len());
        for fresh in admitted {
            let Some(webhook) = webhooks(fresh.webhook) else {
                self.to.release(&fresh);
                continue;
            };
            deliveries.push(ClaimedDelivery {
                delivery_id: fresh.delivery,
                attempt_count: 0,
                interrupted: None,
                event_id: new.event.id,
                event_type: new.event.event_type.clone(),
                payload: new.event.payload.clone(),
                webhook,
            });
        }
        self.to.start(deliveries, self.refused);
    }
}

impl Drop for Handed {
    fn drop(&mut self) {
        for fresh in &self.admitted {
            self.to.release(fresh);
        }
    }
}

/// What ingest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored with this many deliveries, all in one transaction.
    Created {
        /// The new event's id.
        event_id: EventId,
        /// Deliveries created.
        deliveries: u32,
    },
    /// The idempotency key was used before.
    Duplicate {
        /// The earlier event.
        event_id: EventId,
        /// Whether the earlier request had the same content.
        same_request: bool,
    },
}

/// A delivery claimed for one attempt, with what the attempt needs.
///
/// `Debug` shows the payload's length only: event data is customer data.
#[derive(Clone)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// Attempts started before this one (this one is counted in the store already:
    /// see [`DeliveryQueue::claim_due`]).
    pub attempt_count: u32,
    /// When the previous attempt started, if its outcome was never recorded (see
    /// [`crate::domain::models::ErrorKind::Interrupted`]); its record is the caller's.
    pub interrupted: Option<Timestamp>,
    /// The event's id.
    pub event_id: EventId,
    /// The event's type.
    pub event_type: EventType,
    /// The body to send.
    pub payload: String,
    /// The webhook.
    pub webhook: Webhook,
}

impl std::fmt::Debug for ClaimedDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedDelivery")
            .field("delivery_id", &self.delivery_id)
            .field("attempt_count", &self.attempt_count)
            .field("interrupted", &self.interrupted)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field(
                "payload",
                &crate::domain::models::Redacted(self.payload.len()),
            )
            .field("webhook", &self.webhook)
            .finish()
    }
}

/// The result of one attempt, recorded atomically.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The attempt's log row.
    pub attempt: Attempt,
    /// The delivery's event (told in `delivery.exhausted`, see
    /// [`crate::domain::operational`]).
    pub event_id: EventId,
    /// Its type.
    pub event_type: EventType,
    /// What happens to the delivery.
    pub next: NextStep,
    /// What the attempt says about the webhook's health (see [`crate::domain::health`]).
    pub health: HealthEffect,
    /// The settings the health rules apply.
    pub policy: HealthPolicy,
}

/// A secret rotation of one webhook.
#[derive(Debug, Clone)]
pub struct SecretRotation {
    /// The webhook's site.
    pub site: SiteId,
    /// The webhook.
    pub webhook: WebhookId,
    /// Its new secret (Debug prints `[redacted]`).
    pub new: fullup_signature::Secret,
    /// How long the replaced secret keeps signing.
    pub grace: Duration,
    /// When the rotation happens.
    pub now: Timestamp,
}

/// The failed deliveries of one webhook, created in `[since, until)`, to make due at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// The webhook's site.
    pub site: SiteId,
    /// The webhook.
    pub webhook: WebhookId,
    /// Created at or after this.
    pub since: Timestamp,
    /// Created before this.
    pub until: Timestamp,
    /// When they become due.
    pub now: Timestamp,
}

/// The backlog and webhook counts the metrics' gauges show, read with a few cheap
/// queries (see [`Reads::backlog`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Deliveries in state `pending`: due, scheduled for a retry, or waiting for their
    /// webhook to be enabled or unpaused.
    pub pending: u64,
    /// The earliest `next_attempt_at` of a pending delivery of an enabled, unpaused
    /// webhook (in the past when one is overdue); None when there is none.
    pub oldest_due: Option<Timestamp>,
    /// Webhooks by state.
    pub webhooks: WebhookCounts,
}

/// How many webhooks are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookCounts {
    /// Enabled and not paused: their deliveries are attempted.
    pub enabled: u64,
    /// Enabled but paused by their owner: their deliveries wait.
    pub paused: u64,
    /// Disabled (by a 410, a failure streak, or their owner), paused or not.
    pub disabled: u64,
}

/// One batch of a prune: the events of `site` after `after` (from its first when
/// None) and below `below`, `limit` of them at most, in id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneBatch {
    /// The site pruned.
    pub site: SiteId,
    /// Where the previous batch of this pass stopped ([`Pruned::last`]): the events it
    /// kept (unfinished deliveries) are not looked at again.
    pub after: Option<EventId>,
    /// The retention's bound ([`crate::domain::retention::prune_below`]).
    pub below: EventId,
    /// Events looked at, at most: the size of the transaction.
    pub limit: u32,
}

/// What one prune batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events looked at; fewer than the batch's limit: the site's old events are done.
    pub scanned: u32,
    /// The last event looked at: the next batch's cursor.
    pub last: Option<EventId>,
    /// Events deleted.
    pub events: u64,
    /// Deliveries deleted.
    pub deliveries: u64,
    /// Attempts deleted.
    pub attempts: u64,
    /// Another node holds this site's prune lock (PostgreSQL): nothing was looked at.
    pub busy: bool,
}

/// A request for due deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Deliveries due at or before this time are taken.
    pub now: Timestamp,
    /// How long the claimed deliveries stay leased to the caller.
    pub lease: Duration,
    /// At most this many in all.
    pub limit: u32,
    /// The most attempts one webhook may have in flight (a webhook's own, adaptive
    /// limit may be lower: [`crate::domain::health::Health::concurrency_limit`]).
    pub per_webhook: u32,
    /// The most attempts one site may have in flight, over all its webhooks.
    pub per_site: u32,
    /// Deliveries a webhook may have leased per attempt its concurrency limit allows at
    /// once ([`crate::domain::webhook::lease_limit`]); 1 leases no more than it may send.
    pub leases_per_request: u32,
    /// The caller's leased deliveries whose requests are over, their outcomes not yet
    /// recorded: their leases still keep them from being claimed, but no longer count
    /// against their webhook's and site's room (the limits bound requests at once to a
    /// receiver; a group commit's wait is no request). The caller's worker count still
    /// holds them, so the attempts a crash can leave unrecorded stay bounded.
    pub settling: Vec<DeliveryId>,
}

/// The part of the store the dispatcher uses: leasing due deliveries and recording
/// what their attempts did.
#[async_trait]
pub trait DeliveryQueue: Send + Sync + std::fmt::Debug {
    /// Leases up to `claim.limit` due deliveries of enabled, unpaused webhooks, so that
    /// with the attempts already in flight (live leases, on any node, but those of
    /// `claim.settling`) no webhook has more than its concurrency limit and no site more than `claim.per_site`. Fair: the
    /// deliveries are taken round-robin across sites (each site's oldest due first, then
    /// each site's second, …) and, within a site, across its webhooks, so one site's
    /// backlog never stands in front of another site's due deliveries. Concurrent claims
    /// on several nodes may each take up to the caps: together they exceed a cap by at
    /// most one claim each.
    ///
    /// Each claimed delivery's attempt is counted as started, durably, before it is
    /// returned (`attempt_count` raised, `attempt_started_at` set; an ingest that hands
    /// a delivery over does the same): so a crash during the attempt still counts it,
    /// and the next attempt, numbered after it, reports it in
    /// [`ClaimedDelivery::interrupted`].
    async fn claim_due(&self, claim: &Claim) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records an attempt and its consequences in one transaction: the attempt row, the
    /// delivery's next step, and the webhook's health after
    /// [`crate::domain::health::Health::after_attempt`].
    async fn complete(&self, completion: Completion, now: Timestamp) -> StoreResult<()>;
    /// Wakes `wake` whenever deliveries become due that another node created, for as
    /// long as the future runs; a store with one node returns at once (its own ingests
    /// wake the dispatcher directly).
    async fn watch_due(&self, _wake: Arc<tokio::sync::Notify>) {}
    /// Stores the log row of an attempt whose outcome was lost
    /// ([`crate::domain::models::Attempt::interrupted`]).
    async fn record_interrupted(&self, attempt: &Attempt) -> StoreResult<()>;
    /// Drops the leases of claimed deliveries that will not be attempted now.
    async fn release_claims(&self, ids: &[DeliveryId]) -> StoreResult<()>;
    /// Gives back claimed deliveries whose attempts never sent a request (they waited,
    /// leased ahead, for a request slot that did not come): their leases are dropped and
    /// their attempts uncounted (`attempt_count` lowered, `attempt_started_at` cleared),
    /// so the attempt log shows no attempt that was never made.
    async fn release_unsent(&self, ids: &[DeliveryId]) -> StoreResult<()>;
    /// Takes the next slot of `webhook`, limited to `limit`, for a request about to be
    /// sent, by [`crate::domain::throttle::grant`] on the store's one clock, atomically
    /// for every node: how long from now the request must wait (zero: send now).
    async fn take_slot(&self, webhook: WebhookId, limit: RateLimit) -> StoreResult<Duration>;
}

/// Reads both stores run the same way (see [`reads`]).
#[async_trait]
pub trait Reads: Send + Sync {
    /// A stored setting (`admin_token_hash`, …).
    async fn get_setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// A site by id.
    async fn get_site(&self, id: SiteId) -> StoreResult<Option<Site>>;
    /// Sites, newest first.
    async fn list_sites(&self, page: &PageRequest) -> StoreResult<Page<Site>>;
    /// A site's keys, newest first.
    async fn list_api_keys(&self, site: SiteId, page: &PageRequest) -> StoreResult<Page<ApiKey>>;
    /// A site's webhook.
    async fn get_webhook(&self, site: SiteId, id: WebhookId) -> StoreResult<Option<Webhook>>;
    /// A site's webhooks, newest first.
    async fn list_webhooks(&self, site: SiteId, page: &PageRequest) -> StoreResult<Page<Webhook>>;
    /// How many webhooks a site has.
    async fn count_webhooks(&self, site: SiteId) -> StoreResult<u64>;
    /// A site's event.
    async fn get_event(&self, site: SiteId, id: EventId) -> StoreResult<Option<Event>>;
    /// A site's events, newest first, without their payloads.
    async fn list_events(
        &self,
        site: SiteId,
        filter: &EventFilterQuery,
        page: &PageRequest,
    ) -> StoreResult<Page<EventSummary>>;
    /// A site's delivery.
    async fn get_delivery(&self, site: SiteId, id: DeliveryId) -> StoreResult<Option<Delivery>>;
    /// A site's deliveries, newest first.
    async fn list_deliveries(
        &self,
        site: SiteId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Delivery>>;
    /// How many of a site's deliveries match `filter`, counting no further than `cap`.
    async fn count_deliveries(
        &self,
        site: SiteId,
        filter: &DeliveryFilter,
        cap: u32,
    ) -> StoreResult<u64>;
    /// A delivery's attempts, newest first.
    async fn list_attempts(
        &self,
        site: SiteId,
        delivery: DeliveryId,
        page: &PageRequest,
    ) -> StoreResult<Page<Attempt>>;
    /// What the attempts of `webhook` (of `site`) started at or after `since` did; one
    /// range of the `attempts_webhook` index.
    async fn attempt_stats(
        &self,
        site: SiteId,
        webhook: WebhookId,
        since: Timestamp,
    ) -> StoreResult<AttemptStats>;
    /// A site's catalogued event type.
    async fn get_event_type(&self, site: SiteId, name: &str)
    -> StoreResult<Option<EventTypeEntry>>;
    /// A site's catalogued event types, by name (at most
    /// [`crate::domain::catalog::MAX_EVENT_TYPES_PER_SITE`], so all of them).
    async fn list_event_types(&self, site: SiteId) -> StoreResult<Vec<EventTypeEntry>>;
    /// Every site with its own retention in days (None: the server's default).
    async fn site_retentions(&self) -> StoreResult<Vec<(SiteId, Option<u32>)>>;
    /// The names of a site's catalogued event types, sorted.
    async fn event_type_names(&self, site: SiteId) -> StoreResult<Vec<String>>;
    /// The backlog and webhook counts, for the metrics. Costs one pass over the
    /// pending part of one index (the count), one index probe per enabled webhook (the
    /// oldest due) and one pass over the webhooks: run it at an interval, not per scrape.
    async fn backlog(&self) -> StoreResult<Backlog>;
}

/// The service's storage.
#[async_trait]
pub trait Store: Reads + DeliveryQueue {
    /// Stores a setting unless one is stored already; true when this call stored it.
    /// Nodes starting together on one database agree on the first value stored.
    async fn add_setting(&self, key: &str, value: &[u8]) -> StoreResult<bool>;

    /// Stores a setting, replacing its value if it has one (`fullup admin
    /// rotate-admin-token`).
    async fn put_setting(&self, key: &str, value: &[u8]) -> StoreResult<()>;

    /// Creates a site.
    async fn create_site(&self, site: &Site) -> StoreResult<()>;
    /// Renames a site; false when it does not exist.
    async fn rename_site(&self, id: SiteId, name: &str, now: Timestamp) -> StoreResult<bool>;
    /// Deletes a site and everything it owns; false when it does not exist.
    async fn delete_site(&self, id: SiteId) -> StoreResult<bool>;

    /// Turns a site's strict mode on or off; false when the site does not exist.
    async fn set_strict_event_types(
        &self,
        id: SiteId,
        strict: bool,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Catalogues an event type, or replaces the entry of its name (keeping its
    /// creation time).
    async fn put_event_type(&self, entry: &EventTypeEntry) -> StoreResult<()>;
    /// Removes an event type from a site's catalog; false when it was not there.
    async fn delete_event_type(&self, site: SiteId, name: &str) -> StoreResult<bool>;

    /// Creates an API key.
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    /// The key whose token hashes to `token_hash`.
    async fn find_api_key(&self, token_hash: &[u8; 32]) -> StoreResult<Option<ApiKey>>;
    /// Deletes a key; false when the site has no such key.
    async fn delete_api_key(&self, site: SiteId, id: ApiKeyId) -> StoreResult<bool>;

    /// Stores a portal token of `site` (only its SHA-256, `token_hash`) that may be
    /// taken until `expires_at`, and drops the tokens that expired before `now`.
    async fn create_portal_token(
        &self,
        token_hash: &[u8; 32],
        site: SiteId,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Takes the portal token hashing to `token_hash` if it has not expired at `now`:
    /// its site, and the token is gone. Of several callers on any nodes, one gets it.
    async fn take_portal_token(
        &self,
        token_hash: &[u8; 32],
        now: Timestamp,
    ) -> StoreResult<Option<SiteId>>;

    /// Creates a webhook.
    async fn create_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    /// Saves a webhook's url, filter, description, health and paused flag (not its
    /// secrets: see [`Store::rotate_webhook_secret`]).
    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<bool>;
    /// Atomically applies `rotation` to the webhook's secrets (see
    /// [`Webhook::rotate_secret`]); the webhook after, or None when absent.
    async fn rotate_webhook_secret(
        &self,
        rotation: &SecretRotation,
    ) -> StoreResult<Option<Webhook>>;
    /// Deletes a webhook at `now`, keeping its history: in one transaction its pending
    /// deliveries are cancelled (none is attempted again; one in flight has its outcome
    /// logged) and the webhook is marked deleted, which leaves it out of every listing,
    /// match, claim and limit while its deliveries and attempts stay readable until
    /// retention prunes them. A webhook without deliveries goes at once. False when the
    /// site has no such webhook (or it was deleted already).
    async fn delete_webhook(
        &self,
        site: SiteId,
        id: WebhookId,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Sets how many days a site's events are kept (None: the server's default); false
    /// when the site does not exist.
    async fn set_site_retention(
        &self,
        id: SiteId,
        days: Option<u32>,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Prunes one batch of a site's old events (see [`PruneBatch`]) in one short
    /// transaction: each with its deliveries and their attempts, none of whose
    /// deliveries is unfinished. PostgreSQL: a site another node is pruning is skipped
    /// ([`Pruned::busy`]).
    async fn prune(&self, batch: &PruneBatch) -> StoreResult<Pruned>;

    /// Removes the rows of a site's deleted webhooks whose last delivery is gone;
    /// returns how many.
    async fn drop_deleted_webhooks(&self, site: SiteId) -> StoreResult<u64>;

    /// Stores an event and all of its deliveries (to the targets of
    /// [`crate::domain::webhook::targets`]) in one transaction.
    async fn ingest(&self, new: NewEvent) -> StoreResult<IngestOutcome>;

    /// Makes a delivery pending and due at `now`, whatever its state; None when absent.
    /// A live lease is kept: the attempt in flight decides what happens next, and no
    /// second attempt of the same delivery may run beside it.
    async fn retry_delivery(&self, d: &Delivery, now: Timestamp) -> StoreResult<Option<Delivery>>;
    /// Makes the failed deliveries `recovery` names due again; returns how many.
    async fn recover_deliveries(&self, recovery: &Recovery) -> StoreResult<u64>;

    /// Called once at start: a single-node store drops every lease, since the process
    /// that held them is gone; a shared store keeps them (other nodes may hold them).
    async fn recover_after_restart(&self) -> StoreResult<u64>;
    /// Re-seals every stored secret under `new` in one transaction, and the main key
    /// check with it; returns how many webhooks were re-sealed. Run it with every node
    /// stopped: a running node keeps sealing under the old key. After committing, this
    /// store still seals under the old key: reopen it to use the new one.
    async fn rotate_main_key(&self, new: &MainKey) -> StoreResult<u64>;
    /// Answers when the database serves a query now (readiness): on PostgreSQL the pool
    /// gets a live connection; on SQLite the file at the configured path opens and reads
    /// (a connection already open would keep reading a file moved or deleted under it).
    async fn ping(&self) -> StoreResult<()>;
    /// Closes every connection and waits until they are closed (at shutdown, after the
    /// last write), so the files are complete when the process exits.
    async fn close(&self);
}

/// What recording attempts of one webhook does to it (see [`health_change`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct HealthRecord {
    /// The health to write and, when the attempts enabled or disabled the webhook, the
    /// time to set as its `updated_at`; None when the health stays as it was read.
    pub write: Option<(Health, Option<Timestamp>)>,
    /// The service's own events the attempts call for, in the order they happened:
    /// each health change ([`operational::health_notices`]) and each delivery given up
    /// ([`operational::exhausted_notice`]), to store in the same transaction.
    pub notices: Vec<Notice>,
}

/// The record attempts of `webhook` call for, given the health read inside the recording
/// transaction and the attempts in the order they are recorded (each with the time it
/// is recorded).
pub(crate) fn health_change<'a>(
    webhook: WebhookId,
    read: &Health,
    attempts: impl IntoIterator<Item = (&'a Completion, Timestamp)>,
) -> HealthRecord {
    let mut health = read.clone();
    let mut last = None;
    let mut notices = Vec::new();
    for (c, now) in attempts {
        let after = health.after_attempt(c.health, &c.policy, c.attempt.started_at, now);
        notices.extend(operational::health_notices(webhook, &health, &after, now));
        notices.extend(exhausted(c));
        health = after;
        last = Some(now);
    }
    let write = (health != *read).then(|| {
        let updated = last.filter(|_| read.switch_differs(&health));
        (health, updated)
    });
    HealthRecord { write, notices }
}

/// The `delivery.exhausted` notice of `c`, if it gave its delivery up.
fn exhausted(c: &Completion) -> Option<Notice> {
    if c.next != NextStep::Failed {
        return None;
    }
    let a = &c.attempt;
    operational::exhausted_notice(&operational::Exhausted {
        delivery: a.delivery_id,
        webhook: a.webhook_id,
        event: c.event_id,
        event_type: &c.event_type,
        attempts: a.attempt_number,
        status_code: a.status_code,
        error_kind: a.error_kind.map(ErrorKind::as_str),
    })
}

/// The stored state and next attempt time a delivery gets from an attempt.
pub(crate) fn delivery_after(next: NextStep) -> (DeliveryState, Option<Timestamp>) {
    match next {
        NextStep::Succeeded => (DeliveryState::Succeeded, None),
        NextStep::RetryAt(at) => (DeliveryState::Pending, Some(at)),
        NextStep::Failed => (DeliveryState::Failed, None),
    }
}
