//! Retry timing, Retry-After, recovery, manual retry and disabling, driven by a manual
//! clock: time moves only when a test says so, so "no attempt yet" is a fact, not a race.

use std::sync::Arc;
use std::time::Duration;

use fullup_server::domain::clock::ManualClock;
use fullup_server::domain::retry::RetrySchedule;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{manual_clock, short_schedule};
use crate::support::time::{AdvanceMs as _, NowMs as _, format_rfc3339};
use crate::support::{Backend, Received, TestReceiver, TestServer, store_test};

const WAIT: Duration = Duration::from_secs(10);
/// Long enough for many 20 ms dispatcher polls; a due attempt would arrive within it.
const QUIET: Duration = Duration::from_millis(300);

/// A server on `backend` with a manual clock and `schedule`, and a receiver judging
/// timestamps by that clock.
async fn setup(
    backend: Backend,
    schedule: RetrySchedule,
) -> (Arc<ManualClock>, TestServer, TestReceiver) {
    let clock = manual_clock();
    let server = backend
        .start_with(|c| {
            c.clock = clock.clone();
            c.delivery.retry = schedule;
        })
        .await;
    let receiver = TestReceiver::start().await;
    receiver.set_clock(clock.clone());
    (clock, server, receiver)
}

/// Creates a site and a `*` webhook to `receiver`; returns (site, webhook).
async fn subscribe(server: &TestServer, receiver: &TestReceiver) -> (String, String) {
    let site = server.create_site().await;
    let (webhook, secret) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    receiver.expect_secret(secret);
    (site, webhook)
}

/// The next request, asserted signed, with the attempt number it carries.
async fn next_attempt(receiver: &mut TestReceiver, number: u32) -> Received {
    let got = receiver.next(WAIT).await;
    assert!(
        got.fullup_ok && got.standard_ok,
        "signatures must verify: {got:?}"
    );
    assert_eq!(got.header("fullup-attempt"), number.to_string());
    got
}

/// Waits until the event's delivery has made `n` attempts.
async fn after_attempts(server: &TestServer, site: &str, event: &str, n: u32) -> Value {
    server
        .wait_for_delivery(site, event, |d| d["attempt_count"] == n)
        .await
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).expect("small duration")
}

store_test!(a_500_is_retried_after_the_schedule_and_then_succeeds);
async fn a_500_is_retried_after_the_schedule_and_then_succeeds(backend: Backend) {
    let (clock, server, mut receiver) = setup(backend, short_schedule()).await;
    let (site, _) = subscribe(&server, &receiver).await;
    receiver.set_status(500);
    let t0 = clock.now_ms();

    let event = server
        .send_event(&site, "form.submitted", json!({"try": "again"}))
        .await;
    let first = next_attempt(&mut receiver, 1).await;
    let delivery = after_attempts(&server, &site, &event, 1).await;
    assert_eq!(delivery["state"], "pending");
    assert_eq!(delivery["next_attempt_at"], format_rfc3339(t0 + 5_000));
    assert!(
        receiver.try_next(QUIET).await.is_none(),
        "attempt 2 came before its time"
    );

    receiver.set_status(200);
    clock.advance_ms(5_000);
    let second = next_attempt(&mut receiver, 2).await;
    assert_eq!(second.body, first.body, "a retry sends the same body");
    let delivery = server.wait_for_state(&site, &event, "succeeded").await;
    assert_eq!(delivery["attempt_count"], 2);
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    let attempts = server
        .attempts(&site, delivery["id"].as_str().expect("id"))
        .await;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["attempt_number"], 2);
    assert_eq!(attempts[0]["status_code"], 200);
    assert_eq!(attempts[0]["error_kind"], Value::Null);
    assert_eq!(attempts[1]["attempt_number"], 1);
    assert_eq!(attempts[1]["status_code"], 500);
    assert_eq!(attempts[1]["error_kind"], "status");
    for attempt in &attempts {
        assert_eq!(attempt["response_body"], "receiver says hello");
    }
    server.stop().await;
}

store_test!(a_delivery_fails_once_the_schedule_is_exhausted);
async fn a_delivery_fails_once_the_schedule_is_exhausted(backend: Backend) {
    let (clock, server, mut receiver) = setup(backend, short_schedule()).await;
    let (site, _) = subscribe(&server, &receiver).await;
    receiver.set_status(500);

    let event = server.send_event(&site, "form.submitted", json!({})).await;
    let delays = [5, 300, 1800].map(Duration::from_secs);
    for (made, delay) in (1..).zip(delays) {
        next_attempt(&mut receiver, made).await;
        let delivery = after_attempts(&server, &site, &event, made).await;
        assert_eq!(delivery["state"], "pending");
        assert!(
            receiver.try_next(QUIET).await.is_none(),
            "attempt {} came early",
            made + 1
        );
        clock.advance_ms(ms(delay));
    }
    next_attempt(&mut receiver, 4).await;
    let delivery = server.wait_for_state(&site, &event, "failed").await;
    assert_eq!(delivery["attempt_count"], 4);
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    clock.advance_ms(ms(Duration::from_secs(24 * 3600)));
    assert!(
        receiver.try_next(QUIET).await.is_none(),
        "a failed delivery was attempted again"
    );
    server.stop().await;
}

/// The delay the service schedules after one answer of `status` with `retry_after`.
async fn delay_after(
    server: &TestServer,
    clock: &Arc<ManualClock>,
    status: u16,
    retry_after: &str,
) -> String {
    let mut receiver = TestReceiver::start().await;
    receiver.set_clock(clock.clone());
    receiver.set_status(status);
    receiver.add_header("retry-after", retry_after);
    let (site, _) = subscribe(server, &receiver).await;
    let event = server
        .send_event(&site, "form.submitted", json!({"status": status}))
        .await;
    next_attempt(&mut receiver, 1).await;
    let delivery = after_attempts(server, &site, &event, 1).await;
    delivery["next_attempt_at"]
        .as_str()
        .expect("pending")
        .to_owned()
}

store_test!(retry_after_is_honoured_on_429_and_503_within_one_to_two_delays);
async fn retry_after_is_honoured_on_429_and_503_within_one_to_two_delays(backend: Backend) {
    let (clock, server, _) = setup(backend, short_schedule()).await;
    let t0 = clock.now_ms();
    let at = |secs: i64| format_rfc3339(t0 + secs * 1000);
    assert_eq!(
        delay_after(&server, &clock, 429, "3600").await,
        at(10),
        "clamped to 2× the schedule"
    );
    assert_eq!(
        delay_after(&server, &clock, 429, "1").await,
        at(5),
        "never sooner than the schedule"
    );
    assert_eq!(
        delay_after(&server, &clock, 503, "7").await,
        at(7),
        "honoured within the bounds"
    );
    assert_eq!(delay_after(&server, &clock, 503, "3600").await, at(10));
    assert_eq!(
        delay_after(&server, &clock, 500, "3600").await,
        at(5),
        "ignored on 500"
    );
    server.stop().await;
}

async fn recover(server: &TestServer, site: &str, webhook: &str, body: Value) -> Value {
    let path = format!("/v1/sites/{site}/webhooks/{webhook}/recover");
    let (status, answer) = server.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 202, "{answer}");
    answer["recovered"].clone()
}

store_test!(recover_requeues_the_failed_deliveries_of_a_time_range);
async fn recover_requeues_the_failed_deliveries_of_a_time_range(backend: Backend) {
    let (clock, server, mut receiver) = setup(backend, RetrySchedule::new(Vec::new(), 0.0)).await;
    let (site, webhook) = subscribe(&server, &receiver).await;
    receiver.set_status(500);
    let t0 = clock.now_ms();

    let mut events = Vec::new();
    for i in 0..3 {
        events.push(
            server
                .send_event(&site, "form.submitted", json!({"i": i}))
                .await,
        );
        next_attempt(&mut receiver, 1).await;
    }
    for event in &events {
        server.wait_for_state(&site, event, "failed").await;
    }
    let earlier =
        json!({"since": format_rfc3339(t0 - 3_600_000), "until": format_rfc3339(t0 - 1_000)});
    assert_eq!(recover(&server, &site, &webhook, earlier).await, 0);
    assert_eq!(server.deliveries(&site, "state=failed").await.len(), 3);

    receiver.set_status(200);
    let since = json!({"since": format_rfc3339(t0 - 1_000)});
    assert_eq!(recover(&server, &site, &webhook, since.clone()).await, 3);
    for _ in 0..3 {
        next_attempt(&mut receiver, 2).await;
    }
    for event in &events {
        let delivery = server.wait_for_state(&site, event, "succeeded").await;
        assert_eq!(delivery["attempt_count"], 2);
    }
    assert_eq!(
        recover(&server, &site, &webhook, since).await,
        0,
        "nothing failed is left"
    );
    server.stop().await;
}

store_test!(a_manual_retry_replays_a_succeeded_delivery);
async fn a_manual_retry_replays_a_succeeded_delivery(backend: Backend) {
    let (_clock, server, mut receiver) = setup(backend, short_schedule()).await;
    let (site, _) = subscribe(&server, &receiver).await;
    let event = server
        .send_event(&site, "form.submitted", json!({"replay": true}))
        .await;
    let first = next_attempt(&mut receiver, 1).await;
    let delivery = server.wait_for_state(&site, &event, "succeeded").await;
    let id = delivery["id"].as_str().expect("id");

    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/deliveries/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let again = next_attempt(&mut receiver, 2).await;
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("webhook-id"), first.header("webhook-id"));
    let delivery = server
        .wait_for_delivery(&site, &event, |d| {
            d["attempt_count"] == 2 && d["state"] == "succeeded"
        })
        .await;
    assert_eq!(
        server
            .attempts(&site, delivery["id"].as_str().expect("id"))
            .await
            .len(),
        2
    );
    server.stop().await;
}

store_test!(a_manual_retry_of_a_disabled_webhooks_delivery_is_refused);
async fn a_manual_retry_of_a_disabled_webhooks_delivery_is_refused(backend: Backend) {
    let (_clock, server, mut receiver) = setup(backend, short_schedule()).await;
    let (site, webhook) = subscribe(&server, &receiver).await;
    let event = server
        .send_event(&site, "form.submitted", json!({"n": 1}))
        .await;
    next_attempt(&mut receiver, 1).await;
    let delivery = server.wait_for_state(&site, &event, "succeeded").await;
    let id = delivery["id"].as_str().expect("id");
    let (status, body) = server
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}/webhooks/{webhook}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/deliveries/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "webhook_disabled");
    server.stop().await;
}

store_test!(a_webhook_failing_for_longer_than_disable_after_is_disabled);
async fn a_webhook_failing_for_longer_than_disable_after_is_disabled(backend: Backend) {
    let step = Duration::from_secs(40 * 60);
    let clock = manual_clock();
    let server = backend
        .start_with(|c| {
            c.clock = clock.clone();
            c.delivery.retry = RetrySchedule::new(vec![step; 3], 0.0);
            c.delivery.disable_after = Duration::from_secs(3600);
        })
        .await;
    let mut receiver = TestReceiver::start().await;
    receiver.set_clock(clock.clone());
    receiver.set_status(500);
    let (site, webhook) = subscribe(&server, &receiver).await;
    let webhook_path = format!("/v1/sites/{site}/webhooks/{webhook}");

    let event = server.send_event(&site, "form.submitted", json!({})).await;
    for made in 1..=2 {
        next_attempt(&mut receiver, made).await;
        after_attempts(&server, &site, &event, made).await;
        let (_, body) = server.call(Method::GET, &webhook_path, None).await;
        assert_eq!(
            body["enabled"], true,
            "failing for less than an hour: {body}"
        );
        clock.advance_ms(ms(step));
    }
    next_attempt(&mut receiver, 3).await;
    after_attempts(&server, &site, &event, 3).await;
    let (_, body) = server.call(Method::GET, &webhook_path, None).await;
    assert_eq!(body["enabled"], false, "failing for 80 minutes: {body}");
    let reason = body["disabled_reason"].as_str().expect("a reason");
    assert!(reason.contains("failed since"), "{reason}");

    let later = server.send_event(&site, "form.submitted", json!({})).await;
    assert!(
        server
            .deliveries(&site, &format!("event_id={later}"))
            .await
            .is_empty()
    );
    server.stop().await;
}

store_test!(a_manual_retry_does_not_duplicate_an_attempt_in_flight);
/// Regression: a manual retry dropped the lease of an attempt in flight, so the
/// dispatcher sent the same delivery again, concurrently, under the same attempt number.
async fn a_manual_retry_does_not_duplicate_an_attempt_in_flight(backend: Backend) {
    let (_clock, server, mut receiver) = setup(backend, short_schedule()).await;
    receiver.set_hang(true);
    let (site, _) = subscribe(&server, &receiver).await;
    let event = server.send_event(&site, "form.submitted", json!({})).await;
    next_attempt(&mut receiver, 1).await;
    let delivery = server.wait_for_state(&site, &event, "pending").await;
    let id = delivery["id"].as_str().expect("id");

    let path = format!("/v1/sites/{site}/deliveries/{id}/retry");
    let (status, body) = server.call(Method::POST, &path, None).await;
    assert_eq!(status, 202, "{body}");
    assert!(
        receiver.try_next(QUIET).await.is_none(),
        "a second attempt started while the first was in flight"
    );
}

store_test!(a_paused_webhook_queues_deliveries_until_it_is_resumed);
async fn a_paused_webhook_queues_deliveries_until_it_is_resumed(backend: Backend) {
    let (_clock, server, mut receiver) = setup(backend, short_schedule()).await;
    let (site, webhook) = subscribe(&server, &receiver).await;
    let path = format!("/v1/sites/{site}/webhooks/{webhook}");
    let (status, paused) = server
        .call(Method::PATCH, &path, Some(json!({"paused": true})))
        .await;
    assert_eq!((status, &paused["paused"]), (200, &json!(true)));

    let event = server
        .send_event(&site, "form.submitted", json!({"n": 1}))
        .await;
    assert!(
        receiver.try_next(QUIET).await.is_none(),
        "a paused webhook was attempted"
    );
    let queued = server.deliveries(&site, &format!("event_id={event}")).await;
    assert_eq!(queued.len(), 1, "the delivery is queued: {queued:?}");
    assert_eq!(
        (&queued[0]["state"], &queued[0]["attempt_count"]),
        (&json!("pending"), &json!(0))
    );

    let (status, resumed) = server
        .call(Method::PATCH, &path, Some(json!({"paused": false})))
        .await;
    assert_eq!((status, &resumed["paused"]), (200, &json!(false)));
    let got = next_attempt(&mut receiver, 1).await;
    assert_eq!(got.header("fullup-event-id"), event);
    server.wait_for_state(&site, &event, "succeeded").await;
}

store_test!(a_disabled_webhooks_pending_retry_waits_and_resumes_on_re_enable);
/// Issue 17, item 11: a retry that falls due while its webhook is disabled is not
/// attempted; it stays pending, and is attempted once the webhook is enabled again.
async fn a_disabled_webhooks_pending_retry_waits_and_resumes_on_re_enable(backend: Backend) {
    let (clock, server, mut receiver) = setup(backend, short_schedule()).await;
    let (site, webhook) = subscribe(&server, &receiver).await;
    let path = format!("/v1/sites/{site}/webhooks/{webhook}");
    receiver.set_status(500);
    let event = server
        .send_event(&site, "form.submitted", json!({"n": 1}))
        .await;
    next_attempt(&mut receiver, 1).await;
    after_attempts(&server, &site, &event, 1).await;

    let (status, disabled) = server
        .call(Method::PATCH, &path, Some(json!({"enabled": false})))
        .await;
    assert_eq!((status, &disabled["enabled"]), (200, &json!(false)));
    receiver.set_status(200);
    clock.advance_ms(3_600_000); // attempt 2 was due after 5 s
    assert!(
        receiver.try_next(QUIET).await.is_none(),
        "a disabled webhook's retry was attempted"
    );
    let waiting = server.deliveries(&site, &format!("event_id={event}")).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(
        (&waiting[0]["state"], &waiting[0]["attempt_count"]),
        (&json!("pending"), &json!(1)),
        "the retry is kept, not dropped: {waiting:?}"
    );

    let (status, enabled) = server
        .call(Method::PATCH, &path, Some(json!({"enabled": true})))
        .await;
    assert_eq!((status, &enabled["enabled"]), (200, &json!(true)));
    let got = next_attempt(&mut receiver, 2).await;
    assert_eq!(got.header("fullup-event-id"), event);
    let delivery = server.wait_for_state(&site, &event, "succeeded").await;
    assert_eq!(delivery["attempt_count"], 2);
    server.stop().await;
}
