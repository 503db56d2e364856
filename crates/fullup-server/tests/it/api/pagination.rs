//! Cursor pagination (every item once, newest first, a null cursor on the last page) and
//! the delivery list's filters.

use reqwest::Method;
use serde_json::Value;

use super::{all_pages, assert_error, ids};
use crate::support::server::manual_clock;
use crate::support::time::AdvanceMs as _;
use crate::support::{Backend, TestReceiver, TestServer, store_test};

store_test!(events_and_deliveries_page_newest_first_with_every_item_once);
async fn events_and_deliveries_page_newest_first_with_every_item_once(backend: Backend) {
    let server = backend.start().await;
    let receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    server.create_webhook(&site, &receiver.url(), &["*"]).await;
    let mut sent = Vec::new();
    for n in 0..7 {
        sent.push(
            server
                .send_event(&site, "page.test", serde_json::json!({"n": n}))
                .await,
        );
    }
    let newest_first: Vec<String> = sent.iter().rev().cloned().collect();

    let events = all_pages(&server, &format!("/v1/sites/{site}/events"), 3).await;
    assert_eq!(ids(&events), newest_first);
    let deliveries = all_pages(&server, &format!("/v1/sites/{site}/deliveries"), 3).await;
    let delivered: Vec<String> = deliveries
        .iter()
        .map(|d| d["event_id"].as_str().expect("event_id").to_owned())
        .collect();
    assert_eq!(
        delivered, newest_first,
        "one delivery per event, newest first"
    );
    let mut delivery_ids = ids(&deliveries);
    delivery_ids.dedup();
    assert_eq!(delivery_ids.len(), 7);

    // A page size that divides the total: the last full page still ends with null.
    assert_eq!(
        ids(&all_pages(&server, &format!("/v1/sites/{site}/events"), 7).await),
        newest_first
    );
    assert_eq!(
        ids(&all_pages(&server, &format!("/v1/sites/{site}/events"), 1).await),
        newest_first
    );
    server.stop().await;
}

store_test!(page_sizes_outside_1_to_250_get_400);
async fn page_sizes_outside_1_to_250_get_400(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    for route in ["events", "deliveries", "webhooks", "api-keys"] {
        for limit in ["0", "251"] {
            let path = format!("/v1/sites/{site}/{route}?limit={limit}");
            let message = assert_error(
                &server.call(Method::GET, &path, None).await,
                400,
                "invalid_request",
            );
            assert!(message.contains("limit"), "{path}: {message}");
        }
        for limit in ["-1", "ten"] {
            let path = format!("/v1/sites/{site}/{route}?limit={limit}");
            assert_error(
                &server.call(Method::GET, &path, None).await,
                400,
                "invalid_request",
            );
        }
        let (status, body) = server
            .call(
                Method::GET,
                &format!("/v1/sites/{site}/{route}?limit=250"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{route}: {body}");
    }
    assert_error(
        &server.call(Method::GET, "/v1/sites?limit=0", None).await,
        400,
        "invalid_request",
    );
    server.stop().await;
}

/// The `id`s of the deliveries matching `query`, sorted.
async fn matching(server: &TestServer, site: &str, query: &str) -> Vec<String> {
    let mut found = ids(&server.deliveries(site, query).await);
    found.sort();
    found
}

/// The `id`s of `deliveries` for which `keep` holds, sorted.
fn select(deliveries: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let kept: Vec<Value> = deliveries.iter().filter(|d| keep(d)).cloned().collect();
    let mut found = ids(&kept);
    found.sort();
    found
}

store_test!(deliveries_filter_by_state_webhook_event_and_time);
async fn deliveries_filter_by_state_webhook_event_and_time(backend: Backend) {
    let clock = manual_clock();
    let server = backend.start_with(|c| c.clock = clock.clone()).await;
    let site = server.create_site().await;
    let ok = TestReceiver::start().await;
    let gone = TestReceiver::start().await;
    gone.set_status(410);
    let failing = TestReceiver::start().await;
    failing.set_status(500);
    for receiver in [&ok, &gone, &failing] {
        receiver.set_clock(clock.clone());
    }
    let (ok_hook, _) = server.create_webhook(&site, &ok.url(), &["*"]).await;
    let (gone_hook, _) = server.create_webhook(&site, &gone.url(), &["*"]).await;
    let (failing_hook, _) = server.create_webhook(&site, &failing.url(), &["*"]).await;

    let first = server
        .send_event(&site, "filter.test", serde_json::json!({"n": 1}))
        .await;
    server.wait_for_state(&site, &first, "succeeded").await;
    server.wait_for_state(&site, &first, "failed").await;
    wait_for_attempt(&server, &site, &failing_hook).await;
    clock.advance_ms(1_000);
    let second = server
        .send_event(&site, "filter.test", serde_json::json!({"n": 2}))
        .await;
    clock.advance_ms(1_000);
    let third = server
        .send_event(&site, "filter.test", serde_json::json!({"n": 3}))
        .await;
    let all = server.deliveries(&site, "limit=250").await;
    // The 410 disabled its webhook, so later events fan out to two webhooks only.
    assert_eq!(all.len(), 3 + 2 + 2, "{all:?}");

    let by_event = |e: &str| select(&all, |d| d["event_id"] == e);
    let by_hook = |w: &str| select(&all, |d| d["webhook_id"] == w);
    for event in [&first, &second, &third] {
        assert_eq!(
            matching(&server, &site, &format!("event_id={event}")).await,
            by_event(event)
        );
    }
    for hook in [&ok_hook, &gone_hook, &failing_hook] {
        assert_eq!(
            matching(&server, &site, &format!("webhook_id={hook}")).await,
            by_hook(hook)
        );
    }
    let failed = matching(&server, &site, "state=failed").await;
    assert_eq!(failed, by_hook(&gone_hook));
    assert_eq!(failed.len(), 1);
    let pending = matching(
        &server,
        &site,
        &format!("state=pending&webhook_id={failing_hook}&event_id={first}"),
    )
    .await;
    assert_eq!(pending.len(), 1, "the 500 is retried later");
    assert_eq!(
        matching(&server, &site, "state=cancelled").await,
        Vec::<String>::new()
    );

    let created = |event: &str| {
        all.iter()
            .find(|d| d["event_id"] == event)
            .and_then(|d| d["created_at"].as_str())
            .expect("created_at")
            .to_owned()
    };
    let (t2, t3) = (created(&second), created(&third));
    let mut later = [by_event(&second), by_event(&third)].concat();
    later.sort();
    assert_eq!(
        matching(&server, &site, &format!("since={t2}")).await,
        later
    );
    assert_eq!(
        matching(&server, &site, &format!("until={t2}")).await,
        by_event(&first)
    );
    assert_eq!(
        matching(&server, &site, &format!("since={t2}&until={t3}")).await,
        by_event(&second)
    );
    server.stop().await;
}

store_test!(events_filter_by_type_and_time);
async fn events_filter_by_type_and_time(backend: Backend) {
    let clock = manual_clock();
    let server = backend.start_with(|c| c.clock = clock.clone()).await;
    let site = server.create_site().await;
    let first = server
        .send_event(&site, "form.submitted", serde_json::json!({}))
        .await;
    clock.advance_ms(1_000);
    let second = server
        .send_event(&site, "order.paid", serde_json::json!({}))
        .await;
    clock.advance_ms(1_000);
    let third = server
        .send_event(&site, "form.submitted", serde_json::json!({}))
        .await;
    let events = |query: String| {
        let server = &server;
        let site = &site;
        async move {
            let (status, body) = server
                .call(
                    Method::GET,
                    &format!("/v1/sites/{site}/events?{query}"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{query}: {body}");
            ids(body["data"].as_array().expect("data"))
        }
    };
    let (_, second_event) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/events/{second}"),
            None,
        )
        .await;
    let t2 = second_event["created_at"]
        .as_str()
        .expect("created_at")
        .to_owned();

    assert_eq!(
        events("type=form.submitted".into()).await,
        [third.as_str(), first.as_str()]
    );
    assert_eq!(events("type=order.paid".into()).await, [second.as_str()]);
    assert_eq!(
        events("type=form".into()).await,
        Vec::<String>::new(),
        "type is exact, not a prefix"
    );
    assert_eq!(
        events(format!("since={t2}")).await,
        [third.as_str(), second.as_str()]
    );
    assert_eq!(events(format!("until={t2}")).await, [first.as_str()]);
    assert_eq!(
        events(format!("since={t2}&type=form.submitted")).await,
        [third.as_str()]
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_delivery_filters_get_400() {
    let server = TestServer::start().await;
    let site = server.create_site().await;
    for query in [
        "state=done",
        "state=",
        "webhook_id=evt_01JDQ3W5Z8K9T2M4N6P8R0S2V4",
        "event_id=42",
        "since=yesterday",
        "until=2026-13-01T00:00:00Z",
        "cursor=a&cursor=b",
    ] {
        let path = format!("/v1/sites/{site}/deliveries?{query}");
        assert_error(
            &server.call(Method::GET, &path, None).await,
            400,
            "invalid_request",
        );
    }
    let message = assert_error(
        &server
            .call(
                Method::GET,
                &format!("/v1/sites/{site}/deliveries?state=done"),
                None,
            )
            .await,
        400,
        "invalid_request",
    );
    assert!(
        message.contains("pending"),
        "names the valid states: {message}"
    );
    server.stop().await;
}

/// Polls until `webhook` has a delivery with at least one attempt.
async fn wait_for_attempt(server: &TestServer, site: &str, webhook: &str) {
    for _ in 0..500 {
        let found = server
            .deliveries(site, &format!("webhook_id={webhook}"))
            .await;
        if found.iter().any(|d| d["attempt_count"].as_u64() >= Some(1)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("webhook {webhook} was never attempted");
}
