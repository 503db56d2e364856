//! The delivery loop: claim due deliveries, run their attempts concurrently, record the
//! outcomes.
//!
//! Isolation: at most `workers` attempts run at once; the store's claim keeps each
//! webhook within its (adaptive) concurrency limit and each site within
//! `per_site_concurrency`, counting every live lease, and takes due deliveries
//! round-robin across sites. So a receiver that hangs holds a few workers, a tenant
//! whose receivers all hang holds at most its site's share, and neither delays another
//! site's deliveries. Claims are leases: a delivery whose attempt never reports (crash)
//! becomes claimable again when its lease ends. While nothing waits in the queue, fresh
//! deliveries come from ingest through the [`Inbox`] instead, leased already, and need
//! no claim.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::DeliveryConfig;
use super::guard::OutboundGuard;
use super::inbox::Inbox;
use super::sender::{AttemptResult, Sender};
use crate::domain::clock::Clock;
use crate::domain::ids::AttemptId;
use crate::domain::models::Attempt;
use crate::domain::models::ErrorKind;
use crate::domain::outcome::{AttemptClass, DeliveryOutcome, consequences};
use crate::domain::time::Timestamp;
use crate::metrics::{Metrics, StoreOp};
use crate::store::{Claim, ClaimedDelivery, Completion, DeliveryQueue};

/// Extra time granted at shutdown, beyond the request timeout, to record outcomes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Wait after a store error before claiming again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// Claims and runs deliveries until cancelled.
#[derive(Debug)]
pub struct Dispatcher {
    worker: Worker,
    /// Deliveries handed over by ingests (see [`Inbox`]).
    arrivals: mpsc::UnboundedReceiver<ClaimedDelivery>,
}

/// What an attempt needs; cloned into each attempt's task.
#[derive(Debug, Clone)]
struct Worker {
    store: Arc<dyn DeliveryQueue>,
    clock: Arc<dyn Clock>,
    config: DeliveryConfig,
    sender: Sender,
    wake: Arc<Notify>,
    inbox: Arc<Inbox>,
    metrics: Arc<Metrics>,
}

impl Dispatcher {
    /// A dispatcher over `store`, woken early by `wake`, reaching only what `guard`
    /// allows, counting its attempts in `metrics`.
    pub fn new(
        store: Arc<dyn DeliveryQueue>,
        clock: Arc<dyn Clock>,
        config: DeliveryConfig,
        wake: Arc<Notify>,
        guard: OutboundGuard,
        metrics: Arc<Metrics>,
    ) -> reqwest::Result<Self> {
        let (inbox, arrivals) = Inbox::new(&config, wake.clone());
        Ok(Self {
            worker: Worker {
                sender: Sender::new(&config, guard)?,
                store,
                clock,
                config,
                wake,
                inbox: Arc::new(inbox),
                metrics,
            },
            arrivals,
        })
    }

    /// Where ingests hand this dispatcher their fresh deliveries.
    pub fn inbox(&self) -> Arc<Inbox> {
        Arc::clone(&self.worker.inbox)
    }

    /// Runs until `shutdown` is cancelled, then stops claiming and waits (at most the
    /// request timeout plus a few seconds) for attempts in flight to be recorded.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let w = self.worker.clone();
        let watcher = {
            let (store, wake) = (w.store.clone(), w.wake.clone());
            tokio::spawn(async move { store.watch_due(wake).await })
        };
        let mut tasks = JoinSet::new();
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            while let Ok(delivery) = self.arrivals.try_recv() {
                w.start(delivery, &mut tasks);
            }
            let in_flight = w.inbox.in_flight();
            let free = w.config.workers.saturating_sub(in_flight);
            let want = u32::try_from(free)
                .unwrap_or(u32::MAX)
                .min(w.config.claim_batch);
            // A busy dispatcher claims in chunks: one claim per freed worker would run
            // the claim query once per delivery. An idle one claims at once (latency).
            let low_water = w.low_water();
            let want = if in_flight >= low_water && (want as usize) < low_water {
                0
            } else {
                want
            };
            let started = if want == 0 {
                0
            } else {
                match w.claim_and_start(want, &mut tasks).await {
                    Ok(n) => n,
                    Err(err) => {
                        w.metrics.store_error(StoreOp::Claim);
                        let error = crate::error_chain(&err);
                        tracing::error!(error = %error, "claiming deliveries failed");
                        tokio::time::sleep(ERROR_BACKOFF).await;
                        0
                    }
                }
            };
            if want > 0 && started == want {
                continue;
            }
            tokio::select! {
                _ = w.wake.notified() => {}
                Some(delivery) = self.arrivals.recv() => w.start(delivery, &mut tasks),
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(w.config.poll_interval) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        watcher.abort();
        // Deliveries handed over until now were accepted for this node: attempt them.
        w.inbox.close();
        self.arrivals.close();
        while let Some(delivery) = self.arrivals.recv().await {
            w.start(delivery, &mut tasks);
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(w.config.request_timeout + SHUTDOWN_GRACE, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                "attempts still running at shutdown; their leases will expire and they will be retried"
            );
        }
    }
}

impl Worker {
    /// Claims up to `want` due deliveries and starts their attempts; returns how many
    /// were claimed.
    async fn claim_and_start(
        &self,
        want: u32,
        tasks: &mut JoinSet<()>,
    ) -> crate::store::StoreResult<u32> {
        let claim = Claim {
            now: self.clock.now(),
            lease: self.config.lease(),
            limit: want,
            per_webhook: u32::try_from(self.config.per_webhook_concurrency).unwrap_or(u32::MAX),
            per_site: u32::try_from(self.config.per_site_concurrency).unwrap_or(u32::MAX),
        };
        let claimed = self.store.claim_due(&claim).await?;
        let count = u32::try_from(claimed.len()).unwrap_or(u32::MAX);
        for delivery in &claimed {
            self.inbox.claimed(delivery);
        }
        self.inbox
            .after_claim(usize::try_from(want).unwrap_or(usize::MAX), &claimed);
        for delivery in claimed {
            self.start(delivery, tasks);
        }
        Ok(count)
    }

    /// Runs the attempt of `delivery`, counted in flight already.
    fn start(&self, delivery: ClaimedDelivery, tasks: &mut JoinSet<()>) {
        let this = self.clone();
        tasks.spawn(async move { this.attempt(delivery).await });
    }

    /// Attempts in flight below which claims start at once, and free workers a busy
    /// dispatcher waits for before claiming: a quarter of a claim batch.
    fn low_water(&self) -> usize {
        let batch = usize::try_from(self.config.claim_batch).unwrap_or(usize::MAX);
        (batch.min(self.config.workers) / 4).max(1)
    }

    async fn attempt(&self, delivery: ClaimedDelivery) {
        let number = delivery.attempt_count.saturating_add(1);
        let started_at = self.clock.now();
        let result = self.sender.send(&delivery, number, started_at).await;
        // The limits are on requests to receivers: this one is over, so its room is free
        // for a fresh delivery while the outcome is being recorded (a group commit's
        // wait, longer than many requests). A claim still counts its lease until then.
        self.inbox.ended(&delivery);
        let completion = self.completion(&delivery, number, started_at, result);
        let now = self.clock.now();
        if let Err(err) = self.store.complete(completion, now).await {
            self.metrics.store_error(StoreOp::Complete);
            let error = crate::error_chain(&err);
            tracing::error!(error = %error, delivery = %delivery.delivery_id, "recording an attempt failed; the delivery will be retried when its lease ends");
        }
        // Claim again only if something may wait for the room this attempt leaves.
        if !self.inbox.caught_up() {
            self.wake.notify_one();
        }
    }

    /// The attempt's record and, by the domain's rules, what it means for its
    /// delivery and webhook.
    fn completion(
        &self,
        d: &ClaimedDelivery,
        number: u32,
        started_at: Timestamp,
        r: AttemptResult,
    ) -> Completion {
        let verdict = r.verdict();
        let (next, health) = consequences(verdict, number, &self.config.retry, self.clock.now());
        let class = AttemptClass::of(r.status, r.error_kind);
        let refused = r.error_kind == Some(ErrorKind::Blocked);
        let outcome = DeliveryOutcome::of(verdict, next, refused);
        self.metrics.attempt(class, outcome, r.duration);
        log_attempt(d, number, &r, class, outcome);
        Completion {
            attempt: Attempt {
                id: AttemptId::new(started_at),
                delivery_id: d.delivery_id,
                webhook_id: d.webhook.id,
                attempt_number: number,
                started_at,
                duration: r.duration,
                status_code: r.status,
                error_kind: r.error_kind,
                error_message: r.error_message,
                response_body: r.response_body,
                request_headers: r.request_headers,
                response_headers: r.response_headers,
            },
            event_id: d.event_id,
            event_type: d.event_type.clone(),
            next,
            health,
            policy: self.config.health_policy(),
        }
    }
}

/// One line per attempt: successes at debug (there are many), failures at info. The
/// URL and the error message stay out: a webhook URL may carry a token (Slack's do),
/// and the error names the URL; the attempt log in the API has the message.
fn log_attempt(
    d: &ClaimedDelivery,
    number: u32,
    r: &AttemptResult,
    class: AttemptClass,
    outcome: DeliveryOutcome,
) {
    let duration_ms = u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX);
    if r.error_kind == Some(ErrorKind::SecretUnreadable) {
        // The message names the key id or the failed binding, never a secret.
        tracing::error!(delivery = %d.delivery_id, webhook = %d.webhook.id, attempt = number,
            class = %class.as_str(), outcome = %outcome.as_str(), error = r.error_message.as_deref().unwrap_or_default(),
            "a webhook's secrets do not open on this node; its delivery attempt failed without sending");
    } else if r.succeeded() {
        tracing::debug!(delivery = %d.delivery_id, webhook = %d.webhook.id, attempt = number,
            status = r.status, class = %class.as_str(), outcome = %outcome.as_str(), duration_ms,
            "delivery attempt succeeded");
    } else {
        tracing::info!(delivery = %d.delivery_id, webhook = %d.webhook.id, attempt = number,
            status = r.status, class = %class.as_str(), outcome = %outcome.as_str(), duration_ms,
            "delivery attempt failed");
    }
}
