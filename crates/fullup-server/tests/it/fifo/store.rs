//! Ordered webhooks at the store level, on both stores: a claim gives an ordered
//! webhook's head only, and only while none of its deliveries is leased; a head waiting
//! for its retry holds back that webhook alone; an exhausted head lets the next one go;
//! ingest never hands an ordered webhook's delivery over.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fullup_server::domain::event_type::EventType;
use fullup_server::domain::health::{HealthEffect, HealthPolicy};
use fullup_server::domain::ids::{AttemptId, EventId, SiteId, WebhookId};
use fullup_server::domain::models::{Attempt, Event};
use fullup_server::domain::ordering::Ordering;
use fullup_server::domain::outcome::NextStep;
use fullup_server::domain::time::Timestamp;
use fullup_server::store::{
    Claim, ClaimedDelivery, Completion, Fresh, HandOff, NewEvent, PageRequest, Store,
};

use crate::support::records::site_with_webhooks;
use crate::support::{Backend, store_test};

const T0: Timestamp = Timestamp::from_unix_ms(1_800_000_000_000);
const LEASE: Duration = Duration::from_secs(60);

/// A hand-off that admits everything and records which webhooks it was offered, and
/// how many ingests left deliveries to the claims (which wakes the dispatcher).
#[derive(Debug, Default)]
struct Offers(Mutex<(Vec<WebhookId>, usize)>);

impl Offers {
    fn seen(&self) -> (Vec<WebhookId>, usize) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl HandOff for Offers {
    fn admit(&self, fresh: &Fresh) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .push(fresh.webhook);
        true
    }
    fn release(&self, _: &Fresh) {}
    fn start(&self, _: Vec<ClaimedDelivery>, refused: bool) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).1 += usize::from(refused);
    }
    fn lease(&self) -> Duration {
        LEASE
    }
}

/// Makes `webhook` ordered.
async fn order(store: &dyn Store, site: SiteId, webhook: WebhookId) {
    let mut w = store
        .get_webhook(site, webhook)
        .await
        .expect("read")
        .expect("webhook");
    w.ordering = Ordering::Fifo;
    assert!(store.update_webhook(&w).await.expect("update"));
    let read = store.get_webhook(site, webhook).await.expect("read");
    assert_eq!(read.expect("webhook").ordering, Ordering::Fifo);
}

/// Ingests `n` events of `site`, 1 ms apart from T0, offered to `to`; their ids in
/// ingest order.
async fn ingest(store: &dyn Store, site: SiteId, n: u64, to: &Arc<Offers>) -> Vec<EventId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let at = T0 + Duration::from_millis(i);
        let new = NewEvent {
            event: Event {
                id: EventId::new(at),
                site_id: site,
                event_type: EventType::parse("a.b").expect("type"),
                payload: format!(r#"{{"n":{i}}}"#),
                created_at: at,
                idempotency_key: None,
            },
            request_hash: [0; 32],
            only_webhook: None,
            hand_off: Some(to.clone()),
        };
        ids.push(new.event.id);
        store.ingest(new).await.expect("ingest");
    }
    ids
}

async fn claim(store: &dyn Store, now: Timestamp) -> Vec<ClaimedDelivery> {
    store
        .claim_due(&Claim {
            now,
            lease: LEASE,
            limit: 100,
            per_webhook: 16,
            per_site: 100,
            leases_per_request: 1,
            settling: Vec::new(),
        })
        .await
        .expect("claim")
}

/// The ordered webhook's claimed deliveries of one claim at `now`.
async fn claim_of(store: &dyn Store, now: Timestamp, webhook: WebhookId) -> Vec<ClaimedDelivery> {
    let mut claimed = claim(store, now).await;
    claimed.retain(|d| d.webhook.id == webhook);
    claimed
}

async fn record(store: &dyn Store, d: &ClaimedDelivery, now: Timestamp, next: NextStep) {
    let attempt = Attempt {
        id: AttemptId::new(now),
        delivery_id: d.delivery_id,
        webhook_id: d.webhook.id,
        attempt_number: d.attempt_count + 1,
        started_at: now,
        duration: Duration::from_millis(3),
        status_code: Some(if next == NextStep::Succeeded {
            204
        } else {
            500
        }),
        error_kind: None,
        error_message: None,
        response_body: String::new(),
        request_headers: String::new(),
        response_headers: String::new(),
    };
    let completion = Completion {
        attempt,
        event_id: d.event_id,
        event_type: d.event_type.clone(),
        next,
        health: if next == NextStep::Succeeded {
            HealthEffect::Healthy
        } else {
            HealthEffect::Failing
        },
        policy: HealthPolicy {
            disable_after: Duration::from_secs(3600),
            max_concurrency: 16,
        },
    };
    store.complete(completion, now).await.expect("complete");
}

store_test!(an_ordered_webhook_gives_its_head_alone_in_ingest_order);
/// Two webhooks get 6 events each; one is ordered. Its deliveries are never handed
/// over at ingest; each claim gives its head alone, and nothing more while that head is
/// leased or waiting for its retry (the unordered webhook's deliveries come all at
/// once meanwhile); an exhausted head (failed, as the API shows) lets the next one go;
/// the order of its attempts is ingest order with none missing.
async fn an_ordered_webhook_gives_its_head_alone_in_ingest_order(backend: Backend) {
    let open = backend.open_store().await;
    let store = &*open.store;
    let (site, hooks) = site_with_webhooks(store, T0, 2).await;
    let (fifo, plain) = (hooks[0], hooks[1]);
    order(store, site, fifo).await;
    let offers = Arc::new(Offers::default());
    let events = ingest(store, site, 6, &offers).await;
    let (offered, left_to_claims) = offers.seen();
    assert_eq!(
        offered,
        vec![plain; 6],
        "only the unordered webhook's are handed over"
    );
    assert_eq!(
        left_to_claims, 6,
        "each ingest wakes the dispatcher to claim"
    );

    let mut now = T0 + Duration::from_secs(1);
    let mut sent: Vec<EventId> = Vec::new();
    // The head, then nothing more while it is leased.
    let head = claim_of(store, now, fifo).await;
    assert_eq!(head.len(), 1, "the head alone: {head:?}");
    assert!(
        claim_of(store, now, fifo).await.is_empty(),
        "the head is in flight"
    );
    // It fails: retried in 30 s, holding back the rest.
    record(
        store,
        &head[0],
        now,
        NextStep::RetryAt(now + Duration::from_secs(30)),
    )
    .await;
    assert!(
        claim_of(store, now + Duration::from_secs(29), fifo)
            .await
            .is_empty(),
        "a head waiting for its retry holds back the webhook"
    );
    now = now + Duration::from_secs(31);
    let again = claim_of(store, now, fifo).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].delivery_id, head[0].delivery_id,
        "the same head again"
    );
    // Given up: failed, and the next one goes.
    record(store, &again[0], now, NextStep::Failed).await;
    let given_up = store
        .get_delivery(site, head[0].delivery_id)
        .await
        .expect("read")
        .expect("delivery");
    assert_eq!(given_up.state.as_str(), "failed");
    sent.push(again[0].event_id);
    loop {
        let next = claim_of(store, now, fifo).await;
        let Some(d) = next.first() else { break };
        assert_eq!(next.len(), 1, "one at a time: {next:?}");
        sent.push(d.event_id);
        record(store, d, now, NextStep::Succeeded).await;
        now = now + Duration::from_millis(10);
    }
    assert_eq!(sent, events, "ingest order, none missing, none twice");
    let page = store
        .list_deliveries(
            site,
            &fullup_server::store::DeliveryFilter {
                webhook_id: Some(fifo),
                ..Default::default()
            },
            &PageRequest {
                limit: 100,
                before: None,
            },
        )
        .await
        .expect("list");
    let states: Vec<&str> = page.items.iter().map(|d| d.state.as_str()).collect();
    assert_eq!(
        states.iter().filter(|s| **s == "failed").count(),
        1,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "succeeded").count(),
        5,
        "{states:?}"
    );
}

store_test!(a_recovered_delivery_of_an_ordered_webhook_goes_before_the_queued_ones);
/// The head is given up while two more wait; recovered, it is the head again (its old
/// place in the order), before them.
async fn a_recovered_delivery_of_an_ordered_webhook_goes_before_the_queued_ones(backend: Backend) {
    let open = backend.open_store().await;
    let store = &*open.store;
    let (site, hooks) = site_with_webhooks(store, T0, 1).await;
    order(store, site, hooks[0]).await;
    let events = ingest(store, site, 3, &Arc::new(Offers::default())).await;
    let now = T0 + Duration::from_secs(1);
    let head = claim(store, now).await;
    assert_eq!(head.len(), 1);
    assert_eq!(head[0].event_id, events[0]);
    record(store, &head[0], now, NextStep::Failed).await;
    let recovered = store
        .recover_deliveries(&fullup_server::store::Recovery {
            site,
            webhook: hooks[0],
            since: T0,
            until: now,
            now,
        })
        .await
        .expect("recover");
    assert_eq!(recovered, 1);
    let mut sent = Vec::new();
    loop {
        let next = claim(store, now).await;
        let Some(d) = next.first() else { break };
        assert_eq!(next.len(), 1, "one at a time");
        sent.push(d.event_id);
        record(store, d, now, NextStep::Succeeded).await;
    }
    assert_eq!(
        sent, events,
        "the recovered head first, then the others in order"
    );
}
