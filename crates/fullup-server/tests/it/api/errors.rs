//! One error shape everywhere, `{"error":{"code","message"}}`, also where no handler
//! runs: unknown routes, unsupported methods, ids that cannot exist.

use reqwest::Method;
use serde_json::json;

use super::{assert_error, raw};
use crate::support::{Backend, TestServer, store_test};

#[tokio::test]
async fn unknown_routes_get_404_in_the_error_shape() {
    let server = TestServer::start().await;
    for path in ["/v1/nope", "/nope", "/v1/sites/x/y/z/w", "/v2/sites"] {
        assert_error(
            &server.call(Method::GET, path, None).await,
            404,
            "not_found",
        );
        assert_error(
            &server.call_as(None, Method::POST, path, None).await,
            404,
            "not_found",
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn unsupported_methods_get_405_in_the_error_shape() {
    let server = TestServer::start().await;
    let site = server.create_site().await;
    for (method, path) in [
        (Method::PUT, "/v1/sites".to_owned()),
        (Method::DELETE, "/v1/sites".to_owned()),
        (Method::POST, format!("/v1/sites/{site}")),
        (Method::PATCH, format!("/v1/sites/{site}/events")),
        (
            Method::GET,
            format!("/v1/sites/{site}/deliveries/dlv_01JDQ3W5Z8K9T2M4N6P8R0S2V4/retry"),
        ),
    ] {
        let message = assert_error(
            &server.call(method.clone(), &path, None).await,
            405,
            "method_not_allowed",
        );
        assert!(
            message.contains(method.as_str()),
            "{method} {path}: {message}"
        );
    }
    let resp = reqwest::Client::new()
        .put(format!("{}/v1/sites", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 405);
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow}"
    );
    server.stop().await;
}

store_test!(ids_that_cannot_exist_and_absent_ids_get_404);
async fn ids_that_cannot_exist_and_absent_ids_get_404(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let absent = "01JDQ3W5Z8K9T2M4N6P8R0S2V4";
    for path in [
        "/v1/sites/not-a-site".to_owned(),
        // Not UTF-8 once percent-decoded: axum's own rejection was plain text.
        "/v1/sites/%FF".to_owned(),
        format!("/v1/sites/{site}/webhooks/%C3%28"),
        format!("/v1/sites/site_{absent}"),
        format!("/v1/sites/wh_{absent}"),
        format!("/v1/sites/{site}/webhooks/site_{absent}"),
        format!("/v1/sites/{site}/webhooks/wh_{absent}"),
        format!("/v1/sites/{site}/events/evt_{absent}"),
        format!("/v1/sites/{site}/events/evt_short"),
        format!("/v1/sites/{site}/deliveries/dlv_{absent}"),
        format!("/v1/sites/{site}/deliveries/dlv_{absent}/attempts"),
    ] {
        assert_error(
            &server.call(Method::GET, &path, None).await,
            404,
            "not_found",
        );
    }
    let got = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/deliveries/dlv_{absent}/retry"),
            None,
        )
        .await;
    assert_error(&got, 404, "not_found");
    let got = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks/wh_{absent}/test"),
            None,
        )
        .await;
    assert_error(&got, 404, "not_found");
    server.stop().await;
}

store_test!(client_mistakes_on_every_kind_of_route_share_the_shape);
async fn client_mistakes_on_every_kind_of_route_share_the_shape(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (webhook, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/hook", &["*"])
        .await;
    let hook = format!("/v1/sites/{site}/webhooks/{webhook}");

    assert_error(
        &raw(&server, Method::POST, "/v1/sites", &[], "{").await,
        400,
        "invalid_request",
    );
    assert_error(
        &raw(&server, Method::PATCH, &hook, &[], "[1,").await,
        400,
        "invalid_request",
    );
    assert_error(
        &server
            .call(Method::PATCH, &hook, Some(json!({"enabled": "yes"})))
            .await,
        422,
        "invalid_body",
    );
    // A body field is 422 whether it is missing, mistyped or refused (issue 14: a bad
    // `since` was 400 and a missing one 422).
    let recover = format!("{hook}/recover");
    assert_error(
        &server
            .call(Method::POST, &recover, Some(json!({"since": "last week"})))
            .await,
        422,
        "invalid_time",
    );
    assert_error(
        &server.call(Method::POST, &recover, Some(json!({}))).await,
        422,
        "invalid_body",
    );
    assert_error(
        &server
            .call(Method::POST, &recover, Some(json!({"since": 7})))
            .await,
        422,
        "invalid_body",
    );
    let reversed = json!({"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"});
    assert_error(
        &server.call(Method::POST, &recover, Some(reversed)).await,
        422,
        "invalid_time_range",
    );
    // A query parameter outside its format is 400: the request line does not parse.
    let events = format!("/v1/sites/{site}/events?since=soon");
    assert_error(
        &server.call(Method::GET, &events, None).await,
        400,
        "invalid_request",
    );

    server
        .call(Method::PATCH, &hook, Some(json!({"enabled": false})))
        .await;
    let message = assert_error(
        &server
            .call(Method::POST, &format!("{hook}/test"), None)
            .await,
        409,
        "webhook_disabled",
    );
    assert!(message.contains("enable"), "{message}");
    server.stop().await;
}
