//! Fair claims, at the store level, on both stores: due deliveries are taken
//! round-robin across sites (and within a site across webhooks), no site gets more than
//! its share of attempts in flight, and a webhook whose receiver times out gets fewer.

use std::collections::HashMap;
use std::time::Duration;

use fullup_server::domain::health::{HealthEffect, HealthPolicy};
use fullup_server::domain::ids::{AttemptId, SiteId, WebhookId};
use fullup_server::domain::models::{Attempt, ErrorKind};
use fullup_server::domain::outcome::NextStep;
use fullup_server::domain::time::Timestamp;
use fullup_server::store::{Claim, ClaimedDelivery, Completion, Store};

use crate::support::records::{ingest_at, site_with_webhooks};
use crate::support::{Backend, store_test};

const T0: Timestamp = Timestamp::from_unix_ms(1_800_000_000_000);
const POLICY: HealthPolicy = HealthPolicy {
    disable_after: Duration::from_secs(3600),
    max_concurrency: 16,
};

/// Ingests `events` events of `site`, each `ms` after T0 (older first).
async fn send(store: &dyn Store, site: SiteId, events: usize, ms: u64) {
    for n in 0..events {
        ingest_at(store, site, T0 + Duration::from_millis(ms + n as u64), None).await;
    }
}

async fn claim(store: &dyn Store, limit: u32, per_site: u32) -> Vec<ClaimedDelivery> {
    store
        .claim_due(&Claim {
            now: T0 + Duration::from_secs(60),
            lease: Duration::from_secs(60),
            limit,
            per_webhook: POLICY.max_concurrency,
            per_site,
            leases_per_request: 1,
            settling: Vec::new(),
        })
        .await
        .expect("claim")
}

fn per_site(claimed: &[ClaimedDelivery]) -> HashMap<SiteId, usize> {
    let mut counts = HashMap::new();
    for c in claimed {
        *counts.entry(c.webhook.site_id).or_default() += 1;
    }
    counts
}

store_test!(a_sites_backlog_does_not_stand_in_front_of_another_sites_delivery);
/// Site A's 300 older deliveries (3 webhooks × 100 events) and site B's one newer
/// delivery: a claim of 4 takes B's, and A's are spread over its webhooks.
async fn a_sites_backlog_does_not_stand_in_front_of_another_sites_delivery(backend: Backend) {
    let open = backend.open_store().await;
    let store = &*open.store;
    let (a, a_hooks) = site_with_webhooks(store, T0, 3).await;
    let (b, _) = site_with_webhooks(store, T0, 1).await;
    send(store, a, 100, 0).await;
    send(store, b, 1, 10_000).await;

    let claimed = claim(store, 4, 64).await;
    let counts = per_site(&claimed);
    assert_eq!(
        counts.get(&b),
        Some(&1),
        "B's delivery is in the first claim"
    );
    assert_eq!(counts.get(&a), Some(&3));
    let mut a_webhooks: Vec<WebhookId> = claimed
        .iter()
        .filter(|c| c.webhook.site_id == a)
        .map(|c| c.webhook.id)
        .collect();
    a_webhooks.sort();
    let mut expected = a_hooks.clone();
    expected.sort();
    assert_eq!(a_webhooks, expected, "one of each of A's webhooks first");
}

store_test!(a_site_never_has_more_than_its_share_in_flight);
/// With a site cap of 10, claims take at most 10 of the site's deliveries while those
/// are leased, however many are due; another site still gets its own.
async fn a_site_never_has_more_than_its_share_in_flight(backend: Backend) {
    let open = backend.open_store().await;
    let store = &*open.store;
    let (a, _) = site_with_webhooks(store, T0, 4).await;
    send(store, a, 20, 0).await;
    let first = claim(store, 128, 10).await;
    assert_eq!(first.len(), 10, "the cap, of 80 due");
    assert!(claim(store, 128, 10).await.is_empty(), "A is at its cap");

    let (b, _) = site_with_webhooks(store, T0, 1).await;
    send(store, b, 2, 5_000).await;
    let second = claim(store, 128, 10).await;
    assert_eq!(per_site(&second), HashMap::from([(b, 2)]));

    let done = first.first().expect("claimed");
    fail(store, done, ErrorKind::Status).await;
    let third = claim(store, 128, 10).await;
    assert_eq!(
        per_site(&third),
        HashMap::from([(a, 1)]),
        "one freed, one taken"
    );
}

store_test!(a_webhook_that_times_out_gets_fewer_attempts_at_once);
/// Each timed-out attempt halves the webhook's limit; claims then take only what the
/// limit leaves room for.
async fn a_webhook_that_times_out_gets_fewer_attempts_at_once(backend: Backend) {
    let open = backend.open_store().await;
    let store = &*open.store;
    let (a, hooks) = site_with_webhooks(store, T0, 1).await;
    send(store, a, 40, 0).await;
    let first = claim(store, 128, 64).await;
    assert_eq!(first.len(), 16, "the configured per-webhook limit");
    for c in &first[..4] {
        fail(store, c, ErrorKind::Timeout).await;
    }
    let webhook = store
        .get_webhook(a, hooks[0])
        .await
        .expect("read")
        .expect("webhook");
    assert_eq!(
        webhook.health.concurrency_limit(&POLICY),
        1,
        "16 → 8 → 4 → 2 → 1"
    );
    assert!(
        claim(store, 128, 64).await.is_empty(),
        "12 still in flight, over the limit of 1"
    );
    for c in &first[4..] {
        fail(store, c, ErrorKind::Timeout).await;
    }
    assert_eq!(
        claim(store, 128, 64).await.len(),
        1,
        "one at a time while it times out"
    );
}

/// Records a failed attempt of `c` (a timeout cuts the webhook's concurrency).
async fn fail(store: &dyn Store, c: &ClaimedDelivery, kind: ErrorKind) {
    let recorded_at = T0 + Duration::from_secs(61);
    let done = store.complete(completion(c, kind), recorded_at).await;
    done.expect("record");
}

/// The record of a failed attempt of `c` (a timeout cuts the webhook's concurrency).
fn completion(c: &ClaimedDelivery, kind: ErrorKind) -> Completion {
    let started_at = T0 + Duration::from_secs(60);
    Completion {
        attempt: Attempt {
            id: AttemptId::new(started_at),
            delivery_id: c.delivery_id,
            webhook_id: c.webhook.id,
            attempt_number: c.attempt_count + 1,
            started_at,
            duration: Duration::from_secs(5),
            status_code: None,
            error_kind: Some(kind),
            error_message: None,
            response_body: String::new(),
            request_headers: String::new(),
            response_headers: String::new(),
        },
        event_id: c.event_id,
        event_type: c.event_type.clone(),
        next: NextStep::RetryAt(started_at + Duration::from_secs(3600)),
        health: if kind == ErrorKind::Timeout {
            HealthEffect::Unreachable
        } else {
            HealthEffect::Failing
        },
        policy: POLICY,
    }
}
