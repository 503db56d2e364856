//! Delivery end to end: real service, real receivers, every signature verified.

use std::time::Duration;

use serde_json::json;

use crate::support::{TestReceiver, TestServer};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn an_event_is_delivered_signed_with_both_schemes_and_all_headers() {
    let server = TestServer::start().await;
    let mut receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    let (webhook, secret) = server.create_webhook(&site, &receiver.url(), &["form.*"]).await;
    receiver.expect_secret(secret);

    let event = server
        .send_event(&site, "form.submitted", json!({"name": "Zoë 🎉", "1": true, "n": 1.0}))
        .await;
    let got = receiver.next(WAIT).await;

    assert!(got.fullup_ok, "fullup-signature must verify");
    assert!(got.standard_ok, "webhook-signature must verify");
    assert_eq!(got.header("content-type"), "application/json");
    assert_eq!(got.header("fullup-event-id"), event);
    assert_eq!(got.header("webhook-id"), event);
    assert_eq!(got.header("fullup-event-type"), "form.submitted");
    assert_eq!(got.header("fullup-attempt"), "1");
    assert!(got.header("user-agent").starts_with("fullup-webhooks/"));
    assert_eq!(got.header("fullup-timestamp"), got.header("webhook-timestamp"));
    let body = std::str::from_utf8(&got.body).expect("utf-8");
    assert!(body.starts_with(&format!(r#"{{"id":"{event}","type":"form.submitted","created_at":""#)), "{body}");
    // `json!` sorts keys, so "n" precedes "name"; the integer-like "1" goes first either way.
    assert!(body.ends_with(r#","data":{"1":true,"n":1,"name":"Zoë 🎉"}}"#), "{body}");

    let delivery = server.wait_for_state(&site, &event, "succeeded").await;
    assert_eq!(delivery["webhook_id"], webhook.as_str());
    assert_eq!(delivery["attempt_count"], 1);
    let attempts = server.attempts(&site, delivery["id"].as_str().expect("id")).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status_code"], 200);
    assert_eq!(attempts[0]["response_body"], "receiver says hello");
    server.stop().await;
}
