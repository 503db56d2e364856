//! The service's settings, with the defaults `fullup serve` starts with.

use std::sync::Arc;
use std::time::Duration;

use fullup_signature::Secret;

use crate::domain::clock::{Clock, SystemClock};
use crate::domain::retry::RetrySchedule;

/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://fullup.db";
/// Default largest ingest request body.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 256 * 1024;

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://path` (created if missing).
    pub database_url: String,
    /// The admin token; when absent, the stored hash is used, or one is generated.
    pub admin_token: Option<Secret>,
    /// Largest ingest request body; larger ones get 413.
    pub max_event_bytes: usize,
    /// Delivery settings.
    pub delivery: DeliveryConfig,
    /// The time source (tests inject a manual clock).
    pub clock: Arc<dyn Clock>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            admin_token: None,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            delivery: DeliveryConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// How deliveries are attempted.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Connecting must finish within this (10 s: Svix and Stripe use 10–15 s).
    pub connect_timeout: Duration,
    /// The whole request, answer included, must finish within this (15 s, as Svix).
    pub request_timeout: Duration,
    /// When failed attempts are tried again.
    pub retry: RetrySchedule,
    /// Attempts in flight at once, over all webhooks.
    pub workers: usize,
    /// Attempts in flight at once to one webhook, so one slow receiver cannot take every worker.
    pub per_webhook_concurrency: usize,
    /// How often the dispatcher looks for due retries when nothing wakes it.
    pub poll_interval: Duration,
    /// Deliveries claimed per database round trip.
    pub claim_batch: u32,
    /// A webhook failing without one success for this long is disabled (5 days).
    pub disable_after: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(15),
            retry: RetrySchedule::default(),
            workers: 256,
            per_webhook_concurrency: 16,
            poll_interval: Duration::from_secs(1),
            claim_batch: 128,
            disable_after: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

impl DeliveryConfig {
    /// How long a claimed delivery stays leased: past it, another worker (or this one
    /// after a crash) may claim it. Longer than any attempt can take.
    pub fn lease(&self) -> Duration {
        self.connect_timeout + self.request_timeout + Duration::from_secs(30)
    }
}
