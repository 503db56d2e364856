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

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::{self, JoinSet};
use tokio_util::sync::CancellationToken;

use super::DeliveryConfig;
use super::guard::OutboundGuard;
use super::inbox::Inbox;
use super::sender::{AttemptResult, Sender};
use crate::domain::clock::Clock;
use crate::domain::ids::{AttemptId, DeliveryId};
use crate::domain::models::Attempt;
use crate::domain::models::ErrorKind;
use crate::domain::outcome::{AttemptClass, DeliveryOutcome, consequences};
use crate::domain::time::Timestamp;
use crate::domain::webhook::LEASES_PER_REQUEST;
use crate::metrics::{Metrics, StoreOp};
use crate::store::{Claim, ClaimedDelivery, Completion, DeliveryQueue};

/// How long a busy dispatcher holds back a claim smaller than its low water mark, for
/// more workers to free up so that one claim serves several: long enough to gather a
/// chunk while attempts end every few milliseconds, short enough that queued work
/// never waits on attempts that run long (a node whose other workers hang on slow
/// receivers, up to their timeout, still claims with the ones that are free).
const CHUNK_WAIT: Duration = Duration::from_millis(20);
/// Wait after a store error before claiming again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// First wait before recording an attempt again after the store failed; doubled after
/// each failure up to [`RECORD_BACKOFF_MAX`].
const RECORD_BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two tries of a record: the delivery is released at most this
/// long after the store answers again.
const RECORD_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A record is not tried this close to its lease's end: the lease was taken before the
/// attempt started, and a claim may take the delivery the moment it ends.
const RECORD_MARGIN: Duration = Duration::from_secs(5);

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

    /// Runs until `shutdown` is cancelled, then stops claiming at once and gives the
    /// attempts in flight `drain` to finish; the deliveries of those still running then
    /// are given back (their leases released, nothing recorded: see [`Running::cut`]).
    pub async fn run(mut self, shutdown: CancellationToken, drain: Duration) {
        let w = self.worker.clone();
        let watcher = {
            let (store, wake) = (w.store.clone(), w.wake.clone());
            tokio::spawn(async move { store.watch_due(wake).await })
        };
        let mut tasks = Running::default();
        // When a small claim was first held back (see CHUNK_WAIT).
        let mut held_since = None;
        while !shutdown.is_cancelled() {
            while tasks.try_join_next() {}
            while let Ok(delivery) = self.arrivals.try_recv() {
                w.start(delivery, &mut tasks);
            }
            let in_flight = w.inbox.in_flight();
            let free = w.inbox.free();
            let want = u32::try_from(free)
                .unwrap_or(u32::MAX)
                .min(w.config.claim_batch);
            // A busy dispatcher claims in chunks: one claim per freed worker would run
            // the claim query once per delivery. An idle one claims at once (latency).
            // A small claim is held back at most CHUNK_WAIT: workers stuck on slow
            // receivers must not keep the free ones idle while work is queued.
            let low_water = w.low_water();
            let small = want > 0 && in_flight >= low_water && (want as usize) < low_water;
            let hold = if small {
                let since = *held_since.get_or_insert_with(tokio::time::Instant::now);
                CHUNK_WAIT.checked_sub(since.elapsed())
            } else {
                None
            };
            let want = if hold.is_some() {
                0
            } else {
                held_since = None;
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
            if want > 0 && started == want && !shutdown.is_cancelled() {
                continue;
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {}
                _ = w.wake.notified() => {}
                Some(delivery) = self.arrivals.recv() => w.start(delivery, &mut tasks),
                true = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(hold.unwrap_or(w.config.poll_interval)) => {}
            }
        }
        watcher.abort();
        // Deliveries handed over until now were leased to this node by ingests that
        // committed before the signal: they are in flight already, attempt them.
        w.inbox.close();
        self.arrivals.close();
        while let Some(delivery) = self.arrivals.recv().await {
            w.start(delivery, &mut tasks);
        }
        let running = tasks.len();
        tracing::info!(
            attempts = running,
            drain_ms = u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
            "shutting down: no more claims; waiting for the attempts in flight"
        );
        let finished = tokio::time::timeout(drain, async { while tasks.join_next().await {} })
            .await
            .is_ok();
        if !finished {
            w.give_back(tasks.cut().await).await;
        }
    }
}

/// The attempts in flight, each with its delivery, so that those still running when
/// the drain at shutdown ends can be given back.
#[derive(Debug, Default)]
struct Running {
    tasks: JoinSet<()>,
    deliveries: HashMap<task::Id, DeliveryId>,
}

impl Running {
    fn spawn(&mut self, delivery: DeliveryId, attempt: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(attempt);
        self.deliveries.insert(handle.id(), delivery);
    }

    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for an attempt to end; false when none runs.
    async fn join_next(&mut self) -> bool {
        let Some(ended) = self.tasks.join_next_with_id().await else {
            return false;
        };
        self.forget(ended);
        true
    }

    /// Takes an attempt that has ended, if one has; false when none has.
    fn try_join_next(&mut self) -> bool {
        let Some(ended) = self.tasks.try_join_next_with_id() else {
            return false;
        };
        self.forget(ended);
        true
    }

    fn forget(&mut self, ended: Result<(task::Id, ()), task::JoinError>) -> Option<DeliveryId> {
        let id = match &ended {
            Ok((id, ())) => *id,
            Err(err) => {
                if err.is_panic() {
                    tracing::error!(error = %err, "a delivery attempt panicked; its lease ends and it is attempted again");
                }
                err.id()
            }
        };
        self.deliveries.remove(&id)
    }

    /// Stops every attempt still running (their requests are dropped, their outcomes
    /// not recorded) and returns their deliveries.
    async fn cut(mut self) -> Vec<DeliveryId> {
        self.tasks.abort_all();
        let mut cut = Vec::new();
        while let Some(ended) = self.tasks.join_next_with_id().await {
            let cancelled = matches!(&ended, Err(err) if err.is_cancelled());
            if let Some(delivery) = self.forget(ended).filter(|_| cancelled) {
                cut.push(delivery);
            }
        }
        cut
    }
}

impl Worker {
    /// Claims up to `want` due deliveries and starts their attempts; returns how many
    /// were claimed.
    async fn claim_and_start(
        &self,
        want: u32,
        tasks: &mut Running,
    ) -> crate::store::StoreResult<u32> {
        let _claiming = self.inbox.claiming().await;
        // Deliveries handed over since `want` was counted took some of its room.
        let free = self.inbox.free();
        let want = want.min(u32::try_from(free).unwrap_or(u32::MAX));
        if want == 0 {
            return Ok(0);
        }
        let claim = Claim {
            now: self.clock.now(),
            lease: self.config.lease(),
            limit: want,
            per_webhook: u32::try_from(self.config.per_webhook_concurrency).unwrap_or(u32::MAX),
            per_site: u32::try_from(self.config.per_site_concurrency).unwrap_or(u32::MAX),
            leases_per_request: LEASES_PER_REQUEST,
            settling: self.inbox.settling(),
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
    fn start(&self, delivery: ClaimedDelivery, tasks: &mut Running) {
        let this = self.clone();
        tasks.spawn(delivery.delivery_id, async move {
            this.attempt(delivery).await;
        });
    }

    /// Gives the deliveries of attempts cut at shutdown back at once (their leases
    /// released), so that another node, or this one after its restart, attempts them
    /// without waiting for the leases to end. Nothing is recorded: the attempt is not a
    /// failure of the receiver.
    async fn give_back(&self, cut: Vec<DeliveryId>) {
        if cut.is_empty() {
            return;
        }
        match self.store.release_claims(&cut).await {
            Ok(()) => tracing::warn!(
                deliveries = cut.len(),
                "attempts still running at the shutdown timeout were stopped; their deliveries were given back"
            ),
            Err(err) => {
                self.metrics.store_error(StoreOp::Release);
                let error = crate::error_chain(&err);
                tracing::error!(error = %error, deliveries = cut.len(), "giving back the deliveries of attempts stopped at shutdown failed; they are attempted again when their leases end");
            }
        }
    }

    /// Attempts in flight below which claims start at once, and free workers a busy
    /// dispatcher waits for before claiming: a quarter of a claim batch.
    fn low_water(&self) -> usize {
        let batch = usize::try_from(self.config.claim_batch).unwrap_or(usize::MAX);
        (batch.min(self.config.workers) / 4).max(1)
    }

    async fn attempt(&self, delivery: ClaimedDelivery) {
        // The lease was taken a moment ago (at the claim, or in the ingest): it ends no
        // sooner than a lease from now, less the time since.
        let leased_until = tokio::time::Instant::now() + self.config.lease();
        let number = delivery.attempt_count.saturating_add(1);
        if let Some(lost) = delivery.interrupted {
            self.record_interrupted(&delivery, number - 1, lost).await;
        }
        // Past this, a wait (for a request slot, a throttle slot) would leave the
        // request too little of its lease.
        let latest = leased_until
            .checked_sub(self.config.connect_timeout + self.config.request_timeout + RECORD_MARGIN)
            .unwrap_or_else(tokio::time::Instant::now);
        let Some(request) = self.inbox.request_slot(&delivery, latest).await else {
            // Its webhook's requests did not end in time, or it was disabled meanwhile:
            // the delivery goes back to the queue as if never claimed, for a claim to
            // take (this or another node) when it may.
            tracing::info!(delivery = %delivery.delivery_id, webhook = %delivery.webhook.id,
                "no request slot for this webhook in time; the delivery goes back to the queue unsent");
            self.inbox.ended(&delivery);
            if let Err(err) = self.store.release_unsent(&[delivery.delivery_id]).await {
                self.metrics.store_error(StoreOp::Release);
                let error = crate::error_chain(&err);
                tracing::error!(error = %error, delivery = %delivery.delivery_id, "giving back an unsent delivery failed; it is attempted again when its lease ends");
            }
            return;
        };
        if self.wait_for_slot(&delivery, latest).await {
            let started_at = self.clock.now();
            let result = self.sender.send(&delivery, number, started_at).await;
            let completion = self.completion(&delivery, number, started_at, result);
            // The receiver is done with it: the webhook's next request may go (a parked
            // delivery, if the node leased one ahead; claims wait for the record, so
            // that one claim serves the request's end and its record together).
            self.inbox
                .request_over(&delivery, completion.health, started_at, self.clock.now());
            drop(request);
            self.record(completion, leased_until).await;
        }
        // The attempt holds its worker until its outcome is recorded, and its lease
        // keeps it from being claimed until then: so `workers` also bounds the attempts
        // a crash leaves unrecorded, each of which is sent again. Freed at the request's
        // end, a busy node had more (the crash loop, `crates/fullup/tests/it/crash_loop.rs`,
        // saw 25 duplicates from one kill of a node with 24 workers).
        self.inbox.ended(&delivery);
        // Claim again only if something may wait for the room this attempt leaves.
        if !self.inbox.caught_up() {
            self.wake.notify_one();
        }
    }

    /// Waits until a request may be sent to the webhook of `d`, if it is throttled (see
    /// [`crate::domain::throttle`]): takes a slot from the store just before sending and
    /// sleeps until it comes; woken later than the limit allows after it (a late request
    /// would bunch with the next), takes a fresh one. The wait is no attempt: nothing is
    /// recorded, and the attempt's start is taken after it. Lateness counts from when the
    /// slot was asked for, so a slow answer from the store counts too. While the store
    /// fails, tries again with backoff; false when it failed until the lease nearly
    /// ended (the delivery is then attempted again when its lease ends, its attempt
    /// recorded as interrupted).
    async fn wait_for_slot(&self, d: &ClaimedDelivery, latest: tokio::time::Instant) -> bool {
        let Some(limit) = d.webhook.rate_limit else {
            return true;
        };
        let mut backoff = RECORD_BACKOFF_FIRST;
        loop {
            // The slot is at most `wait` after this: the store's clock read it after the
            // request left. Lateness counts from here, so a slow answer counts too.
            let asked = tokio::time::Instant::now();
            let wait = match self.store.take_slot(d.webhook.id, limit).await {
                Ok(wait) => wait,
                Err(err) => {
                    self.metrics.store_error(StoreOp::Claim);
                    let error = crate::error_chain(&err);
                    let retry_at = tokio::time::Instant::now() + backoff;
                    if retry_at >= latest {
                        tracing::error!(error = %error, delivery = %d.delivery_id, "taking a throttle slot failed until the lease nearly ended; the delivery will be attempted again when its lease ends");
                        return false;
                    }
                    tracing::warn!(error = %error, delivery = %d.delivery_id, "taking a throttle slot failed; trying again");
                    tokio::time::sleep_until(retry_at).await;
                    backoff = (backoff * 2).min(RECORD_BACKOFF_MAX);
                    continue;
                }
            };
            let slot = asked + wait;
            tokio::time::sleep_until(slot).await;
            let late = slot.elapsed();
            if late <= limit.lateness_allowed() || slot >= latest {
                return true;
            }
            tracing::debug!(delivery = %d.delivery_id, webhook = %d.webhook.id,
                late_us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX),
                "woken too late for a throttle slot; taking a fresh one");
        }
    }

    /// Records attempt `number` of `delivery`, started at `started_at`, as interrupted:
    /// its outcome was lost. A failure is logged; the attempt goes ahead (the log then
    /// misses that attempt, and the next one's number still counts it).
    async fn record_interrupted(&self, d: &ClaimedDelivery, number: u32, started_at: Timestamp) {
        let lost = Attempt::interrupted(d.delivery_id, d.webhook.id, number, started_at);
        tracing::info!(delivery = %d.delivery_id, webhook = %d.webhook.id, attempt = number,
            "an attempt's outcome was never recorded; recorded as interrupted");
        if let Err(err) = self.store.record_interrupted(&lost).await {
            self.metrics.store_error(StoreOp::Complete);
            let error = crate::error_chain(&err);
            tracing::error!(error = %error, delivery = %d.delivery_id, "recording an interrupted attempt failed");
        }
    }

    /// Records `completion`; while the store is unavailable (unreachable, out of space), tries
    /// again with backoff, in this attempt's task (holding its worker: claims fail
    /// while the store is unavailable too), until
    /// the store answers or the lease nears its end. So an outcome is recorded, and
    /// the delivery released, as soon as the store is back, not when the lease ends;
    /// past the lease another node may have claimed the delivery, so the record is
    /// given up and the delivery is attempted again.
    async fn record(&self, completion: Completion, leased_until: tokio::time::Instant) {
        let delivery = completion.attempt.delivery_id;
        let mut backoff = RECORD_BACKOFF_FIRST;
        for tries in 1u32.. {
            let Err(err) = self
                .store
                .complete(completion.clone(), self.clock.now())
                .await
            else {
                if tries > 1 {
                    tracing::info!(delivery = %delivery, tries, "recorded an attempt once the store answered again");
                }
                return;
            };
            self.metrics.store_error(StoreOp::Complete);
            let error = crate::error_chain(&err);
            let retry_at = tokio::time::Instant::now() + backoff;
            if !err.is_unavailable() {
                tracing::error!(error = %error, delivery = %delivery, "recording an attempt failed; the delivery will be attempted again when its lease ends");
                return;
            }
            if retry_at + RECORD_MARGIN >= leased_until {
                tracing::error!(error = %error, delivery = %delivery, tries, "recording an attempt failed until its lease nearly ended; the delivery will be attempted again when the lease ends");
                return;
            }
            if tries == 1 {
                tracing::warn!(error = %error, delivery = %delivery, "recording an attempt failed; trying again until the store answers");
            }
            tokio::time::sleep_until(retry_at).await;
            backoff = (backoff * 2).min(RECORD_BACKOFF_MAX);
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
