//! The service's own events (`webhook.failing`, `webhook.recovered`, `webhook.disabled`,
//! `delivery.exhausted`), told to an operator webhook of the same site that names them,
//! signed like any other, on both stores; never to a `*` webhook; never sent by a site.

use std::sync::Arc;
use std::time::Duration;

use fullup_server::domain::clock::ManualClock;
use fullup_server::domain::retry::RetrySchedule;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::manual_clock;
use crate::support::{Backend, Received, TestReceiver, TestServer, store_test};

const WAIT: Duration = Duration::from_secs(10);
/// Long enough for many 20 ms dispatcher polls: an event due would arrive within it.
const QUIET: Duration = Duration::from_millis(300);
/// The retry delay of these tests; two of them are more than `--disable-after`.
const STEP: Duration = Duration::from_secs(40 * 60);
const OPERATIONAL: [&str; 4] = [
    "webhook.failing",
    "webhook.recovered",
    "webhook.disabled",
    "delivery.exhausted",
];

/// A server with a manual clock and `schedule`, a site, a `*` webhook to a receiver that
/// answers 500, and an operator webhook subscribed to the operational events by name.
struct Setup {
    clock: Arc<ManualClock>,
    server: TestServer,
    site: String,
    target: TestReceiver,
    target_id: String,
    operator: TestReceiver,
}

async fn setup(backend: Backend, schedule: RetrySchedule) -> Setup {
    let clock = manual_clock();
    let server = backend
        .start_with(|c| {
            c.clock = clock.clone();
            c.delivery.retry = schedule;
            c.delivery.disable_after = Duration::from_secs(3600);
        })
        .await;
    let site = server.create_site().await;
    let target = TestReceiver::start().await;
    target.set_clock(clock.clone());
    target.set_status(500);
    let (target_id, secret) = server.create_webhook(&site, &target.url(), &["*"]).await;
    target.expect_secret(secret);
    let operator = TestReceiver::start().await;
    operator.set_clock(clock.clone());
    let (_, secret) = server
        .create_webhook(&site, &operator.url(), &OPERATIONAL)
        .await;
    operator.expect_secret(secret);
    Setup {
        clock,
        server,
        site,
        target,
        target_id,
        operator,
    }
}

/// The next request, asserted signed with both schemes; its envelope.
async fn next_signed(receiver: &mut TestReceiver) -> Value {
    let got: Received = receiver.next(WAIT).await;
    assert!(
        got.fullup_ok && got.standard_ok,
        "signatures must verify: {got:?}"
    );
    got.json()
}

/// The next operational event at the operator: asserts its type and that it is about
/// `webhook`; returns its data.
async fn told(s: &mut Setup, event_type: &str) -> Value {
    let envelope = next_signed(&mut s.operator).await;
    assert_eq!(envelope["type"], event_type, "{envelope}");
    assert_eq!(
        envelope["data"]["webhook_id"],
        s.target_id.as_str(),
        "{envelope}"
    );
    envelope["data"].clone()
}

store_test!(an_operator_webhook_hears_failing_recovered_then_disabled);
async fn an_operator_webhook_hears_failing_recovered_then_disabled(backend: Backend) {
    let mut s = setup(backend, RetrySchedule::new(vec![STEP; 5], 0.0)).await;
    let site = s.site.clone();

    s.server
        .send_event(&site, "form.submitted", json!({}))
        .await;
    assert_eq!(next_signed(&mut s.target).await["type"], "form.submitted");
    let failing = told(&mut s, "webhook.failing").await;
    assert!(failing["failing_since"].is_string(), "{failing}");

    s.target.set_status(200);
    s.clock.advance(STEP);
    next_signed(&mut s.target).await;
    told(&mut s, "webhook.recovered").await;

    // A new streak: failing again, then disabled once it is longer than an hour.
    s.target.set_status(500);
    let event = s
        .server
        .send_event(&site, "form.submitted", json!({}))
        .await;
    next_signed(&mut s.target).await;
    told(&mut s, "webhook.failing").await;
    for made in 2..=3 {
        s.clock.advance(STEP);
        next_signed(&mut s.target).await;
        // Recorded before the clock moves again (the next try is due a step after).
        s.server
            .wait_for_delivery(&site, &event, |d| d["attempt_count"] == made)
            .await;
    }
    let disabled = told(&mut s, "webhook.disabled").await;
    let reason = disabled["reason"].as_str().expect("a reason");
    assert!(reason.contains("failed since"), "{disabled}");

    // Nothing else: no second notice, and the `*` webhook got only the site's events.
    assert!(s.operator.try_next(QUIET).await.is_none());
    assert!(s.target.try_next(QUIET).await.is_none());
    s.server.stop().await;
}

store_test!(a_delivery_given_up_is_told_once_and_never_about_an_operational_event);
async fn a_delivery_given_up_is_told_once_and_never_about_an_operational_event(backend: Backend) {
    // No retries: the first failure gives the delivery up.
    let mut s = setup(backend, RetrySchedule::new(Vec::new(), 0.0)).await;
    let site = s.site.clone();
    let event = s
        .server
        .send_event(&site, "order.paid", json!({"n": 1}))
        .await;
    next_signed(&mut s.target).await;

    let mut seen = Vec::new();
    for _ in 0..2 {
        let envelope = next_signed(&mut s.operator).await;
        seen.push(envelope["type"].as_str().expect("type").to_owned());
        if envelope["type"] == "delivery.exhausted" {
            let data = &envelope["data"];
            assert_eq!(data["event_id"], event.as_str(), "{envelope}");
            assert_eq!(data["event_type"], "order.paid", "{envelope}");
            assert_eq!(data["attempts"], 1, "{envelope}");
            assert_eq!(data["last_status_code"], 500, "{envelope}");
        }
    }
    seen.sort();
    assert_eq!(seen, ["delivery.exhausted", "webhook.failing"]);
    assert!(s.operator.try_next(QUIET).await.is_none());
    s.server.stop().await;
}

store_test!(a_site_may_not_send_the_services_own_event_types);
async fn a_site_may_not_send_the_services_own_event_types(backend: Backend) {
    let s = setup(backend, RetrySchedule::new(Vec::new(), 0.0)).await;
    let path = format!("/v1/sites/{}/events", s.site);
    for reserved in OPERATIONAL {
        let body = json!({"type": reserved, "data": {}});
        let (status, answer) = s.server.call(Method::POST, &path, Some(body)).await;
        assert_eq!(status, 422, "{reserved}: {answer}");
        assert_eq!(answer["error"]["code"], "reserved_event_type", "{answer}");
    }
    let own = json!({"type": "webhook.created", "data": {}});
    let (status, answer) = s.server.call(Method::POST, &path, Some(own)).await;
    assert_eq!(
        status, 202,
        "other webhook.* names stay the site's: {answer}"
    );
    s.server.stop().await;
}
