//! The failing streak that disables a webhook, at the store level: results are
//! recorded in the order attempts finish, not the order they started.

use fullup_server::crypto::MainKey;
use fullup_server::domain::event_type::EventFilter;
use fullup_server::domain::ids::{AttemptId, EventId, SiteId, WebhookId};
use fullup_server::domain::models::{Attempt, ErrorKind, Event, Site, Webhook};
use fullup_server::store::sqlite::SqliteStore;
use fullup_server::store::{ClaimedDelivery, Completion, NewEvent, NextStep, Store, WebhookEffect};
use fullup_signature::Secret;

const T0: i64 = 1_800_000_000_000;

async fn one_claimed_delivery(store: &dyn Store) -> ClaimedDelivery {
    let site = Site {
        id: SiteId::new(T0),
        name: "streaks".to_owned(),
        created_at: T0,
        updated_at: T0,
    };
    store.create_site(&site).await.expect("site");
    let webhook = Webhook {
        id: WebhookId::new(T0),
        site_id: site.id,
        url: "https://receiver.example.com/hook".to_owned(),
        event_types: vec![EventFilter::All],
        description: String::new(),
        enabled: true,
        disabled_reason: None,
        paused: false,
        secret: Secret::generate(),
        old_secrets: Vec::new(),
        created_at: T0,
        updated_at: T0,
        failing_since: None,
    };
    store.create_webhook(&webhook).await.expect("webhook");
    let new = NewEvent {
        event: Event {
            id: EventId::new(T0),
            site_id: site.id,
            event_type: "a.b".to_owned(),
            payload: "{}".to_owned(),
            created_at: T0,
            idempotency_key: None,
        },
        request_hash: [0; 32],
        only_webhook: None,
    };
    store.ingest(&new).await.expect("ingest");
    let mut claimed = store
        .claim_due(T0, T0 + 60_000, 1, 1, &[])
        .await
        .expect("claim");
    claimed.pop().expect("one delivery")
}

fn result(d: &ClaimedDelivery, number: u32, started_at: i64, ok: bool) -> Completion {
    Completion {
        attempt: Attempt {
            id: AttemptId::new(started_at),
            delivery_id: d.delivery_id,
            webhook_id: d.webhook.id,
            attempt_number: number,
            started_at,
            duration_ms: 1,
            status_code: Some(if ok { 200 } else { 500 }),
            error_kind: (!ok).then_some(ErrorKind::Status),
            error_message: None,
            response_body: String::new(),
        },
        next: if ok {
            NextStep::Succeeded
        } else {
            NextStep::RetryAt(started_at + 5_000)
        },
        webhook: if ok {
            WebhookEffect::Healthy
        } else {
            WebhookEffect::Failing {
                disable_if_failing_since: 0,
            }
        },
    }
}

async fn failing_since(store: &dyn Store, d: &ClaimedDelivery) -> Option<i64> {
    store
        .get_webhook(d.webhook.site_id, d.webhook.id)
        .await
        .expect("read")
        .expect("webhook")
        .failing_since
}

/// Regression: a slow success recorded after a failure that started later cleared the
/// streak, so the failures since went uncounted.
#[tokio::test]
async fn only_a_success_that_started_after_the_streak_ends_it() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = SqliteStore::open(&url, MainKey::generate())
        .await
        .expect("open");
    let d = one_claimed_delivery(&store).await;

    store
        .complete(&result(&d, 1, T0 + 100, false), T0 + 101)
        .await
        .expect("failure");
    assert_eq!(failing_since(&store, &d).await, Some(T0 + 100));

    store
        .complete(&result(&d, 2, T0 + 50, true), T0 + 200)
        .await
        .expect("late success");
    assert_eq!(
        failing_since(&store, &d).await,
        Some(T0 + 100),
        "a success that started before the failure does not end the streak"
    );

    store
        .complete(&result(&d, 3, T0 + 300, true), T0 + 301)
        .await
        .expect("success");
    assert_eq!(failing_since(&store, &d).await, None);
}
