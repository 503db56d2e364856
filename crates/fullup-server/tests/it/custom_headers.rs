//! Custom headers per webhook (issue 15, item 3): validated at registration with a 422
//! that names the header, sent on every attempt beside the signatures (which they do not
//! change), shown by the API and in the attempt log, credentials redacted there;
//! sealed at rest like the URL, and never read in clear.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::{Backend, TestReceiver, store_test};

const WAIT: Duration = Duration::from_secs(10);

store_test!(custom_headers_arrive_on_every_attempt_and_show_in_the_attempt_log);
async fn custom_headers_arrive_on_every_attempt_and_show_in_the_attempt_log(backend: Backend) {
    let server = backend
        .start_with(|c| c.delivery.retry = crate::support::server::short_schedule())
        .await;
    let mut receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    let (status, created) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks"),
            Some(json!({
                "url": receiver.url(),
                "headers": {"X-Tenant": "acme", "Authorization": "Bearer gateway-token-1"},
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["headers"],
        json!({"authorization": "Bearer gateway-token-1", "x-tenant": "acme"})
    );
    let webhook = created["id"].as_str().expect("id").to_owned();
    receiver.expect_secret(
        fullup_signature::Secret::parse(created["secret"].as_str().expect("secret"))
            .expect("secret"),
    );

    // The first attempt fails, so the retry shows the headers go on every attempt.
    receiver.set_status(500);
    let event = server
        .send_event(&site, "form.submitted", json!({"a": 1}))
        .await;
    for attempt in ["1", "2"] {
        let got = receiver.next(WAIT).await;
        receiver.set_status(200);
        assert_eq!(got.header("fullup-attempt"), attempt);
        assert_eq!(got.header("x-tenant"), "acme");
        assert_eq!(got.header("authorization"), "Bearer gateway-token-1");
        assert!(
            got.fullup_ok && got.standard_ok,
            "signatures verify: {got:?}"
        );
        assert!(
            !std::str::from_utf8(&got.body)
                .expect("utf-8")
                .contains("acme"),
            "custom headers are not part of the signed body"
        );
    }
    let delivery = server.wait_for_state(&site, &event, "succeeded").await;
    let attempts = server
        .attempts(&site, delivery["id"].as_str().expect("id"))
        .await;
    assert_eq!(attempts.len(), 2);
    for attempt in &attempts {
        let sent = attempt["request_headers"].as_str().expect("headers");
        assert!(sent.contains("x-tenant: acme\n"), "{sent}");
        assert!(sent.contains("authorization: [redacted]\n"), "{sent}");
        assert!(!sent.contains("gateway-token-1"), "{sent}");
        assert!(sent.contains("fullup-signature: "), "{sent}");
    }

    // PATCH replaces the whole set; `{}` removes them all.
    let path = format!("/v1/sites/{site}/webhooks/{webhook}");
    let (status, body) = server
        .call(
            Method::PATCH,
            &path,
            Some(json!({"headers": {"X-Region": "eu"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"], json!({"x-region": "eu"}));
    let (_, read) = server.call(Method::GET, &path, None).await;
    assert_eq!(read["headers"], json!({"x-region": "eu"}));
    server
        .send_event(&site, "form.submitted", json!({"a": 2}))
        .await;
    let got = receiver.next(WAIT).await;
    assert_eq!(got.header("x-region"), "eu");
    assert_eq!(
        got.header("x-tenant"),
        "",
        "replaced headers are no longer sent"
    );

    let (status, body) = server
        .call(Method::PATCH, &path, Some(json!({"headers": {}})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["headers"], json!({}));
    server.stop().await;
}

store_test!(forbidden_custom_headers_are_refused_with_a_422_naming_them);
async fn forbidden_custom_headers_are_refused_with_a_422_naming_them(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let create = |headers: serde_json::Value| {
        let server = &server;
        let site = &site;
        async move {
            server
                .call(
                    Method::POST,
                    &format!("/v1/sites/{site}/webhooks"),
                    Some(json!({"url": "https://example.com/hook", "headers": headers})),
                )
                .await
        }
    };
    let long = "v".repeat(1025);
    let many: serde_json::Map<String, serde_json::Value> =
        (0..21).map(|i| (format!("x-{i}"), json!("v"))).collect();
    let cases = [
        (json!({"Connection": "close"}), "connection"),
        (json!({"Transfer-Encoding": "chunked"}), "transfer-encoding"),
        (json!({"Proxy-Authorization": "x"}), "proxy-authorization"),
        (json!({"Fullup-Signature": "v1,forged"}), "fullup-signature"),
        (json!({"webhook-id": "x"}), "webhook-id"),
        (json!({"Content-Type": "text/plain"}), "content-type"),
        (json!({"Host": "evil.example"}), "host"),
        (json!({"bad name": "x"}), "bad name"),
        (json!({"x-injected": "a\r\nx-evil: 1"}), "x-injected"),
        (json!({"x-long": long}), "x-long"),
        (serde_json::Value::Object(many), "at most 20"),
    ];
    for (headers, named) in cases {
        let got = create(headers.clone()).await;
        let message = crate::api::assert_error(&got, 422, "invalid_headers");
        assert!(message.contains(named), "{headers}: {message}");
    }
    let (status, _) = create(json!({"X-Fine": "ok"})).await;
    assert_eq!(status, 201);

    // The same rules on update, and a refused update changes nothing.
    let (_, list) = server
        .call(Method::GET, &format!("/v1/sites/{site}/webhooks"), None)
        .await;
    let id = list["data"][0]["id"].as_str().expect("id");
    let path = format!("/v1/sites/{site}/webhooks/{id}");
    let got = server
        .call(
            Method::PATCH,
            &path,
            Some(json!({"headers": {"Upgrade": "h2c"}})),
        )
        .await;
    let message = crate::api::assert_error(&got, 422, "invalid_headers");
    assert!(message.contains("upgrade"), "{message}");
    let (_, read) = server.call(Method::GET, &path, None).await;
    assert_eq!(read["headers"], json!({"x-fine": "ok"}));
    server.stop().await;
}

store_test!(custom_headers_are_sealed_at_rest_and_never_read_in_clear);
/// Custom headers often carry a receiver's credentials: the database holds them sealed,
/// bound to their webhook. Headers a database writer plants in clear (to add one to
/// every request) are never used: the webhook reads as unreadable and nothing is sent.
async fn custom_headers_are_sealed_at_rest_and_never_read_in_clear(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (webhook, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/", &["*"])
        .await;
    let path = format!("/v1/sites/{site}/webhooks/{webhook}");
    let (status, body) = server
        .call(
            Method::PATCH,
            &path,
            Some(json!({"headers": {"Authorization": "Bearer gateway-token-2"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stored = server
        .query_text(&format!(
            "SELECT headers FROM webhooks WHERE id = '{webhook}'"
        ))
        .await;
    assert!(
        stored.starts_with("v2:") && !stored.contains("gateway-token-2"),
        "sealed at rest: {stored}"
    );
    let (status, shown) = server.call(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown["headers"],
        json!({"authorization": "Bearer gateway-token-2"})
    );

    let mut planted = TestReceiver::start().await;
    server
        .execute_sql(&format!(
            "UPDATE webhooks SET headers = '{{\"x-planted\":\"1\"}}' WHERE id = '{webhook}'"
        ))
        .await;
    let event = server.send_event(&site, "a.b", json!({})).await;
    let delivery = server
        .wait_for_delivery(&site, &event, |d| d["attempt_count"].as_u64() >= Some(1))
        .await;
    let attempts = server
        .attempts(&site, delivery["id"].as_str().expect("id"))
        .await;
    assert_eq!(
        attempts[0]["error_kind"], "secret_unreadable",
        "{attempts:?}"
    );
    assert!(planted.try_next(Duration::from_millis(200)).await.is_none());
    let (status, shown) = server.call(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["headers"], json!({}), "{shown}");
    server.stop().await;
}
