//! Persistence behind one trait, so the service runs on SQLite (one node) or PostgreSQL
//! (several nodes sharing one database).
//!
//! Everything dialect-specific stays inside an implementation; the API and the
//! dispatcher speak only [`Store`].

use async_trait::async_trait;

use crate::domain::ids::{ApiKeyId, DeliveryId, EventId, SiteId, WebhookId};
use crate::domain::models::{ApiKey, Attempt, Delivery, DeliveryState, Event, Site, Webhook};

mod filters;
pub mod postgres;
mod rows;
mod sealing;
pub mod sqlite;

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
    /// A sealed secret did not open, or the main key does not match the database.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// Another process has this SQLite database open (its lock file is named).
    #[error(
        "another fullup process is using this database (it holds {0}): a SQLite database serves one `fullup serve` at a time; stop the other one, or use PostgreSQL for several nodes"
    )]
    InUse(std::path::PathBuf),
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
    /// Created at or after (Unix ms).
    pub since: Option<i64>,
    /// Created before (Unix ms).
    pub until: Option<i64>,
}

/// Filters of the event list.
#[derive(Debug, Clone, Default)]
pub struct EventFilterQuery {
    /// Only events of this exact type.
    pub event_type: Option<String>,
    /// Created at or after (Unix ms).
    pub since: Option<i64>,
    /// Created before (Unix ms).
    pub until: Option<i64>,
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
    /// Attempts made before this one.
    pub attempt_count: u32,
    /// The event's id.
    pub event_id: EventId,
    /// The event's type.
    pub event_type: String,
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

/// What an attempt changes in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered.
    Succeeded,
    /// Try again at this time (Unix ms).
    RetryAt(i64),
    /// Give up.
    Failed,
}

/// What an attempt changes in its webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEffect {
    /// The receiver answered 2xx: it is healthy.
    Healthy,
    /// The attempt failed; disable the webhook if it has failed since before this time.
    Failing {
        /// Disable when `failing_since` is at or before this (Unix ms).
        disable_if_failing_since: i64,
    },
    /// Disable at once with this reason (410 Gone).
    Disable(String),
}

/// The result of one attempt, recorded atomically.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The attempt's log row.
    pub attempt: Attempt,
    /// What happens to the delivery.
    pub next: NextStep,
    /// What happens to the webhook.
    pub webhook: WebhookEffect,
}

/// The service's storage.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// A stored setting (`admin_token_hash`, …).
    async fn get_setting(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stores a setting unless one is stored already; true when this call stored it.
    /// Nodes starting together on one database agree on the first value stored.
    async fn add_setting(&self, key: &str, value: &[u8]) -> StoreResult<bool>;

    /// Creates a site.
    async fn create_site(&self, site: &Site) -> StoreResult<()>;
    /// A site by id.
    async fn get_site(&self, id: SiteId) -> StoreResult<Option<Site>>;
    /// Sites, newest first.
    async fn list_sites(&self, page: &PageRequest) -> StoreResult<Page<Site>>;
    /// Renames a site; false when it does not exist.
    async fn rename_site(&self, id: SiteId, name: &str, now: i64) -> StoreResult<bool>;
    /// Deletes a site and everything it owns; false when it does not exist.
    async fn delete_site(&self, id: SiteId) -> StoreResult<bool>;

    /// Creates an API key.
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    /// The key whose token hashes to `token_hash`.
    async fn find_api_key(&self, token_hash: &[u8; 32]) -> StoreResult<Option<ApiKey>>;
    /// A site's keys, newest first.
    async fn list_api_keys(&self, site: SiteId, page: &PageRequest) -> StoreResult<Page<ApiKey>>;
    /// Deletes a key; false when the site has no such key.
    async fn delete_api_key(&self, site: SiteId, id: ApiKeyId) -> StoreResult<bool>;

    /// Creates a webhook.
    async fn create_webhook(&self, webhook: &Webhook) -> StoreResult<()>;
    /// A site's webhook.
    async fn get_webhook(&self, site: SiteId, id: WebhookId) -> StoreResult<Option<Webhook>>;
    /// A site's webhooks, newest first.
    async fn list_webhooks(&self, site: SiteId, page: &PageRequest) -> StoreResult<Page<Webhook>>;
    /// How many webhooks a site has.
    async fn count_webhooks(&self, site: SiteId) -> StoreResult<u64>;
    /// Saves a webhook's url, filter, description, enabled flag and reason (not its
    /// secrets: see [`Store::rotate_webhook_secret`]).
    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<bool>;
    /// Atomically replaces a webhook's secret with `new`, keeping the replaced one valid
    /// for `grace_ms` (see [`Webhook::rotate_secret`]); the webhook after, or None when absent.
    async fn rotate_webhook_secret(
        &self,
        site: SiteId,
        id: WebhookId,
        new: fullup_signature::Secret,
        grace_ms: i64,
        now: i64,
    ) -> StoreResult<Option<Webhook>>;
    /// Deletes a webhook and cancels its pending deliveries.
    async fn delete_webhook(&self, site: SiteId, id: WebhookId) -> StoreResult<bool>;

    /// Stores an event and all of its deliveries in one transaction.
    async fn ingest(&self, new: &NewEvent) -> StoreResult<IngestOutcome>;
    /// A site's event.
    async fn get_event(&self, site: SiteId, id: EventId) -> StoreResult<Option<Event>>;
    /// A site's events, newest first.
    async fn list_events(
        &self,
        site: SiteId,
        filter: &EventFilterQuery,
        page: &PageRequest,
    ) -> StoreResult<Page<Event>>;

    /// A site's delivery.
    async fn get_delivery(&self, site: SiteId, id: DeliveryId) -> StoreResult<Option<Delivery>>;
    /// A site's deliveries, newest first.
    async fn list_deliveries(
        &self,
        site: SiteId,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Delivery>>;
    /// Makes a delivery pending and due at `now`, whatever its state; None when absent.
    /// A live lease is kept: the attempt in flight decides what happens next, and no
    /// second attempt of the same delivery may run beside it.
    async fn retry_delivery(
        &self,
        site: SiteId,
        id: DeliveryId,
        now: i64,
    ) -> StoreResult<Option<Delivery>>;
    /// Makes a webhook's failed deliveries created in `[since, until)` due at `now`.
    async fn recover_deliveries(
        &self,
        site: SiteId,
        webhook: WebhookId,
        since: i64,
        until: i64,
        now: i64,
    ) -> StoreResult<u64>;
    /// A delivery's attempts, newest first.
    async fn list_attempts(
        &self,
        site: SiteId,
        delivery: DeliveryId,
        page: &PageRequest,
    ) -> StoreResult<Page<Attempt>>;

    /// Leases up to `limit` due deliveries of enabled, unpaused webhooks not in `skip_webhooks`
    /// until `lease_until`, oldest due first. At most `per_webhook` of one webhook are of
    /// use (its concurrency limit); a store may return more, and the caller releases them.
    async fn claim_due(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
        per_webhook: u32,
        skip_webhooks: &[WebhookId],
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records an attempt and its consequences in one transaction.
    async fn complete(&self, completion: &Completion, now: i64) -> StoreResult<()>;
    /// Drops the leases of claimed deliveries that will not be attempted now.
    async fn release_claims(&self, ids: &[DeliveryId]) -> StoreResult<()>;
    /// Called once at start: a single-node store drops every lease, since the process
    /// that held them is gone; a shared store keeps them (other nodes may hold them).
    async fn recover_after_restart(&self) -> StoreResult<u64>;
    /// Closes every connection and waits until they are closed (at shutdown, after the
    /// last write), so the files are complete when the process exits.
    async fn close(&self);
}
