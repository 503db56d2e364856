//! Sites and webhooks CRUD: response shapes, what is and is not shown, and the 422s
//! that tell a client which value to fix.

use reqwest::Method;
use serde_json::{Value, json};

use super::assert_error;
use crate::support::{Backend, store_test};

const HOOK_URL: &str = "https://hooks.example.com/fullup";

store_test!(sites_can_be_created_read_listed_renamed_and_deleted);
/// Regression (PostgreSQL): deleting a site while an attempt of its delivery was
/// recorded could deadlock (the cascade locked webhook then delivery, `complete`
/// delivery then webhook) and answer 500.
async fn sites_can_be_created_read_listed_renamed_and_deleted(backend: Backend) {
    let server = backend.start().await;
    let (status, created) = server
        .call(Method::POST, "/v1/sites", Some(json!({"name": "Shop"})))
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("site_"), "{created}");
    assert_eq!(created["name"], "Shop");
    assert!(
        created["created_at"]
            .as_str()
            .expect("created_at")
            .ends_with('Z')
    );
    assert_eq!(created["updated_at"], created["created_at"]);
    let path = format!("/v1/sites/{id}");

    let (status, got) = server.call(Method::GET, &path, None).await;
    assert_eq!((status, &got), (200, &created));
    let other = server.create_site().await;
    let (status, list) = server.call(Method::GET, "/v1/sites", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        super::ids(list["data"].as_array().expect("data")),
        [other.clone(), id.clone()]
    );
    assert!(list["next_cursor"].is_null());

    let (status, renamed) = server
        .call(Method::PATCH, &path, Some(json!({"name": "Shop EU"})))
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["name"], "Shop EU");
    assert_eq!(renamed["created_at"], created["created_at"]);
    assert_eq!(
        server.call(Method::GET, &path, None).await.1["name"],
        "Shop EU"
    );
    assert_error(
        &server
            .call(Method::PATCH, &path, Some(json!({"name": "  "})))
            .await,
        422,
        "invalid_name",
    );
    assert_error(
        &server
            .call(Method::POST, "/v1/sites", Some(json!({})))
            .await,
        422,
        "invalid_body",
    );

    server
        .create_webhook(&id, "http://127.0.0.1:9/hook", &["*"])
        .await;
    server.send_event(&id, "site.deleted", json!({})).await;
    let (status, body) = server.call(Method::DELETE, &path, None).await;
    assert_eq!(
        (status, body),
        (204, Value::Null),
        "a site with webhooks, events and deliveries"
    );
    assert_error(
        &server.call(Method::GET, &path, None).await,
        404,
        "not_found",
    );
    assert_error(
        &server.call(Method::DELETE, &path, None).await,
        404,
        "not_found",
    );
    let (_, list) = server.call(Method::GET, "/v1/sites", None).await;
    assert_eq!(super::ids(list["data"].as_array().expect("data")), [other]);
    server.stop().await;
}

store_test!(a_webhook_shows_its_secret_on_create_and_through_the_secret_route_only);
async fn a_webhook_shows_its_secret_on_create_and_through_the_secret_route_only(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let base = format!("/v1/sites/{site}/webhooks");
    let body =
        json!({"url": HOOK_URL, "event_types": ["form.*", "order.paid"], "description": "CRM"});
    let (status, created) = server.call(Method::POST, &base, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("wh_"), "{created}");
    assert_eq!(created["site_id"], site.as_str());
    assert_eq!(created["url"], HOOK_URL);
    assert_eq!(created["event_types"], json!(["form.*", "order.paid"]));
    assert_eq!(created["description"], "CRM");
    assert_eq!(created["enabled"], true);
    let secret = created["secret"]
        .as_str()
        .expect("secret on create")
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");

    let (status, got) = server
        .call(Method::GET, &format!("{base}/{id}"), None)
        .await;
    assert_eq!(status, 200, "{got}");
    assert!(got.get("secret").is_none(), "GET shows the secret: {got}");
    let mut expected = created.clone();
    expected.as_object_mut().expect("object").remove("secret");
    assert_eq!(got, expected);
    let (_, list) = server.call(Method::GET, &base, None).await;
    assert_eq!(
        list["data"],
        json!([expected]),
        "the list is the same without the secret"
    );

    let (status, shown) = server
        .call(Method::GET, &format!("{base}/{id}/secret"), None)
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown, json!({"secret": secret}));
    server.stop().await;
}

store_test!(a_webhook_can_be_patched_field_by_field_and_deleted);
async fn a_webhook_can_be_patched_field_by_field_and_deleted(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (id, _) = server.create_webhook(&site, HOOK_URL, &["*"]).await;
    let path = format!("/v1/sites/{site}/webhooks/{id}");

    let (status, got) = server
        .call(
            Method::PATCH,
            &path,
            Some(json!({"url": "http://127.0.0.1:9/new"})),
        )
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["url"], "http://127.0.0.1:9/new");
    assert_eq!(got["event_types"], json!(["*"]), "untouched fields stay");
    let (_, got) = server
        .call(
            Method::PATCH,
            &path,
            Some(json!({"event_types": ["a.b", "c.*"]})),
        )
        .await;
    assert_eq!(got["event_types"], json!(["a.b", "c.*"]));
    let (_, got) = server
        .call(
            Method::PATCH,
            &path,
            Some(json!({"description": "new text"})),
        )
        .await;
    assert_eq!(got["description"], "new text");
    let (_, got) = server
        .call(Method::PATCH, &path, Some(json!({"enabled": false})))
        .await;
    assert_eq!(got["enabled"], false);
    assert!(got["disabled_reason"].is_string(), "{got}");
    let (_, got) = server
        .call(Method::PATCH, &path, Some(json!({"enabled": true})))
        .await;
    assert_eq!(got["enabled"], true);
    assert!(got["disabled_reason"].is_null(), "{got}");

    let (status, stored) = server.call(Method::GET, &path, None).await;
    assert_eq!(
        (status, &stored),
        (200, &got),
        "PATCH answers what is stored"
    );
    assert_eq!(stored["url"], "http://127.0.0.1:9/new");
    assert_eq!(stored["description"], "new text");
    assert!(got.get("secret").is_none(), "PATCH shows the secret: {got}");
    assert_error(
        &server
            .call(Method::PATCH, &path, Some(json!({"url": "ftp://x.y/"})))
            .await,
        422,
        "invalid_url",
    );
    assert_error(
        &server
            .call(Method::PATCH, &path, Some(json!({"event_types": []})))
            .await,
        422,
        "invalid_event_types",
    );

    let (status, _) = server.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_error(
        &server.call(Method::GET, &path, None).await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .call(Method::GET, &format!("{path}/secret"), None)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server.call(Method::DELETE, &path, None).await,
        404,
        "not_found",
    );
    server.stop().await;
}

store_test!(invalid_webhook_values_get_422_naming_what_to_fix);
async fn invalid_webhook_values_get_422_naming_what_to_fix(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let path = format!("/v1/sites/{site}/webhooks");
    let create = |fields: Value| {
        let mut body = json!({"url": HOOK_URL, "event_types": ["*"], "description": "x"});
        for (k, v) in fields.as_object().expect("object") {
            body[k] = v.clone();
        }
        server.call(Method::POST, &path, Some(body))
    };

    for url in [
        "ftp://example.com/hook",
        "not a url",
        "https://user:pass@example.com/hook",
        "https://user@example.com/",
    ] {
        let message = assert_error(&create(json!({"url": url})).await, 422, "invalid_url");
        assert!(message.contains("url"), "{url}: {message}");
    }
    let message = assert_error(
        &create(json!({"event_types": []})).await,
        422,
        "invalid_event_types",
    );
    assert!(message.contains("[\"*\"]"), "{message}");
    for filter in ["bad filter!", "form.**", "", "a..b"] {
        let got = create(json!({"event_types": ["ok.type", filter]})).await;
        assert_error(&got, 422, "invalid_event_types");
    }
    let message = assert_error(
        &create(json!({"secret": "short-secret"})).await,
        422,
        "invalid_secret",
    );
    assert!(message.contains("16"), "{message}");
    // Nine characters in eighteen UTF-8 bytes: the minimum counts characters.
    assert_error(
        &create(json!({"secret": "ééééééééé"})).await,
        422,
        "invalid_secret",
    );
    assert_error(
        &create(json!({"secret": " padded-secret-0123456789"})).await,
        422,
        "invalid_secret",
    );
    // Issue 18: `whsec_AAAAAAAAAA` (16 characters, 7 zero bytes) passed, and a `whsec_`
    // secret that is not base64 was silently keyed with its UTF-8 bytes.
    for (secret, says) in [
        ("whsec_AAAAAAAAAA", "7 byte(s), all the same"),
        ("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRY=", "23 byte(s)"),
        (
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "all the same",
        ),
        ("whsec_this is not base64 at all, not at all", "not base64"),
    ] {
        let message = assert_error(
            &create(json!({"secret": secret})).await,
            422,
            "invalid_secret",
        );
        assert!(
            message.contains(says) && message.contains("24"),
            "{secret}: {message}"
        );
    }
    assert_error(&create(json!({"url": 42})).await, 422, "invalid_body");
    assert_error(
        &create(json!({"colour": "blue"})).await,
        422,
        "invalid_body",
    );

    let (_, list) = server.call(Method::GET, &path, None).await;
    assert_eq!(list["data"], json!([]), "no refused webhook was stored");
    server.stop().await;
}

store_test!(a_chosen_secret_is_accepted_and_returned);
async fn a_chosen_secret_is_accepted_and_returned(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    // 24 bytes in the whsec_ form: the fewest accepted.
    let chosen = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
    let body = json!({"url": HOOK_URL, "event_types": ["*"], "description": "", "secret": chosen, "enabled": false});
    let (status, created) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks"),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["secret"], chosen);
    assert_eq!(created["enabled"], false);
    let id = created["id"].as_str().expect("id");
    let (_, shown) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{id}/secret"),
            None,
        )
        .await;
    assert_eq!(shown["secret"], chosen);
    server.stop().await;
}

store_test!(a_test_pings_only_that_webhook);
async fn a_test_pings_only_that_webhook(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (tested, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/a", &["order.*"])
        .await;
    server
        .create_webhook(&site, "http://127.0.0.1:9/b", &["*"])
        .await;

    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks/{tested}/test"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let event = body["event_id"].as_str().expect("event_id");
    let (_, stored) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/events/{event}"),
            None,
        )
        .await;
    assert_eq!(stored["type"], "ping");
    assert_eq!(stored["payload"]["data"], json!({"webhook_id": tested}));
    let deliveries = server.deliveries(&site, &format!("event_id={event}")).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(
        deliveries[0]["webhook_id"],
        tested.as_str(),
        "despite its order.* filter"
    );
    server.stop().await;
}
