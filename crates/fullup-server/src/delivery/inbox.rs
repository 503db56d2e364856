//! Fresh deliveries straight from ingest to this node's dispatcher.
//!
//! A claim costs a query (on PostgreSQL a statement and a round trip; on SQLite a read,
//! a webhook lookup and the claim lock), and a node that keeps up with its ingest would
//! pay one per delivery for work it has just written itself. So while the dispatcher
//! has nothing queued to claim, an ingest offers each new delivery here: if there is
//! room (a free worker, and the webhook and its site below their limits, counting this
//! node's attempts in flight), the store leases the delivery to this node inside the
//! ingest's own transaction and hands it over after the commit, and no claim runs.
//!
//! Fairness is the claims' job, and stays theirs: a delivery that does not fit is
//! queued, and the dispatcher claims. What does not fit decides what is queued after
//! it: a webhook at its limit is *behind* (its next deliveries are queued too, so none
//! overtakes one of its own waiting in the queue), a site at its limit likewise, and
//! only a node with no free worker puts every delivery behind (the claims then take due
//! work round-robin across sites as before). A webhook or site is caught up again when
//! a claim finds less due than it asked for and leaves it below its limit; the node,
//! when a claim finds less due than it asked for. So a webhook whose receiver hangs or
//! fails fast holds its own room and its own queue, not the hand-off of every other
//! webhook: before, one webhook at its limit put the whole node behind, and every
//! delivery of every site waited for a claim (the hostile-receivers suite measured a
//! healthy webhook's p99 going from 28 ms to 1.2 s, on its own site and on another).
//!
//! A claim and the hand-off never fill the same room: a claim counts the leases in the
//! store, so while it runs no delivery is admitted here (each is queued, and the
//! dispatcher claims again), and it starts only once every admitted delivery is leased
//! or given back ([`Inbox::claiming`]). Before, a claim that read a webhook's leases
//! while ingests handed it deliveries took its whole room again: twice a webhook's
//! limit at once (the crash loop saw 16 requests to a webhook limited to 8).
//!
//! A webhook's limit here is [`crate::domain::webhook::lease_limit`]: a node leases
//! several deliveries per request the webhook may have at once, and
//! [`Inbox::request_slot`] lets only that many send.
//!
//! The limits counted here are this node's; the
//! claims count every node's leases. So, as with concurrent claims, several nodes
//! together may exceed a webhook's limit by what each has in flight. An attempt counts
//! against its webhook and site until its request is over, and against the node's
//! workers until its outcome is recorded: the webhook and site limits bound the
//! requests a receiver gets at once, and the workers bound what a crash can leave
//! unrecorded (and send again). The claims count the same way: this node's leases whose
//! requests are over ([`Inbox::settling`]) are left out of their rooms. Held until the
//! record, a fast receiver's room waited for each group commit, and one webhook got a
//! fraction of what it could take (fan-out 1 delivered about half of what was ingested).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::domain::health::{Health, HealthEffect, HealthPolicy};
use crate::domain::ids::{DeliveryId, SiteId, WebhookId};
use crate::domain::time::Timestamp;
use crate::domain::webhook::{LEASES_PER_REQUEST, in_flight_limit, lease_limit};
use crate::store::{ClaimedDelivery, Fresh, HandOff};

use super::DeliveryConfig;

/// How long a claim waits for admitted deliveries to be leased or given back (an
/// ingest's commit); past it the claim runs anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Attempts in flight on this node: in all, per webhook and per site; and the
/// hand-off's state towards the claims.
#[derive(Debug, Default)]
struct InFlight {
    /// Deliveries leased to this node, parked ones included.
    total: usize,
    /// Leased deliveries waiting for their webhook's request slot (see
    /// [`Inbox::request_slot`]): they hold no worker. The others (`total` less these)
    /// do, from their claim or hand-off until their outcome is recorded.
    parked: HashSet<DeliveryId>,
    /// Parked deliveries whose webhook has a free slot, waiting for a worker.
    node_waiting: u32,
    webhooks: HashMap<WebhookId, u32>,
    sites: HashMap<SiteId, u32>,
    /// Requests running per webhook, and those waiting to send (see
    /// [`Inbox::request_slot`]).
    requests: HashMap<WebhookId, Gate>,
    /// Attempts whose requests are over, their outcomes not yet recorded: counted in
    /// `total`, no longer in `webhooks` and `sites`.
    settling: HashSet<DeliveryId>,
    /// Admitted deliveries not yet handed over or given back: leased in a transaction
    /// that has not committed, so a claim would not see their leases.
    unsettled: usize,
    /// A claim is running: nothing is admitted.
    claiming: bool,
    /// Webhooks behind (see the module doc), each with the limit it was found at.
    webhooks_behind: HashMap<WebhookId, u32>,
    /// Sites behind: found at the per-site limit.
    sites_behind: HashSet<SiteId>,
}

impl InFlight {
    fn add(&mut self, webhook: WebhookId, site: SiteId) {
        self.total += 1;
        *self.webhooks.entry(webhook).or_default() += 1;
        *self.sites.entry(site).or_default() += 1;
    }

    fn remove(&mut self, webhook: WebhookId, site: SiteId) {
        self.total = self.total.saturating_sub(1);
        decrement(&mut self.webhooks, webhook);
        decrement(&mut self.sites, site);
    }

    /// Leased deliveries holding a worker.
    fn active(&self) -> usize {
        self.total.saturating_sub(self.parked.len())
    }

    fn of_webhook(&self, webhook: WebhookId) -> u32 {
        self.webhooks.get(&webhook).copied().unwrap_or(0)
    }

    fn of_site(&self, site: SiteId) -> u32 {
        self.sites.get(&site).copied().unwrap_or(0)
    }

    /// Keeps behind only the webhooks and sites still at their limit: a claim that
    /// found less due than it asked for took everything the others had waiting.
    fn catch_up(&mut self, per_site: u32) {
        let webhooks = &self.webhooks;
        let count = |w: &WebhookId| webhooks.get(w).copied().unwrap_or(0);
        self.webhooks_behind.retain(|w, limit| count(w) >= *limit);
        let sites = &self.sites;
        let count = |s: &SiteId| sites.get(s).copied().unwrap_or(0);
        self.sites_behind.retain(|s| count(s) >= per_site);
    }
}

/// One webhook's requests on this node: how many run, how many wait, where the
/// waiting ones are told that one ended, and the webhook's health as the requests
/// ended since the gate opened say it is (the leases' copies date from their claims:
/// deliveries leased ahead of a receiver that started hanging must not go out at the
/// limit it had before).
#[derive(Debug, Default)]
struct Gate {
    running: u32,
    waiting: u32,
    ended: Arc<Notify>,
    health: Option<Health>,
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: K) {
    if let Some(n) = counts.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

/// What the dispatcher tells the inbox and the ingests ask of it; shared by both.
#[derive(Debug)]
pub struct Inbox {
    workers: usize,
    per_site: u32,
    policy: HealthPolicy,
    lease: Duration,
    in_flight: Mutex<InFlight>,
    /// Told when a worker comes free while a parked delivery waits for one.
    worker_free: Notify,
    /// Told when the last admitted delivery is handed over or given back.
    settled: Notify,
    /// The last claim found less due than it asked for, and nothing was queued since.
    caught_up: AtomicBool,
    arrivals: mpsc::UnboundedSender<ClaimedDelivery>,
    wake: std::sync::Arc<Notify>,
}

impl Inbox {
    /// An inbox for a dispatcher with `config`, woken by `wake`; the receiver gets the
    /// deliveries handed over. It starts behind: the first claim finds out.
    pub fn new(
        config: &DeliveryConfig,
        wake: std::sync::Arc<Notify>,
    ) -> (Self, mpsc::UnboundedReceiver<ClaimedDelivery>) {
        let (arrivals, received) = mpsc::unbounded_channel();
        let inbox = Self {
            workers: config.workers,
            per_site: u32::try_from(config.per_site_concurrency).unwrap_or(u32::MAX),
            policy: config.health_policy(),
            lease: config.lease(),
            in_flight: Mutex::default(),
            worker_free: Notify::new(),
            settled: Notify::new(),
            caught_up: AtomicBool::new(false),
            arrivals,
            wake,
        };
        (inbox, received)
    }

    fn counts(&self) -> MutexGuard<'_, InFlight> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Attempts in flight on this node (handed over ones included): the leased
    /// deliveries that hold a worker, parked ones not.
    pub fn in_flight(&self) -> usize {
        self.counts().active()
    }

    /// How many more deliveries a claim may lease: free workers, and at most
    /// [`LEASES_PER_REQUEST`] per worker leased in all (parked ones included), which
    /// bounds what parked deliveries hold in memory. Webhooks whose receivers hang hold
    /// a worker per request and park their other leases: filling either bound takes
    /// as many of them as the workers did before leases were taken ahead.
    pub fn free(&self) -> usize {
        let counts = self.counts();
        let leased_room = self.leased_cap().saturating_sub(counts.total);
        self.workers
            .saturating_sub(counts.active())
            .min(leased_room)
    }

    /// Stops admitting deliveries until the returned guard is dropped, and waits (at
    /// most [`SETTLE_TIMEOUT`]) until every admitted one is leased or given back: the
    /// claim then run reads every lease of this node's attempts, and its deliveries are
    /// counted here (with [`Self::claimed`]) before the next is admitted.
    pub async fn claiming(&self) -> Claiming<'_> {
        self.counts().claiming = true;
        let guard = Claiming(self);
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.counts().unsettled == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                tracing::debug!("claiming before every handed-over delivery was leased");
                break;
            }
        }
        guard
    }

    /// Counts a claimed delivery's attempt as in flight.
    pub fn claimed(&self, delivery: &ClaimedDelivery) {
        self.counts()
            .add(delivery.webhook.id, delivery.webhook.site_id);
    }

    /// The most deliveries leased to this node at once, parked ones included.
    fn leased_cap(&self) -> usize {
        self.workers.saturating_mul(LEASES_PER_REQUEST as usize)
    }

    /// `delivery`'s request, started at `started_at`, is over (its outcome not yet
    /// recorded) with `effect` on its webhook's health: it leaves its webhook's and
    /// site's room, and holds its worker until [`Self::ended`]. The webhook's requests
    /// still waiting here go by the health this leaves, by the domain's rule
    /// ([`Health::after_attempt`]): a failure halves their limit, as it will the
    /// stored one.
    pub fn request_over(
        &self,
        delivery: &ClaimedDelivery,
        effect: HealthEffect,
        started_at: Timestamp,
        now: Timestamp,
    ) {
        let w = &delivery.webhook;
        let mut counts = self.counts();
        if let Some(gate) = counts.requests.get_mut(&w.id) {
            let health = gate.health.as_ref().unwrap_or(&w.health);
            gate.health = Some(health.after_attempt(effect, &self.policy, started_at, now));
        }
        if counts.settling.insert(delivery.delivery_id) {
            decrement(&mut counts.webhooks, w.id);
            decrement(&mut counts.sites, w.site_id);
        }
    }

    /// Counts `delivery`'s attempt as ended, outcome recorded (or given up).
    pub fn ended(&self, delivery: &ClaimedDelivery) {
        let w = &delivery.webhook;
        let mut counts = self.counts();
        let held_worker = if counts.settling.remove(&delivery.delivery_id) {
            counts.total = counts.total.saturating_sub(1);
            true
        } else {
            let parked = counts.parked.remove(&delivery.delivery_id);
            counts.remove(w.id, w.site_id);
            !parked
        };
        if held_worker && counts.node_waiting > 0 {
            self.worker_free.notify_one();
        }
    }

    /// Waits until `delivery`'s webhook has fewer than `limit` requests running on this
    /// node, and counts this one as running until the returned slot is dropped; `None`
    /// when none was free by `latest`. A node leases up to
    /// [`crate::domain::webhook::LEASES_PER_REQUEST`] deliveries of a webhook per
    /// request it may send: the ones beyond its limit wait here, so the next request
    /// goes the moment one ends rather than after the claim that fetches it. A
    /// delivery waiting here is parked: it gives its worker back (a webhook whose
    /// receiver hangs holds a worker per request, not per lease), and takes one again
    /// before its request, waiting for it if none is free: so `workers` still bounds
    /// the requests sent and not yet recorded.
    pub async fn request_slot(
        &self,
        delivery: &ClaimedDelivery,
        latest: tokio::time::Instant,
    ) -> Option<RequestSlot<'_>> {
        let (webhook, id) = (delivery.webhook.id, delivery.delivery_id);
        let mut parked = false;
        loop {
            let wait = {
                let mut counts = self.counts();
                let worker_free = counts.active() < self.workers;
                let gate = counts.requests.entry(webhook).or_default();
                let health = gate.health.as_ref().unwrap_or(&delivery.webhook.health);
                if !health.enabled {
                    // Disabled by what its requests met here (410 Gone, or failing
                    // for too long): nothing more goes out.
                    return None;
                }
                let limit = in_flight_limit(
                    health.concurrency_limit(&self.policy),
                    delivery.webhook.rate_limit,
                );
                if gate.running < limit && (!parked || worker_free) {
                    gate.running += 1;
                    counts.parked.remove(&id);
                    return Some(RequestSlot {
                        inbox: self,
                        webhook,
                    });
                }
                if gate.running < limit {
                    counts.node_waiting += 1;
                    None
                } else {
                    gate.waiting += 1;
                    let ended = Arc::clone(&gate.ended);
                    if !parked {
                        parked = true;
                        counts.parked.insert(id);
                        if counts.node_waiting > 0 {
                            self.worker_free.notify_one();
                        }
                    }
                    Some(ended)
                }
            };
            let waited = match &wait {
                Some(ended) => tokio::time::timeout_at(latest, ended.notified()).await,
                None => tokio::time::timeout_at(latest, self.worker_free.notified()).await,
            };
            let mut counts = self.counts();
            if wait.is_some() {
                if let Some(gate) = counts.requests.get_mut(&webhook) {
                    gate.waiting = gate.waiting.saturating_sub(1);
                    if gate.running == 0 && gate.waiting == 0 && waited.is_err() {
                        counts.requests.remove(&webhook);
                    }
                }
            } else {
                counts.node_waiting = counts.node_waiting.saturating_sub(1);
            }
            if waited.is_err() {
                return None;
            }
        }
    }

    /// This node's attempts whose requests are over and outcomes not yet recorded (see
    /// [`crate::store::Claim::settling`]).
    pub fn settling(&self) -> Vec<DeliveryId> {
        self.counts().settling.iter().copied().collect()
    }

    /// What the last claim found: `claimed` of the `wanted` deliveries. A webhook or
    /// site the claim filled to its limit is behind (more of its deliveries may wait).
    /// If the claim found less than it asked for, the node is caught up, and so is
    /// every webhook and site below its limit; else the node is behind.
    pub fn after_claim(&self, wanted: usize, claimed: &[ClaimedDelivery]) {
        let mut counts = self.counts();
        for d in claimed {
            let w = &d.webhook;
            let limit = lease_limit(
                w.health.concurrency_limit(&self.policy),
                w.rate_limit,
                LEASES_PER_REQUEST,
            );
            if counts.of_webhook(w.id) >= limit {
                counts.webhooks_behind.insert(w.id, limit);
            }
            if counts.of_site(w.site_id) >= self.per_site {
                counts.sites_behind.insert(w.site_id);
            }
        }
        let caught_up = claimed.len() < wanted;
        if caught_up {
            counts.catch_up(self.per_site);
        }
        self.caught_up.store(caught_up, Ordering::Release);
    }

    /// Whether nothing is known to wait in the queue: the node, every webhook and
    /// every site caught up.
    pub fn caught_up(&self) -> bool {
        let counts = self.counts();
        self.caught_up.load(Ordering::Acquire)
            && counts.webhooks_behind.is_empty()
            && counts.sites_behind.is_empty()
    }

    /// Takes no more deliveries (at shutdown).
    pub fn close(&self) {
        self.caught_up.store(false, Ordering::Release);
    }
}

/// A request running to a webhook (see [`Inbox::request_slot`]); the next may go when
/// this is dropped.
#[derive(Debug)]
pub struct RequestSlot<'a> {
    inbox: &'a Inbox,
    webhook: WebhookId,
}

impl Drop for RequestSlot<'_> {
    fn drop(&mut self) {
        let mut counts = self.inbox.counts();
        if let Some(gate) = counts.requests.get_mut(&self.webhook) {
            gate.running = gate.running.saturating_sub(1);
            if gate.waiting > 0 {
                gate.ended.notify_one();
            } else if gate.running == 0 {
                counts.requests.remove(&self.webhook);
            }
        }
    }
}

/// A claim is running: the inbox admits nothing until this is dropped.
#[derive(Debug)]
pub struct Claiming<'a>(&'a Inbox);

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        self.0.counts().claiming = false;
    }
}

impl Inbox {
    /// `n` admitted deliveries were handed over or given back.
    fn settle(&self, n: usize) {
        let mut counts = self.counts();
        counts.unsettled = counts.unsettled.saturating_sub(n);
        if counts.unsettled == 0 {
            self.settled.notify_waiters();
        }
    }
}

impl HandOff for Inbox {
    fn admit(&self, fresh: &Fresh) -> bool {
        if !self.caught_up.load(Ordering::Acquire) || self.arrivals.is_closed() {
            return false;
        }
        let concurrency = self
            .policy
            .max_concurrency
            .max(1)
            .min(fresh.concurrency.unwrap_or(u32::MAX).max(1));
        let limit = lease_limit(concurrency, fresh.rate_limit, LEASES_PER_REQUEST);
        let mut counts = self.counts();
        if counts.claiming
            || counts.webhooks_behind.contains_key(&fresh.webhook)
            || counts.sites_behind.contains(&fresh.site)
        {
            return false;
        }
        if counts.active() >= self.workers || counts.total >= self.leased_cap() {
            // Every delivery is queued from here on until a claim has taken what waits.
            self.caught_up.store(false, Ordering::Release);
        } else if counts.of_webhook(fresh.webhook) >= limit {
            counts.webhooks_behind.insert(fresh.webhook, limit);
        } else if counts.of_site(fresh.site) >= self.per_site {
            counts.sites_behind.insert(fresh.site);
        } else {
            counts.add(fresh.webhook, fresh.site);
            counts.unsettled += 1;
            return true;
        }
        false
    }

    fn release(&self, fresh: &Fresh) {
        self.counts().remove(fresh.webhook, fresh.site);
        self.settle(1);
    }

    fn start(&self, deliveries: Vec<ClaimedDelivery>, refused: bool) {
        self.settle(deliveries.len());
        for delivery in deliveries {
            if let Err(mpsc::error::SendError(delivery)) = self.arrivals.send(delivery) {
                // The dispatcher has stopped: the lease ends and a claim takes it.
                self.ended(&delivery);
            }
        }
        if refused {
            self.wake.notify_one();
        }
    }

    fn lease(&self) -> Duration {
        self.lease
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::health::Health;
    use crate::domain::ids::{DeliveryId, EventId};
    use crate::domain::throttle::RateLimit;
    use crate::domain::time::Timestamp;
    use crate::domain::webhook::Webhook;
    use crate::domain::webhook_url::WebhookUrl;

    const T: Timestamp = Timestamp::EPOCH;
    /// Leases per request.
    const L: usize = LEASES_PER_REQUEST as usize;

    fn config(workers: usize, per_webhook: usize, per_site: usize) -> DeliveryConfig {
        DeliveryConfig {
            workers,
            per_webhook_concurrency: per_webhook,
            per_site_concurrency: per_site,
            ..DeliveryConfig::default()
        }
    }

    fn fresh(webhook: WebhookId, site: SiteId) -> Fresh {
        Fresh {
            delivery: DeliveryId::new(T),
            webhook,
            site,
            concurrency: None,
            rate_limit: None,
        }
    }

    fn claimed(f: &Fresh) -> ClaimedDelivery {
        ClaimedDelivery {
            delivery_id: f.delivery,
            attempt_count: 0,
            interrupted: None,
            event_id: EventId::new(T),
            event_type: crate::domain::event_type::EventType::parse("a.b").expect("type"),
            payload: "{}".to_owned(),
            webhook: Webhook {
                id: f.webhook,
                site_id: f.site,
                url: WebhookUrl::parse("https://example.com/").expect("url"),
                event_types: Vec::new(),
                description: String::new(),
                headers: Default::default(),
                health: Health::default(),
                paused: false,
                rate_limit: None,
                ordering: Default::default(),
                secrets: Ok(crate::domain::webhook::Secrets::new(
                    fullup_signature::Secret::generate(),
                )),
                created_at: T,
                updated_at: T,
            },
        }
    }

    #[test]
    fn nothing_is_admitted_until_a_claim_found_the_queue_empty() {
        let (inbox, _rx) = Inbox::new(&config(4, 4, 4), Default::default());
        let f = fresh(WebhookId::new(T), SiteId::new(T));
        assert!(!inbox.admit(&f), "behind at start");
        let site = SiteId::new(T);
        let full: Vec<_> = (0..2)
            .map(|_| claimed(&fresh(WebhookId::new(T), site)))
            .collect();
        inbox.after_claim(2, &full);
        assert!(
            !inbox.admit(&f),
            "the claim took all it asked for: more may wait"
        );
        inbox.after_claim(2, &full[..1]);
        assert!(inbox.admit(&f));
        assert_eq!(inbox.in_flight(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_waits_for_admitted_deliveries_and_nothing_is_admitted_while_it_runs() {
        let (inbox, _rx) = Inbox::new(&config(8, 8, 8), Default::default());
        let inbox = std::sync::Arc::new(inbox);
        let (webhook, site) = (WebhookId::new(T), SiteId::new(T));
        inbox.after_claim(1, &[]);
        let admitted = fresh(webhook, site);
        assert!(inbox.admit(&admitted));
        let began = tokio::time::Instant::now();
        let claim = tokio::spawn({
            let inbox = std::sync::Arc::clone(&inbox);
            async move {
                let _claiming = inbox.claiming().await;
                let waited = began.elapsed();
                (waited, inbox.admit(&fresh(webhook, site)))
            }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(
            !claim.is_finished(),
            "the claim waits while an admitted delivery's ingest has not committed"
        );
        assert!(
            !inbox.admit(&fresh(webhook, site)),
            "nothing is admitted once a claim has begun"
        );
        inbox.after_claim(1, &[]);
        inbox.start(vec![claimed(&admitted)], false);
        let (waited, admitted_during_claim) = claim.await.expect("claim task");
        assert!(
            waited < SETTLE_TIMEOUT,
            "the claim went on when the delivery was handed over, not at its timeout"
        );
        assert!(
            !admitted_during_claim,
            "nothing is admitted while a claim runs"
        );
        inbox.after_claim(1, &[]);
        assert!(
            inbox.admit(&fresh(webhook, site)),
            "admitted again once the claim is over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_runs_anyway_when_an_admitted_delivery_never_settles() {
        let (inbox, _rx) = Inbox::new(&config(8, 8, 8), Default::default());
        inbox.after_claim(1, &[]);
        assert!(inbox.admit(&fresh(WebhookId::new(T), SiteId::new(T))));
        let began = tokio::time::Instant::now();
        drop(inbox.claiming().await);
        assert_eq!(began.elapsed(), SETTLE_TIMEOUT);
    }

    #[test]
    fn a_claim_that_fills_a_webhooks_room_leaves_the_inbox_behind() {
        let (inbox, _rx) = Inbox::new(&config(8, 1, 8), Default::default());
        let f = fresh(WebhookId::new(T), SiteId::new(T));
        let all: Vec<_> = (0..L).map(|_| claimed(&fresh(f.webhook, f.site))).collect();
        for d in &all {
            inbox.claimed(d);
        }
        inbox.after_claim(8, &all);
        assert!(
            !inbox.caught_up(),
            "its webhook (limit 1 request: L leases) may have more waiting"
        );
        for d in &all {
            inbox.ended(d);
        }
        inbox.after_claim(8, &[]);
        assert!(inbox.caught_up());
        assert_eq!(inbox.in_flight(), 0);
    }

    #[test]
    fn a_full_webhook_site_or_node_refuses_and_puts_the_inbox_behind() {
        let (inbox, _rx) = Inbox::new(&config(L + 2, 1, L + 1), Default::default());
        let (site, other_site) = (SiteId::new(T), SiteId::new(T));
        let (a, b, c) = (WebhookId::new(T), WebhookId::new(T), WebhookId::new(T));
        inbox.after_claim(1, &[]);
        for _ in 0..L {
            assert!(inbox.admit(&fresh(a, site)), "L leases per request");
        }
        assert!(
            !inbox.admit(&fresh(a, site)),
            "webhook a is at its limit of 1 request, L leases"
        );
        assert!(!inbox.caught_up(), "a refusal queues what follows");
        inbox.after_claim(1, &[]);
        assert!(inbox.admit(&fresh(b, site)));
        assert!(
            !inbox.admit(&fresh(c, site)),
            "the site is at its limit of L + 1"
        );
        inbox.after_claim(1, &[]);
        assert!(inbox.admit(&fresh(c, other_site)));
        assert!(
            !inbox.admit(&fresh(WebhookId::new(T), other_site)),
            "the node's L + 2 workers are busy"
        );
    }

    /// Regression (the hostile-receivers suite): one webhook at its limit put the whole
    /// node behind, so every other webhook's fresh deliveries waited for a claim.
    #[test]
    fn a_webhook_at_its_limit_queues_only_its_own_deliveries_until_a_claim_drains_it() {
        let (inbox, _rx) = Inbox::new(&config(2 * L, 1, 2 * L), Default::default());
        let (site, other_site) = (SiteId::new(T), SiteId::new(T));
        let (slow, healthy, elsewhere) = (WebhookId::new(T), WebhookId::new(T), WebhookId::new(T));
        inbox.after_claim(1, &[]);
        let leased: Vec<_> = (0..L).map(|_| fresh(slow, site)).collect();
        for f in &leased {
            assert!(inbox.admit(f), "leased ahead: L per request");
        }
        assert!(
            !inbox.admit(&fresh(slow, site)),
            "at its limit of 1 request, L leases: queued"
        );
        assert!(!inbox.caught_up(), "the queued one waits for a claim");
        assert!(
            inbox.admit(&fresh(healthy, site)),
            "its site's other webhook"
        );
        assert!(inbox.admit(&fresh(elsewhere, other_site)), "another site");
        inbox.ended(&claimed(&leased[0]));
        assert!(
            !inbox.admit(&fresh(slow, site)),
            "room again, but its queued delivery goes first"
        );
        let queued = claimed(&fresh(slow, site));
        inbox.claimed(&queued);
        inbox.after_claim(8, std::slice::from_ref(&queued));
        assert!(
            !inbox.admit(&fresh(slow, site)),
            "the claim filled it again"
        );
        inbox.ended(&queued);
        for f in &leased[1..] {
            inbox.ended(&claimed(f));
        }
        inbox.after_claim(8, &[]);
        assert!(inbox.admit(&fresh(slow, site)), "drained: caught up");
    }

    #[test]
    fn a_stored_concurrency_limit_below_the_default_is_kept() {
        let (inbox, _rx) = Inbox::new(&config(16, 4, 16), Default::default());
        let (webhook, site) = (WebhookId::new(T), SiteId::new(T));
        inbox.after_claim(1, &[]);
        let slow = Fresh {
            concurrency: Some(1),
            ..fresh(webhook, site)
        };
        for _ in 0..L {
            assert!(inbox.admit(&slow), "its limit of 1 request, L leases");
        }
        assert!(!inbox.admit(&slow));
    }

    #[test]
    fn a_throttled_webhook_is_handed_a_seconds_worth_at_most() {
        let (inbox, _rx) = Inbox::new(&config(8, 4, 8), Default::default());
        let (webhook, site) = (WebhookId::new(T), SiteId::new(T));
        inbox.after_claim(1, &[]);
        let throttled = Fresh {
            rate_limit: Some(RateLimit::new(2).expect("limit")),
            ..fresh(webhook, site)
        };
        assert!(inbox.admit(&throttled));
        assert!(inbox.admit(&throttled));
        assert!(!inbox.admit(&throttled), "2 per second: 2 in flight");
        assert!(
            inbox.admit(&fresh(WebhookId::new(T), site)),
            "another webhook is not held up"
        );
    }

    #[test]
    fn handed_deliveries_arrive_and_a_refusal_wakes_the_dispatcher() {
        use futures::FutureExt as _;
        let wake = std::sync::Arc::new(Notify::new());
        let (inbox, mut rx) = Inbox::new(&config(8, 2, 8), wake.clone());
        let f = fresh(WebhookId::new(T), SiteId::new(T));
        inbox.start(vec![claimed(&f)], false);
        assert_eq!(rx.try_recv().expect("handed over").delivery_id, f.delivery);
        assert!(wake.notified().now_or_never().is_none(), "nothing to claim");
        inbox.start(Vec::new(), true);
        assert!(wake.notified().now_or_never().is_some(), "woken to claim");
        drop(rx);
        inbox.after_claim(1, &[]);
        assert!(!inbox.admit(&f), "the dispatcher has stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_webhooks_requests_wait_for_a_slot_and_its_room_frees_when_a_request_ends() {
        let (inbox, _rx) = Inbox::new(&config(4 * L, 2, 4 * L), Default::default());
        let (webhook, site) = (WebhookId::new(T), SiteId::new(T));
        inbox.after_claim(1, &[]);
        let leased: Vec<_> = (0..2 * L).map(|_| fresh(webhook, site)).collect();
        for f in &leased {
            assert!(inbox.admit(f), "L leases per request: 2L fit");
        }
        assert!(!inbox.admit(&fresh(webhook, site)), "one more does not");
        let deliveries: Vec<_> = leased.iter().map(claimed).collect();
        inbox.start(deliveries.clone(), false);
        let far = tokio::time::Instant::now() + Duration::from_secs(60);
        let first = inbox.request_slot(&deliveries[0], far).await.expect("slot");
        let second = inbox.request_slot(&deliveries[1], far).await.expect("slot");
        let soon = tokio::time::Instant::now() + Duration::from_secs(1);
        assert!(
            inbox.request_slot(&deliveries[2], soon).await.is_none(),
            "two requests run: a third waits, and gives up at its deadline"
        );
        let third = {
            let waiting = inbox.request_slot(&deliveries[2], far);
            tokio::pin!(waiting);
            assert!(
                futures::poll!(waiting.as_mut()).is_pending(),
                "no slot while two run"
            );
            drop(first);
            waiting.await.expect("a slot once one request ended")
        };
        inbox.request_over(&deliveries[0], HealthEffect::Healthy, T, T);
        assert_eq!(
            inbox.in_flight(),
            2 * L,
            "a settling attempt holds its worker"
        );
        assert_eq!(inbox.settling(), vec![deliveries[0].delivery_id]);
        inbox.after_claim(8, &[]);
        assert!(
            inbox.admit(&fresh(webhook, site)),
            "its webhook's room is free again"
        );
        inbox.ended(&deliveries[0]);
        assert_eq!(inbox.in_flight(), 2 * L, "the others and the one admitted");
        assert!(inbox.settling().is_empty());
        drop((second, third));
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_delivery_gives_its_worker_back_and_waits_for_one_before_its_request() {
        let (inbox, _rx) = Inbox::new(&config(2, 1, 8), Default::default());
        let site = SiteId::new(T);
        let (a, b) = (WebhookId::new(T), WebhookId::new(T));
        let far = tokio::time::Instant::now() + Duration::from_secs(60);
        let a1 = claimed(&fresh(a, site));
        let a2 = claimed(&fresh(a, site));
        inbox.claimed(&a1);
        inbox.claimed(&a2);
        let a1_slot = inbox.request_slot(&a1, far).await.expect("slot");
        let a2_slot = inbox.request_slot(&a2, far);
        tokio::pin!(a2_slot);
        assert!(
            futures::poll!(a2_slot.as_mut()).is_pending(),
            "a's one request runs"
        );
        assert_eq!(inbox.in_flight(), 1, "a2 is parked: it holds no worker");
        assert_eq!(
            inbox.free(),
            1,
            "so another webhook's delivery may be claimed"
        );
        let b1 = claimed(&fresh(b, site));
        inbox.claimed(&b1);
        let _b1_slot = inbox.request_slot(&b1, far).await.expect("slot");
        drop(a1_slot);
        inbox.request_over(&a1, HealthEffect::Healthy, T, T);
        assert!(
            futures::poll!(a2_slot.as_mut()).is_pending(),
            "a's slot is free, but both workers are held (a1 is still recording)"
        );
        inbox.ended(&a1);
        let _a2 = a2_slot.await.expect("a worker came free");
        assert_eq!(inbox.in_flight(), 2);
        assert_eq!(inbox.free(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_request_cuts_the_limit_its_webhooks_waiting_requests_go_by() {
        let (inbox, _rx) = Inbox::new(&config(64, 4, 64), Default::default());
        let (webhook, site) = (WebhookId::new(T), SiteId::new(T));
        let far = tokio::time::Instant::now() + Duration::from_secs(60);
        let leased: Vec<_> = (0..6).map(|_| claimed(&fresh(webhook, site))).collect();
        for d in &leased {
            inbox.claimed(d);
        }
        let mut running = Vec::new();
        for d in &leased[..4] {
            running.push(inbox.request_slot(d, far).await.expect("slot"));
        }
        // The first ends unanswered: the limit halves, 4 -> 2, with 3 still running.
        inbox.request_over(&leased[0], HealthEffect::Unreachable, T, T);
        drop(running.remove(0));
        let next = inbox.request_slot(&leased[4], far);
        tokio::pin!(next);
        assert!(
            futures::poll!(next.as_mut()).is_pending(),
            "3 run of a limit now 2: the parked one waits"
        );
        for (d, slot) in leased[1..3].iter().zip(running.drain(..2)) {
            inbox.request_over(d, HealthEffect::Healthy, T, T);
            drop(slot);
        }
        let _next = next
            .await
            .expect("two successes brought the limit back to 4, and one runs");
        // A 410 Gone disables the webhook here: what waits is given back.
        inbox.request_over(&leased[3], HealthEffect::Gone, T, T);
        drop(running);
        assert!(
            inbox.request_slot(&leased[5], far).await.is_none(),
            "disabled: nothing more goes out"
        );
    }
}
