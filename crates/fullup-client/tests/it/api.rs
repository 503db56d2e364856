//! Each call of the client against the real service.

use std::time::Duration;

use fullup_client::{
    ApiKeyScope, Client, DeliveryFilter, DeliveryState, Error, NewEvent, NewWebhook,
};
use futures::TryStreamExt as _;
use serde_json::json;

use crate::support::{ADMIN_TOKEN, OkReceiver, Service};

/// Events sent by the paging test: more than two pages of two.
const EVENTS: usize = 5;

#[tokio::test]
async fn an_event_sent_twice_with_one_idempotency_key_is_one_event() {
    let service = Service::start().await;
    let client = service.client();
    let site = client.create_site("demo").await.expect("create a site");
    assert_eq!(site.name, "demo");
    let receiver = OkReceiver::start().await;
    let created = client
        .create_webhook(&site.id, &NewWebhook::new(&receiver.url))
        .await
        .expect("create a webhook");
    assert!(created.secret.expose().starts_with("whsec_"));
    assert_eq!(created.webhook.url, receiver.url);

    let event = NewEvent::new("form.submitted", &json!({"name": "Ada"}))
        .expect("an event")
        .idempotency_key("form-42");
    let first = client.create_event(&site.id, &event).await.expect("send");
    let again = client.create_event(&site.id, &event).await.expect("resend");
    assert_eq!(first, again, "the same key answers the same event");

    let events: Vec<_> = client.events(&site.id).try_collect().await.expect("events");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].id, first);
    assert_eq!(events[0].idempotency_key.as_deref(), Some("form-42"));
    let stored = client.event(&site.id, &first).await.expect("the event");
    let payload: serde_json::Value =
        serde_json::from_str(stored.payload.get()).expect("a JSON payload");
    assert_eq!(payload["data"], json!({"name": "Ada"}));
}

#[tokio::test]
async fn deliveries_stream_across_pages_and_show_their_attempts() {
    let service = Service::start().await;
    let client = service.client().with_page_size(2);
    let site = client.create_site("paging").await.expect("create a site");
    let receiver = OkReceiver::start().await;
    let webhook = client
        .create_webhook(&site.id, &NewWebhook::new(&receiver.url))
        .await
        .expect("create a webhook")
        .webhook;
    let mut sent = Vec::new();
    for n in 0..EVENTS {
        let event = NewEvent::new("order.paid", &json!({ "n": n })).expect("an event");
        sent.push(client.create_event(&site.id, &event).await.expect("send"));
    }

    let deliveries: Vec<_> = client
        .deliveries(&site.id, &DeliveryFilter::default())
        .try_collect()
        .await
        .expect("deliveries");
    let mut listed: Vec<_> = deliveries.iter().map(|d| d.event_id.clone()).collect();
    listed.sort();
    sent.sort();
    assert_eq!(listed, sent, "one delivery per event, over three pages");
    assert!(deliveries.iter().all(|d| d.webhook_id == webhook.id));

    let one = DeliveryFilter {
        event_id: Some(sent[0].clone()),
        ..DeliveryFilter::default()
    };
    let only: Vec<_> = client
        .deliveries(&site.id, &one)
        .try_collect()
        .await
        .expect("filtered");
    assert_eq!(only.len(), 1);
    let delivery = wait_until_succeeded(&client, &site.id, &only[0].id).await;
    let attempts = fullup_client::collect(client.attempts(&site.id, &delivery.id))
        .await
        .expect("attempts");
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].status_code, Some(200));

    let retried = client
        .retry_delivery(&site.id, &delivery.id)
        .await
        .expect("retry");
    assert_eq!(retried.state, DeliveryState::Pending);
    wait_until_succeeded(&client, &site.id, &delivery.id).await;
}

#[tokio::test]
async fn a_missing_site_is_a_typed_not_found() {
    let service = Service::start().await;
    let client = service.client();
    let err = client
        .site("site_01J00000000000000000000000")
        .await
        .expect_err("no such site");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(err.code(), Some("not_found"));
    let err = client
        .deliveries(
            "site_01J00000000000000000000000",
            &DeliveryFilter::default(),
        )
        .try_collect::<Vec<_>>()
        .await
        .expect_err("no such site");
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn a_wrong_token_is_a_401_and_no_token_is_shown() {
    let service = Service::start().await;
    let client = Client::new(&service.base, "not-the-admin-token").expect("client");
    let err = client.create_site("x").await.expect_err("refused");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "{err:?}");
    assert!(matches!(err, Error::Api { .. }));

    let client = service.client();
    assert!(!format!("{client:?}").contains(ADMIN_TOKEN));
    let site = client.create_site("secrets").await.expect("site");
    let created = client
        .create_webhook(&site.id, &NewWebhook::new("http://127.0.0.1:9/hook"))
        .await
        .expect("webhook");
    let shown = format!("{created:?}");
    assert!(!shown.contains(created.secret.expose()), "{shown}");
    let again = client
        .webhook_secret(&site.id, &created.webhook.id)
        .await
        .expect("the secret");
    assert_eq!(again, created.secret);
}

#[tokio::test]
async fn an_unreachable_service_is_a_transport_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let client = Client::new(&format!("http://127.0.0.1:{port}"), "token").expect("client");
    let err = client.ready().await.expect_err("nothing listens");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(matches!(
        Client::new("ftp://example.com", "t"),
        Err(Error::InvalidBaseUrl { .. })
    ));
}

async fn wait_until_succeeded(
    client: &Client,
    site: &str,
    delivery: &str,
) -> fullup_client::Delivery {
    for _ in 0..300 {
        let current = client.delivery(site, delivery).await.expect("delivery");
        if current.state == DeliveryState::Succeeded {
            return current;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("delivery {delivery} did not succeed within 15 s");
}

#[tokio::test]
async fn a_site_api_key_reaches_its_site_only() {
    let service = Service::start().await;
    let admin = service.client();
    let site = admin.create_site("acme").await.expect("site");
    let other = admin.create_site("other").await.expect("other site");
    let created = admin
        .create_api_key(&site.id, "backend", &[ApiKeyScope::Manage])
        .await
        .expect("api key");
    assert_eq!(created.key.scopes, [ApiKeyScope::Manage]);
    assert!(!format!("{created:?}").contains(created.token.expose()));
    let keys: Vec<_> = admin.api_keys(&site.id).try_collect().await.expect("keys");
    assert_eq!(keys, vec![created.key.clone()]);

    let backend = Client::new(&service.base, created.token.expose()).expect("client");
    let event = NewEvent::new("order.paid", &json!({"n": 1})).expect("an event");
    backend
        .create_event(&site.id, &event)
        .await
        .expect("its own site");
    let err = backend
        .create_event(&other.id, &event)
        .await
        .expect_err("another site");
    assert!(err.is_not_found(), "{err:?}");
    let renamed = backend
        .rename_site(&site.id, "acme inc")
        .await
        .expect("rename");
    assert_eq!(renamed.name, "acme inc");

    let ingest = admin
        .create_api_key(&site.id, "sender", &[])
        .await
        .expect("ingest key");
    assert_eq!(ingest.key.scopes, [ApiKeyScope::Ingest], "the default");
    let sender = Client::new(&service.base, ingest.token.expose()).expect("client");
    sender.create_event(&site.id, &event).await.expect("ingest");
    let err = sender
        .rename_site(&site.id, "mine")
        .await
        .expect_err("an ingest key manages nothing");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403), "{err:?}");

    admin
        .delete_api_key(&site.id, &created.key.id)
        .await
        .expect("revoke");
    let err = backend.site(&site.id).await.expect_err("revoked");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "{err:?}");
}

#[tokio::test]
async fn a_rotated_secret_is_new_and_a_test_makes_a_ping_event() {
    let service = Service::start().await;
    let client = service.client();
    let site = client.create_site("rotation").await.expect("site");
    let receiver = OkReceiver::start().await;
    let created = client
        .create_webhook(&site.id, &NewWebhook::new(&receiver.url))
        .await
        .expect("webhook");
    let hook = &created.webhook.id;
    let rotated = client
        .rotate_webhook_secret(&site.id, hook, Some(Duration::from_secs(60)))
        .await
        .expect("rotate");
    assert_ne!(rotated.secret, created.secret);
    assert!(rotated.previous_secret_valid_until > created.webhook.created_at);
    assert_eq!(
        client.webhook_secret(&site.id, hook).await.expect("secret"),
        rotated.secret
    );
    client
        .rotate_webhook_secret(&site.id, hook, None)
        .await
        .expect("rotate with the default grace");

    let ping = client.test_webhook(&site.id, hook).await.expect("test");
    let event = client.event(&site.id, &ping).await.expect("the ping");
    assert_eq!(event.event_type, "ping");
    let paused = client
        .update_webhook(
            &site.id,
            hook,
            &fullup_client::WebhookUpdate {
                paused: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("pause");
    assert!(paused.paused);
    let listed: Vec<_> = client.webhooks(&site.id).try_collect().await.expect("list");
    assert_eq!(listed, vec![paused]);
    client.delete_webhook(&site.id, hook).await.expect("delete");
    client.delete_site(&site.id).await.expect("delete site");
    let sites: Vec<_> = client.sites().try_collect().await.expect("sites");
    assert!(sites.is_empty(), "{sites:?}");
}
