//! The use cases, below HTTP: what the API, the console and the CLI ask of the service.
//!
//! A use case takes typed input (ids, [`crate::domain`] values), applies the domain's
//! rules, calls the store, and wakes the dispatcher when it made something due. It
//! answers with its own [`ServiceError`], which `api/` maps to HTTP statuses. Access
//! control (which caller may touch which site) stays with the caller: a use case is
//! handed a site its caller may reach.
//!
//! One module per family: [`sites`] (sites and API keys), [`webhooks`], [`events`]
//! (ingest and the event log), [`catalog`] (the event-type catalog), [`deliveries`] (deliveries, attempts, retries),
//! [`monitoring`] (readiness and the backlog gauges), [`portal`] (portal links of the
//! console), [`retention`] (pruning old events and deleted webhooks' history).

use std::sync::Arc;

use tokio::sync::Notify;

use crate::delivery::guard::OutboundGuard;
use crate::domain::clock::Clock;
use crate::domain::health::HealthPolicy;
use crate::metrics::{Metrics, StoreOp};
use crate::store::{HandOff, Store, StoreError, StoreResult};
use crate::tokens::TokenHasher;

pub mod catalog;
pub mod deliveries;
pub mod events;
pub mod monitoring;
pub mod portal;
pub mod retention;
pub mod sites;
pub mod webhooks;

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The thing named does not exist (or is not the caller's to see).
    #[error("{0} does not exist")]
    NotFound(String),
    /// A value is well-formed but not acceptable; `code` names the field's rule.
    #[error("{message}")]
    Invalid {
        /// Stable machine-readable code, such as `invalid_url`.
        code: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The request conflicts with the current state (a disabled webhook, a full site).
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable code, such as `webhook_disabled`.
        code: &'static str,
        /// What is in the way and how to clear it.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    /// [`ServiceError::Invalid`] with `code`.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// [`ServiceError::Conflict`] with `code`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

/// Who asked for a use case, as audit lines (target `fullup::audit`) name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The admin token, on the API.
    Admin,
    /// A site API key, on the API.
    ApiKey(crate::domain::ids::ApiKeyId),
    /// The console, signed in with the admin token.
    ConsoleAdmin,
    /// The console, opened from a portal link of this site.
    Portal(crate::domain::ids::SiteId),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::ApiKey(key) => write!(f, "api_key:{key}"),
            Self::ConsoleAdmin => f.write_str("console:admin"),
            Self::Portal(site) => write!(f, "console:portal:{site}"),
        }
    }
}

/// Target of audit log lines: who read or replaced a secret. Never the secret itself.
pub const AUDIT_TARGET: &str = "fullup::audit";

/// Shorthand for use case results.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// Everything the use cases need; cheap to clone.
#[derive(Debug, Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    hand_off: Option<Arc<dyn HandOff>>,
    guard: OutboundGuard,
    health: HealthPolicy,
    metrics: Arc<Metrics>,
    tokens: TokenHasher,
    schemas: Arc<catalog::SchemaCache>,
}

impl Service {
    /// The use cases over `store`, telling time by `clock`, waking the dispatcher
    /// through `wake`, judging webhook URLs with `guard` (as deliveries are), and
    /// webhook health with `health` (as the dispatcher does), recording what they do in
    /// `metrics`, and keeping tokens as hashes under `tokens`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
        guard: OutboundGuard,
        health: HealthPolicy,
        metrics: Arc<Metrics>,
        tokens: TokenHasher,
    ) -> Self {
        Self {
            store,
            clock,
            wake,
            hand_off: None,
            guard,
            health,
            metrics,
            tokens,
            schemas: Arc::default(),
        }
    }

    /// The keyed hash of `token`, the only form in which tokens are kept or compared.
    pub fn token_hash(&self, token: &str) -> [u8; 32] {
        self.tokens.hash(token)
    }

    /// These use cases, offering the deliveries an ingest creates to `to` (this node's
    /// dispatcher; see [`crate::delivery::inbox`]) instead of waking it to claim them.
    #[must_use]
    pub fn handing_off_to(mut self, to: Arc<dyn HandOff>) -> Self {
        self.hand_off = Some(to);
        self
    }

    /// The metrics the use cases record, for `GET /metrics` to render.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The `result` of a store call, a failure counted under `op`
    /// (`fullup_store_errors_total`).
    fn counted<T>(&self, op: StoreOp, result: StoreResult<T>) -> StoreResult<T> {
        result.inspect_err(|_| self.metrics.store_error(op))
    }

    /// Attempts `webhook` may have in flight now.
    pub fn concurrency_limit(&self, webhook: &crate::domain::webhook::Webhook) -> u32 {
        webhook
            .ordering
            .concurrency(webhook.health.concurrency_limit(&self.health))
    }

    /// The time now, by the service's clock (sessions' and links' expiry).
    pub fn now(&self) -> crate::domain::time::Timestamp {
        self.clock.now()
    }

    /// The store, for what is not a use case (authentication, start-up settings).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Tells the dispatcher that deliveries may have become due.
    fn wake_dispatcher(&self) {
        self.wake.notify_one();
    }
}
