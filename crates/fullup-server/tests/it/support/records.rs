//! Records for tests below the API, written straight to a store.

use fullup_server::domain::event_type::{EventFilter, EventType};
use fullup_server::domain::health::Health;
use fullup_server::domain::ids::{EventId, SiteId, WebhookId};
use fullup_server::domain::models::{Event, Site};
use fullup_server::domain::time::Timestamp;
use fullup_server::domain::webhook::{Secrets, Webhook};
use fullup_server::domain::webhook_url::WebhookUrl;
use fullup_server::store::{NewEvent, Store};
use fullup_signature::Secret;

/// Creates a site, created at `at`, with `webhooks` webhooks, each subscribed to
/// everything; returns their ids.
pub async fn site_with_webhooks(
    store: &dyn Store,
    at: Timestamp,
    webhooks: usize,
) -> (SiteId, Vec<WebhookId>) {
    let site = Site {
        id: SiteId::new(at),
        name: "test site".to_owned(),
        strict_event_types: false,
        retention_days: None,
        created_at: at,
        updated_at: at,
    };
    store.create_site(&site).await.expect("site");
    let mut ids = Vec::new();
    for _ in 0..webhooks {
        let webhook = Webhook {
            id: WebhookId::new(at),
            site_id: site.id,
            url: WebhookUrl::parse("https://receiver.example.com/hook").expect("url"),
            event_types: vec![EventFilter::All],
            description: String::new(),
            headers: Default::default(),
            health: Health::default(),
            paused: false,
            rate_limit: None,
            ordering: Default::default(),
            secrets: Ok(Secrets::new(Secret::generate())),
            created_at: at,
            updated_at: at,
        };
        store.create_webhook(&webhook).await.expect("webhook");
        ids.push(webhook.id);
    }
    (site.id, ids)
}

/// Ingests an `a.b` event of `site` created at `at`, to `only` or to every webhook its
/// filters reach.
pub async fn ingest_at(store: &dyn Store, site: SiteId, at: Timestamp, only: Option<WebhookId>) {
    let new = NewEvent {
        event: Event {
            id: EventId::new(at),
            site_id: site,
            event_type: EventType::parse("a.b").expect("type"),
            payload: "{}".to_owned(),
            created_at: at,
            idempotency_key: None,
        },
        request_hash: [0; 32],
        only_webhook: only,
        hand_off: None,
    };
    store.ingest(new).await.expect("ingest");
}
