//! One rule for every status (`docs/api.md`, "Errors"), pinned where issue 14 found it
//! broken: a cursor no page returned, an empty `Idempotency-Key`, a body in another
//! media type, a 413 that did not state the limit, `rotate-secret` with no body, event
//! data that is not an object, and an event list that carried whole payloads.

use reqwest::Method;
use serde_json::json;

use super::{assert_error, bare, raw};
use crate::support::{Backend, TestServer, store_test};

store_test!(a_cursor_no_page_returned_is_400_invalid_cursor_on_every_list);
async fn a_cursor_no_page_returned_is_400_invalid_cursor_on_every_list(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (webhook, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/hook", &["*"])
        .await;
    let event = server.send_event(&site, "cursor.test", json!({})).await;
    let delivery = server.deliveries(&site, &format!("event_id={event}")).await[0]["id"]
        .as_str()
        .expect("delivery id")
        .to_owned();
    let lists = [
        "/v1/sites".to_owned(),
        format!("/v1/sites/{site}/api-keys"),
        format!("/v1/sites/{site}/webhooks"),
        format!("/v1/sites/{site}/events"),
        format!("/v1/sites/{site}/deliveries"),
        format!("/v1/sites/{site}/deliveries/{delivery}/attempts"),
    ];
    for list in &lists {
        // Garbage, and an id of another kind (a webhook id pages no list but webhooks).
        for cursor in ["garbage", webhook.as_str()] {
            if list.ends_with("/webhooks") && cursor == webhook {
                continue;
            }
            let got = server
                .call(Method::GET, &format!("{list}?cursor={cursor}"), None)
                .await;
            let message = assert_error(&got, 400, "invalid_cursor");
            assert!(message.contains("next_cursor"), "{list}: {message}");
        }
    }
    // A cursor of the list's own kind is still a page (here: the one after the event).
    let (status, page) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/events?cursor={event}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn an_empty_idempotency_key_is_400_before_the_body_is_judged() {
    let server = TestServer::start().await;
    let site = server.create_site().await;
    let path = format!("/v1/sites/{site}/events");
    for key in ["", "   "] {
        for body in [r#"{"type":"a","data":{}}"#, r#"{"type":"","data":{}}"#] {
            let got = raw(
                &server,
                Method::POST,
                &path,
                &[("idempotency-key", key)],
                body,
            )
            .await;
            let message = assert_error(&got, 400, "invalid_request");
            assert!(message.contains("Idempotency-Key"), "{message}");
        }
    }
    let (status, events) = server.call(Method::GET, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(events["data"], json!([]), "nothing was stored");
    server.stop().await;
}

#[tokio::test]
async fn bodies_in_another_media_type_or_compressed_are_415() {
    let server = TestServer::start().await;
    let site = server.create_site().await;
    let event = r#"{"type":"a","data":{}}"#;
    let site_body = r#"{"name":"x"}"#;
    let cases = [
        (format!("/v1/sites/{site}/events"), event),
        ("/v1/sites".to_owned(), site_body),
        (format!("/v1/sites/{site}"), site_body),
    ];
    for (path, body) in &cases {
        let method = if path.ends_with(&site) {
            Method::PATCH
        } else {
            Method::POST
        };
        for headers in [
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ][..],
            &[("content-type", "text/plain")][..],
            &[("content-type", "application/x-www-form-urlencoded")][..],
        ] {
            let got = bare(&server, method.clone(), path, headers, *body).await;
            assert_error(&got, 415, "unsupported_media_type");
        }
        // JSON spelled with parameters or as a +json type, or no type at all, is read.
        for headers in [
            &[("content-type", "application/json; charset=utf-8")][..],
            &[("content-type", "application/vnd.fullup+json")][..],
            &[("content-encoding", "identity")][..],
            &[][..],
        ] {
            let (status, answer) = bare(&server, method.clone(), path, headers, *body).await;
            assert!(
                (200..300).contains(&status),
                "{method} {path} {headers:?}: {status} {answer}"
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_413_states_the_limit_in_bytes() {
    let server = TestServer::start_with(|c| c.max_event_bytes = 10_000).await;
    let site = server.create_site().await;
    let big = json!({"type": "a", "data": "x".repeat(20_000)}).to_string();
    let got = raw(
        &server,
        Method::POST,
        &format!("/v1/sites/{site}/events"),
        &[],
        big,
    )
    .await;
    let message = assert_error(&got, 413, "payload_too_large");
    assert!(message.contains("10000 bytes"), "{message}");
    let big_site = json!({"name": "x".repeat(70 * 1024)}).to_string();
    let got = raw(&server, Method::POST, "/v1/sites", &[], big_site).await;
    let message = assert_error(&got, 413, "payload_too_large");
    assert!(message.contains("65536 bytes"), "{message}");
    server.stop().await;
}

store_test!(rotate_secret_with_no_body_takes_every_default);
async fn rotate_secret_with_no_body_takes_every_default(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (webhook, old) = server
        .create_webhook(&site, "http://127.0.0.1:9/hook", &["*"])
        .await;
    let path = format!("/v1/sites/{site}/webhooks/{webhook}/rotate-secret");
    let (status, rotated) = bare(&server, Method::POST, &path, &[], "").await;
    assert_eq!(status, 200, "{rotated}");
    let secret = rotated["secret"].as_str().expect("secret");
    assert!(secret.starts_with("whsec_"), "{rotated}");
    assert_ne!(secret, old.expose());
    let (status, again) = raw(&server, Method::POST, &path, &[], "{}").await;
    assert_eq!(status, 200, "{again}");
    // An empty body with a JSON content type is still not JSON for other routes.
    let got = raw(&server, Method::POST, "/v1/sites", &[], "").await;
    assert_error(&got, 400, "invalid_request");
    server.stop().await;
}

store_test!(event_data_may_be_any_json_value_and_the_list_omits_it);
async fn event_data_may_be_any_json_value_and_the_list_omits_it(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let values = [
        json!([1, 2]),
        json!("text"),
        json!(null),
        json!(7),
        json!(false),
    ];
    for data in &values {
        let id = server.send_event(&site, "any.value", data.clone()).await;
        let (status, event) = server
            .call(Method::GET, &format!("/v1/sites/{site}/events/{id}"), None)
            .await;
        assert_eq!(status, 200, "{event}");
        assert_eq!(event["payload"]["data"], *data, "{event}");
    }
    let (status, list) = server
        .call(Method::GET, &format!("/v1/sites/{site}/events"), None)
        .await;
    assert_eq!(status, 200, "{list}");
    let items = list["data"].as_array().expect("data");
    assert_eq!(items.len(), values.len());
    for item in items {
        let mut keys: Vec<&str> = item
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "created_at",
                "id",
                "idempotency_key",
                "payload_bytes",
                "type"
            ],
            "{item}"
        );
        assert!(item["payload_bytes"].as_u64().is_some_and(|n| n > 0));
    }
    server.stop().await;
}

store_test!(control_characters_in_names_and_descriptions_are_422_not_a_store_error);
/// Found by schemathesis: PostgreSQL's text cannot hold NUL, so a description with one
/// was a 500 there while SQLite stored it.
async fn control_characters_in_names_and_descriptions_are_422_not_a_store_error(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (webhook, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/hook", &["*"])
        .await;
    let hook = format!("/v1/sites/{site}/webhooks/{webhook}");
    for name in ["a\u{0}b", "line\nbreak", "bell\u{7}"] {
        for (method, path) in [
            (Method::POST, "/v1/sites".to_owned()),
            (Method::PATCH, format!("/v1/sites/{site}")),
            (Method::POST, format!("/v1/sites/{site}/api-keys")),
        ] {
            let got = server
                .call(method, &path, Some(json!({"name": name})))
                .await;
            assert_error(&got, 422, "invalid_name");
        }
    }
    let got = server
        .call(
            Method::PATCH,
            &hook,
            Some(json!({"description": "a\u{0}b"})),
        )
        .await;
    assert_error(&got, 422, "invalid_description");
    let got = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks"),
            Some(json!({"url": "http://127.0.0.1:9/x", "description": "\u{1b}[31m"})),
        )
        .await;
    assert_error(&got, 422, "invalid_description");
    let multi_line = "first line\n\tsecond line\r\n";
    let (status, body) = server
        .call(
            Method::PATCH,
            &hook,
            Some(json!({"description": multi_line})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["description"], multi_line);
    server.stop().await;
}
