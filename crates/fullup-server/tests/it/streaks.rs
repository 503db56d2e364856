//! The failing streak that disables a webhook, at the store level, on both stores:
//! results are recorded in the order attempts finish, not the order they started.

use std::time::Duration;

use fullup_server::domain::health::{HealthEffect, HealthPolicy};
use fullup_server::domain::ids::AttemptId;
use fullup_server::domain::models::{Attempt, ErrorKind};
use fullup_server::domain::outcome::NextStep;
use fullup_server::domain::time::Timestamp;
use fullup_server::store::{Claim, ClaimedDelivery, Completion, Store};

use crate::support::records::{ingest_at, site_with_webhooks};
use crate::support::{Backend, store_test};

const T0: Timestamp = Timestamp::from_unix_ms(1_800_000_000_000);

fn at(ms: i64) -> Timestamp {
    T0 + Duration::from_millis(u64::try_from(ms).expect("after T0"))
}

async fn one_claimed_delivery(store: &dyn Store) -> ClaimedDelivery {
    let (site, _) = site_with_webhooks(store, T0, 1).await;
    ingest_at(store, site, T0, None).await;
    let mut claimed = store
        .claim_due(&Claim {
            now: T0,
            lease: Duration::from_secs(60),
            limit: 1,
            per_webhook: 1,
            per_site: 1,
            leases_per_request: 1,
            settling: Vec::new(),
        })
        .await
        .expect("claim");
    claimed.pop().expect("one delivery")
}

fn result(d: &ClaimedDelivery, number: u32, started_at: Timestamp, ok: bool) -> Completion {
    Completion {
        attempt: Attempt {
            id: AttemptId::new(started_at),
            delivery_id: d.delivery_id,
            webhook_id: d.webhook.id,
            attempt_number: number,
            started_at,
            duration: Duration::from_millis(1),
            status_code: Some(if ok { 200 } else { 500 }),
            error_kind: (!ok).then_some(ErrorKind::Status),
            error_message: None,
            response_body: String::new(),
            request_headers: String::new(),
            response_headers: String::new(),
        },
        event_id: d.event_id,
        event_type: d.event_type.clone(),
        next: if ok {
            NextStep::Succeeded
        } else {
            NextStep::RetryAt(started_at + Duration::from_secs(5))
        },
        health: if ok {
            HealthEffect::Healthy
        } else {
            HealthEffect::Failing
        },
        policy: HealthPolicy {
            disable_after: Duration::from_secs(3600),
            max_concurrency: 16,
        },
    }
}

async fn failing_since(store: &dyn Store, d: &ClaimedDelivery) -> Option<Timestamp> {
    store
        .get_webhook(d.webhook.site_id, d.webhook.id)
        .await
        .expect("read")
        .expect("webhook")
        .health
        .failing_since
}

store_test!(only_a_success_that_started_after_the_streak_ends_it);
/// Regression: a slow success recorded after a failure that started later cleared the
/// streak, so the failures since went uncounted.
async fn only_a_success_that_started_after_the_streak_ends_it(backend: Backend) {
    let open = backend.open_store().await;
    let store = &*open.store;
    let d = one_claimed_delivery(store).await;

    store
        .complete(result(&d, 1, at(100), false), at(101))
        .await
        .expect("failure");
    assert_eq!(failing_since(store, &d).await, Some(at(100)));

    store
        .complete(result(&d, 2, at(50), true), at(200))
        .await
        .expect("late success");
    assert_eq!(
        failing_since(store, &d).await,
        Some(at(100)),
        "a success that started before the failure does not end the streak"
    );

    store
        .complete(result(&d, 3, at(300), true), at(301))
        .await
        .expect("success");
    assert_eq!(failing_since(store, &d).await, None);
}

store_test!(a_streak_past_disable_after_disables_the_webhook);
/// A streak longer than `disable_after` disables the webhook, naming when it began;
/// attempts of the same webhook recorded at once still count the streak once.
async fn a_streak_past_disable_after_disables_the_webhook(backend: Backend) {
    let open = backend.open_store().await;
    let store = &*open.store;
    let d = one_claimed_delivery(store).await;
    let failures = (1..=8).map(|n| {
        let c = result(&d, n, at(1), false);
        async move { store.complete(c, at(3_600_001)).await }
    });
    for done in futures::future::join_all(failures).await {
        done.expect("recorded");
    }
    let webhook = store
        .get_webhook(d.webhook.site_id, d.webhook.id)
        .await
        .expect("read")
        .expect("webhook");
    assert!(!webhook.health.enabled, "{:?}", webhook.health);
    assert_eq!(webhook.health.failing_since, Some(at(1)));
    assert_eq!(
        webhook.health.disabled_reason.as_deref(),
        Some("every attempt failed since 2027-01-15T08:00:00Z")
    );
    assert_eq!(webhook.updated_at, at(3_600_001), "disabling is a change");
}
