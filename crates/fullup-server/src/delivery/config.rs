//! How deliveries are attempted: timeouts, retries, concurrency. The delivery module's
//! own settings; the service's `Config` holds one.

use std::time::Duration;

use crate::domain::health::HealthPolicy;
use crate::domain::retry::RetrySchedule;

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
    /// Attempts in flight at once to one webhook, so one slow receiver cannot take every
    /// worker; a webhook that times out gets fewer (see [`crate::domain::health`]).
    pub per_webhook_concurrency: usize,
    /// Attempts in flight at once for one site, over all its webhooks, so one tenant's
    /// dead endpoints cannot take every worker.
    pub per_site_concurrency: usize,
    /// How often the dispatcher looks for due retries when nothing wakes it.
    pub poll_interval: Duration,
    /// Deliveries claimed per database round trip.
    pub claim_batch: u32,
    /// A webhook failing without one success for this long is disabled (5 days).
    pub disable_after: Duration,
}

/// Default time to connect to a receiver: Svix and Stripe use 10–15 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time for a whole attempt, answer included: 15 s, as Svix.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Default attempts in flight at once: far more than one node's CPU needs to keep
/// busy receivers fed, few enough for the usual 1024 open-file limit.
pub const DEFAULT_WORKERS: usize = 256;
/// Default attempts in flight to one webhook: enough for a fast receiver, a few
/// workers only for one that hangs.
pub const DEFAULT_PER_WEBHOOK_CONCURRENCY: usize = 16;
/// Default attempts in flight for one site: three quarters of the default workers, so a
/// tenant whose endpoints all start hanging at once leaves a quarter of them to everyone
/// else for the first request timeout, and nearly all of them once its webhooks' limits
/// are cut (four timeouts each). It is also more than one site's 10 webhooks at the
/// per-webhook default need (160), so one busy tenant is not slowed: a cap of 64 cost
/// the throughput bench a third of its deliveries/s, 128 a sixth (`docs/benchmarks.md`).
pub const DEFAULT_PER_SITE_CONCURRENCY: usize = 192;
/// Default streak after which a failing webhook is disabled: five days, past a long
/// weekend's outage.
pub const DEFAULT_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetrySchedule::default(),
            workers: DEFAULT_WORKERS,
            per_webhook_concurrency: DEFAULT_PER_WEBHOOK_CONCURRENCY,
            per_site_concurrency: DEFAULT_PER_SITE_CONCURRENCY,
            poll_interval: Duration::from_secs(1),
            claim_batch: 128,
            disable_after: DEFAULT_DISABLE_AFTER,
        }
    }
}

impl DeliveryConfig {
    /// The settings the webhook health rules apply.
    pub fn health_policy(&self) -> HealthPolicy {
        HealthPolicy {
            disable_after: self.disable_after,
            max_concurrency: u32::try_from(self.per_webhook_concurrency).unwrap_or(u32::MAX),
        }
    }

    /// How long a claimed delivery stays leased: past it, another worker (or this one
    /// after a crash) may claim it. Longer than any attempt can take.
    pub fn lease(&self) -> Duration {
        self.connect_timeout + self.request_timeout + Duration::from_secs(30)
    }
}
