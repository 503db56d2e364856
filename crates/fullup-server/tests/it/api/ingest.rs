//! Ingest: what `POST …/events` accepts, what it refuses and with which status, and
//! `Idempotency-Key`.

use reqwest::Method;
use serde_json::{Value, json};

use super::{assert_error, raw};
use crate::support::{Backend, TestServer, store_test};

/// The number of events and deliveries the site holds.
async fn counts(server: &TestServer, site: &str) -> (usize, usize) {
    let (status, events) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/events?limit=250"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{events}");
    let deliveries = server.deliveries(site, "limit=250").await;
    (
        events["data"].as_array().expect("data").len(),
        deliveries.len(),
    )
}

store_test!(an_accepted_event_is_readable_with_its_canonical_envelope);
async fn an_accepted_event_is_readable_with_its_canonical_envelope(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let body = r#"{"type": "form.submitted", "data": {"b": 1.0, "2": "x", "a": [1e3, "\u00e9\/"], "1": null}}"#;
    let (status, created) = raw(
        &server,
        Method::POST,
        &format!("/v1/sites/{site}/events"),
        &[],
        body,
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let object = created.as_object().expect("object");
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["id"],
        "202 answers only the id"
    );
    let id = created["id"].as_str().expect("id");
    assert!(id.starts_with("evt_"), "{created}");

    let (status, event) = server
        .call(Method::GET, &format!("/v1/sites/{site}/events/{id}"), None)
        .await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["id"], id);
    assert_eq!(event["type"], "form.submitted");
    assert!(event["idempotency_key"].is_null());
    let created_at = event["created_at"].as_str().expect("created_at");
    let expected = format!(
        r#"{{"id":"{id}","type":"form.submitted","created_at":"{created_at}","data":{{"1":null,"2":"x","b":1,"a":[1000,"é/"]}}}}"#
    );
    let expected: Value = serde_json::from_str(&expected).expect("expected envelope");
    assert_eq!(event["payload"], expected);
    let (_, list) = server
        .call(Method::GET, &format!("/v1/sites/{site}/events"), None)
        .await;
    let payload_bytes = serde_json::to_string(&event["payload"])
        .expect("payload")
        .len();
    let mut summary = event.clone();
    let summary_fields = summary.as_object_mut().expect("object");
    summary_fields.remove("payload");
    summary_fields.insert("payload_bytes".to_owned(), json!(payload_bytes));
    assert_eq!(
        list["data"],
        json!([summary]),
        "the list shows the same event, summed up without its payload"
    );
    server.stop().await;
}

store_test!(the_payload_keeps_the_exact_canonical_bytes);
async fn the_payload_keeps_the_exact_canonical_bytes(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let body = r#"{"type":"a.b","data":{"z":1e21,"10":true,"y":-0,"x":"\u2028\t"}}"#;
    let (status, created) = raw(
        &server,
        Method::POST,
        &format!("/v1/sites/{site}/events"),
        &[],
        body,
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().expect("id");
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/sites/{site}/events/{id}", server.base))
        .bearer_auth(crate::support::server::ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    let text = resp.text().await.expect("text");
    assert!(
        text.contains("\"data\":{\"10\":true,\"z\":1e+21,\"y\":0,\"x\":\"\u{2028}\\t\"}}"),
        "payload is not the JavaScript-canonical text: {text}"
    );
    server.stop().await;
}

store_test!(values_javascript_would_change_get_422_naming_the_field);
async fn values_javascript_would_change_get_422_naming_the_field(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let path = format!("/v1/sites/{site}/events");
    let send = |body: &'static str| raw(&server, Method::POST, &path, &[], body);

    let got = send(r#"{"type":"order.paid","data":{"order":{"amount":9007199254740993}}}"#).await;
    let message = assert_error(&got, 422, "invalid_data");
    assert!(message.contains("data.order.amount"), "{message}");
    assert!(message.contains("string"), "suggests a string: {message}");
    let got = send(r#"{"type":"order.paid","data":{"ids":[1, -9007199254740992]}}"#).await;
    assert!(assert_error(&got, 422, "invalid_data").contains("data.ids[1]"));
    let got = send(r#"{"type":"a","data":{"name":"\ud800"}}"#).await;
    assert!(assert_error(&got, 422, "invalid_data").contains("data.name"));
    assert_eq!(
        send(r#"{"type":"a","data":{"n":9007199254740991}}"#)
            .await
            .0,
        202,
        "the largest safe integer is fine"
    );
    assert_eq!(
        counts(&server, &site).await,
        (1, 0),
        "refused events are not stored"
    );
    server.stop().await;
}

store_test!(malformed_requests_get_400_or_422);
async fn malformed_requests_get_400_or_422(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let path = format!("/v1/sites/{site}/events");
    let send = |body: &'static str| raw(&server, Method::POST, &path, &[], body);

    assert_error(
        &send(r#"{"type":"a","data":{"#).await,
        400,
        "invalid_request",
    );
    assert_error(&send("not json").await, 400, "invalid_request");
    assert_error(&send("").await, 400, "invalid_request");
    let message = assert_error(&send(r#"{"type":"a"}"#).await, 422, "invalid_body");
    assert!(message.contains("data"), "{message}");
    assert_error(&send(r#"{"data":{}}"#).await, 422, "invalid_body");
    assert_error(
        &send(r#"{"type":"a","data":{},"extra":1}"#).await,
        422,
        "invalid_body",
    );
    assert_error(&send(r#"{"type":7,"data":{}}"#).await, 422, "invalid_body");
    for bad in [
        r#"{"type":"","data":{}}"#,
        r#"{"type":"Bad Type!","data":{}}"#,
        r#"{"type":"a..b","data":{}}"#,
    ] {
        assert_error(&send(bad).await, 422, "invalid_event_type");
    }
    let got = raw(
        &server,
        Method::POST,
        &path,
        &[("idempotency-key", "")],
        r#"{"type":"a","data":{}}"#,
    )
    .await;
    assert_error(&got, 400, "invalid_request");
    assert_eq!(counts(&server, &site).await, (0, 0));
    server.stop().await;
}

fn event_body(padding: usize) -> String {
    json!({"type": "big.event", "data": {"pad": "x".repeat(padding)}}).to_string()
}

#[tokio::test]
async fn bodies_over_the_ingest_limit_get_413() {
    let server = TestServer::start().await;
    let site = server.create_site().await;
    let path = format!("/v1/sites/{site}/events");

    let got = raw(&server, Method::POST, &path, &[], event_body(300 * 1024)).await;
    let message = assert_error(&got, 413, "payload_too_large");
    assert!(message.contains("larger"), "{message}");
    let got = raw(
        &server,
        Method::POST,
        &path,
        &[],
        event_body(256 * 1024 + 1),
    )
    .await;
    assert_error(&got, 413, "payload_too_large");
    // Over the 64 KiB management limit but under the ingest limit.
    let got = raw(&server, Method::POST, &path, &[], event_body(200 * 1024)).await;
    assert_eq!(got.0, 202, "{}", got.1);
    let big_site = json!({"name": "x".repeat(70 * 1024)}).to_string();
    assert_error(
        &raw(&server, Method::POST, "/v1/sites", &[], big_site).await,
        413,
        "payload_too_large",
    );
    server.stop().await;
}

#[tokio::test]
async fn the_ingest_limit_follows_max_event_bytes() {
    let server = TestServer::start_with(|config| config.max_event_bytes = 1024).await;
    let site = server.create_site().await;
    let path = format!("/v1/sites/{site}/events");

    assert_error(
        &raw(&server, Method::POST, &path, &[], event_body(1024)).await,
        413,
        "payload_too_large",
    );
    let small = event_body(900);
    assert!(small.len() <= 1024);
    assert_eq!(raw(&server, Method::POST, &path, &[], small).await.0, 202);
    server.stop().await;
}

store_test!(the_same_idempotency_key_and_body_answer_the_same_event_once);
async fn the_same_idempotency_key_and_body_answer_the_same_event_once(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    server
        .create_webhook(&site, "http://127.0.0.1:9/hook", &["*"])
        .await;
    let path = format!("/v1/sites/{site}/events");
    let key = [("Idempotency-Key", "order-1234-paid")];

    let first = raw(
        &server,
        Method::POST,
        &path,
        &key,
        r#"{"type":"order.paid","data":{"a":1,"b":[2]}}"#,
    )
    .await;
    assert_eq!(first.0, 202, "{}", first.1);
    // The same content, written differently: the same request.
    let second = raw(
        &server,
        Method::POST,
        &path,
        &key,
        r#"{ "data": {"a": 1.0, "b": [2]}, "type": "order.paid" }"#,
    )
    .await;
    assert_eq!(second, first, "a retry answers the same id");
    assert_eq!(
        counts(&server, &site).await,
        (1, 1),
        "no second event, no second delivery"
    );
    let (_, event) = server
        .call(
            Method::GET,
            &format!("{path}/{}", first.1["id"].as_str().expect("id")),
            None,
        )
        .await;
    assert_eq!(event["idempotency_key"], "order-1234-paid");

    let other_data = raw(
        &server,
        Method::POST,
        &path,
        &key,
        r#"{"type":"order.paid","data":{"a":2,"b":[2]}}"#,
    )
    .await;
    let message = assert_error(&other_data, 422, "idempotency_key_reused");
    assert!(
        message.contains(first.1["id"].as_str().expect("id")),
        "{message}"
    );
    let other_type = raw(
        &server,
        Method::POST,
        &path,
        &key,
        r#"{"type":"order.refunded","data":{"a":1,"b":[2]}}"#,
    )
    .await;
    assert_error(&other_type, 422, "idempotency_key_reused");
    let new_key = [("Idempotency-Key", "order-1234-refunded")];
    let third = raw(
        &server,
        Method::POST,
        &path,
        &new_key,
        r#"{"type":"order.paid","data":{"a":1,"b":[2]}}"#,
    )
    .await;
    assert_eq!(third.0, 202);
    assert_ne!(third.1["id"], first.1["id"], "another key is another event");
    assert_eq!(counts(&server, &site).await, (2, 2));
    server.stop().await;
}

store_test!(different_sites_may_use_the_same_idempotency_key);
async fn different_sites_may_use_the_same_idempotency_key(backend: Backend) {
    let server = backend.start().await;
    let key = [("Idempotency-Key", "shared-key")];
    let body = r#"{"type":"a.b","data":{}}"#;
    let one = server.create_site().await;
    let two = server.create_site().await;

    let first = raw(
        &server,
        Method::POST,
        &format!("/v1/sites/{one}/events"),
        &key,
        body,
    )
    .await;
    let second = raw(
        &server,
        Method::POST,
        &format!("/v1/sites/{two}/events"),
        &key,
        body,
    )
    .await;
    assert_eq!((first.0, second.0), (202, 202), "{} {}", first.1, second.1);
    assert_ne!(first.1["id"], second.1["id"]);
    assert_eq!(counts(&server, &one).await.0, 1);
    assert_eq!(counts(&server, &two).await.0, 1);
    server.stop().await;
}

store_test!(an_event_fans_out_to_each_enabled_matching_webhook);
async fn an_event_fans_out_to_each_enabled_matching_webhook(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let url = "http://127.0.0.1:9/hook";
    let (all, _) = server.create_webhook(&site, url, &["*"]).await;
    let (forms, _) = server.create_webhook(&site, url, &["form.*"]).await;
    let (paid, _) = server
        .create_webhook(&site, url, &["order.paid", "order.refunded"])
        .await;
    let (off, _) = server.create_webhook(&site, url, &["*"]).await;
    let (status, _) = server
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}/webhooks/{off}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);

    for (event_type, expected) in [
        ("form.submitted", vec![&all, &forms]),
        ("order.paid", vec![&all, &paid]),
        ("formal", vec![&all]),
    ] {
        let event = server.send_event(&site, event_type, json!({})).await;
        let mut got: Vec<String> = server
            .deliveries(&site, &format!("event_id={event}"))
            .await
            .iter()
            .map(|d| d["webhook_id"].as_str().expect("webhook_id").to_owned())
            .collect();
        got.sort();
        let mut expected: Vec<String> = expected.into_iter().cloned().collect();
        expected.sort();
        assert_eq!(got, expected, "{event_type}");
    }
    server.stop().await;
}

store_test!(concurrent_retries_with_one_idempotency_key_store_one_event);
async fn concurrent_retries_with_one_idempotency_key_store_one_event(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    server
        .create_webhook(&site, "http://127.0.0.1:9/hook", &["*"])
        .await;
    let path = format!("/v1/sites/{site}/events");
    let key = [("Idempotency-Key", "burst")];

    let answers = futures::future::join_all((0..10).map(|_| {
        raw(
            &server,
            Method::POST,
            &path,
            &key,
            r#"{"type":"a.b","data":{"n":1}}"#,
        )
    }))
    .await;
    for answer in &answers {
        assert_eq!(answer, &answers[0], "every retry gets the first answer");
    }
    assert_eq!(answers[0].0, 202);
    assert_eq!(counts(&server, &site).await, (1, 1));
    server.stop().await;
}
