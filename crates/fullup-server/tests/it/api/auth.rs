//! Who may call what: no or wrong token → 401, a site key on admin-only routes → 403,
//! on another site's paths → 404 (as if absent), a revoked key → 401. Scopes are in
//! `scopes.rs`.

use reqwest::Method;
use serde_json::{Value, json};

use super::assert_error;
use crate::support::server::ADMIN_TOKEN;
use crate::support::{Backend, TestServer, store_test};

/// Creates a `manage` API key for `site` as admin; returns (key id, token).
async fn create_key(server: &TestServer, site: &str) -> (String, String) {
    create_scoped_key(server, site, Some(&["manage"])).await
}

/// Creates an API key for `site` as admin with `scopes` (the default when None);
/// returns (key id, token).
pub(crate) async fn create_scoped_key(
    server: &TestServer,
    site: &str,
    scopes: Option<&[&str]>,
) -> (String, String) {
    let mut request = json!({"name": "backend"});
    if let Some(scopes) = scopes {
        request["scopes"] = json!(scopes);
    }
    let got = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/api-keys"),
            Some(request),
        )
        .await;
    assert_eq!(got.0, 201, "{}", got.1);
    assert_eq!(got.1["site_id"], site);
    assert_eq!(got.1["name"], "backend");
    let expected = scopes.map_or_else(|| json!(["ingest"]), |s| json!(s));
    assert_eq!(got.1["scopes"], expected, "{}", got.1);
    assert!(
        got.1["id"].as_str().expect("key id").starts_with("key_"),
        "{}",
        got.1
    );
    let token = got.1["token"]
        .as_str()
        .expect("token in the creation response");
    assert!(token.starts_with("fk_"), "{token}");
    (
        got.1["id"].as_str().expect("id").to_owned(),
        token.to_owned(),
    )
}

store_test!(missing_or_wrong_tokens_get_401_and_the_admin_token_works);
async fn missing_or_wrong_tokens_get_401_and_the_admin_token_works(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let path = format!("/v1/sites/{site}");

    assert_error(
        &server.call_as(None, Method::GET, &path, None).await,
        401,
        "unauthorized",
    );
    for wrong in [
        "wrong",
        "fk_not-a-real-key",
        "test-admin-token-0123456789abcde",
    ] {
        let got = server.call_as(Some(wrong), Method::GET, &path, None).await;
        assert_error(&got, 401, "unauthorized");
    }
    let basic = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .basic_auth("admin", Some(ADMIN_TOKEN))
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status(), 401, "only bearer tokens are accepted");

    let (status, body) = server.call(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], site.as_str());
    let lowercase = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .header("authorization", format!("bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        lowercase.status(),
        200,
        "the auth scheme is case-insensitive"
    );
    server.stop().await;
}

store_test!(api_key_tokens_are_shown_once_and_never_listed);
async fn api_key_tokens_are_shown_once_and_never_listed(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (first, _) = create_key(&server, &site).await;
    let (second, _) = create_key(&server, &site).await;

    let (status, body) = server
        .call(Method::GET, &format!("/v1/sites/{site}/api-keys"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let keys = body["data"].as_array().expect("data");
    assert_eq!(super::ids(keys), [second, first], "newest first");
    for key in keys {
        assert!(
            key.get("token").is_none(),
            "a listed key shows its token: {key}"
        );
        assert!(
            !key.to_string().contains("fk_"),
            "a listed key leaks a token: {key}"
        );
    }
    server.stop().await;
}

store_test!(a_site_key_works_on_its_own_site);
async fn a_site_key_works_on_its_own_site(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (_, token) = create_key(&server, &site).await;
    let key = Some(token.as_str());

    let (status, body) = server
        .call_as(key, Method::GET, &format!("/v1/sites/{site}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let hook =
        json!({"url": "http://127.0.0.1:9/hook", "event_types": ["*"], "description": "by key"});
    let (status, body) = server
        .call_as(
            key,
            Method::POST,
            &format!("/v1/sites/{site}/webhooks"),
            Some(hook),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let webhook = body["id"].as_str().expect("webhook id").to_owned();
    let event = json!({"type": "form.submitted", "data": {"a": 1}});
    let (status, body) = server
        .call_as(
            key,
            Method::POST,
            &format!("/v1/sites/{site}/events"),
            Some(event),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let event = body["id"].as_str().expect("event id").to_owned();
    let (status, body) = server
        .call_as(
            key,
            Method::GET,
            &format!("/v1/sites/{site}/deliveries?event_id={event}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deliveries = body["data"].as_array().expect("data");
    assert_eq!(deliveries.len(), 1, "{body}");
    assert_eq!(deliveries[0]["webhook_id"], webhook.as_str());
    server.stop().await;
}

store_test!(a_site_key_on_another_sites_paths_gets_404);
async fn a_site_key_on_another_sites_paths_gets_404(backend: Backend) {
    let server = backend.start().await;
    let own = server.create_site().await;
    let other = server.create_site().await;
    let (webhook, _) = server
        .create_webhook(&other, "http://127.0.0.1:9/hook", &["*"])
        .await;
    let (_, token) = create_key(&server, &own).await;
    let key = Some(token.as_str());

    let event = json!({"type": "form.submitted", "data": {}});
    let hook = json!({"url": "http://127.0.0.1:9/x", "event_types": ["*"]});
    let attempts: [(Method, String, Option<Value>); 7] = [
        (Method::GET, format!("/v1/sites/{other}"), None),
        (
            Method::PATCH,
            format!("/v1/sites/{other}"),
            Some(json!({"name": "mine now"})),
        ),
        (Method::GET, format!("/v1/sites/{other}/webhooks"), None),
        (
            Method::POST,
            format!("/v1/sites/{other}/webhooks"),
            Some(hook),
        ),
        (
            Method::GET,
            format!("/v1/sites/{other}/webhooks/{webhook}/secret"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/sites/{other}/events"),
            Some(event),
        ),
        (Method::GET, format!("/v1/sites/{other}/deliveries"), None),
    ];
    for (method, path, body) in attempts {
        let got = server.call_as(key, method.clone(), &path, body).await;
        let message = assert_error(&got, 404, "not_found");
        assert!(message.contains(&other), "{method} {path}: {message}");
    }
    let (_, site) = server
        .call(Method::GET, &format!("/v1/sites/{other}"), None)
        .await;
    assert_eq!(site["name"], "test site", "the other site is unchanged");
    server.stop().await;
}

store_test!(a_site_key_on_admin_only_routes_gets_403);
async fn a_site_key_on_admin_only_routes_gets_403(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (_, token) = create_key(&server, &site).await;
    let key = Some(token.as_str());

    let attempts: [(Method, String, Option<Value>); 4] = [
        (
            Method::POST,
            "/v1/sites".to_owned(),
            Some(json!({"name": "new"})),
        ),
        (Method::GET, "/v1/sites".to_owned(), None),
        (
            Method::POST,
            format!("/v1/sites/{site}/api-keys"),
            Some(json!({"name": "more"})),
        ),
        (Method::DELETE, format!("/v1/sites/{site}"), None),
    ];
    for (method, path, body) in attempts {
        let got = server.call_as(key, method, &path, body).await;
        assert_error(&got, 403, "forbidden");
    }
    let (status, _) = server
        .call(Method::GET, &format!("/v1/sites/{site}"), None)
        .await;
    assert_eq!(status, 200, "the site survived the key's delete attempt");
    server.stop().await;
}

store_test!(a_deleted_key_gets_401);
async fn a_deleted_key_gets_401(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (key_id, token) = create_key(&server, &site).await;
    let path = format!("/v1/sites/{site}/webhooks");
    let (status, _) = server.call_as(Some(&token), Method::GET, &path, None).await;
    assert_eq!(status, 200);

    let (status, body) = server
        .call(
            Method::DELETE,
            &format!("/v1/sites/{site}/api-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert_error(
        &server.call_as(Some(&token), Method::GET, &path, None).await,
        401,
        "unauthorized",
    );
    let again = server
        .call(
            Method::DELETE,
            &format!("/v1/sites/{site}/api-keys/{key_id}"),
            None,
        )
        .await;
    assert_error(&again, 404, "not_found");
    server.stop().await;
}

store_test!(a_key_of_a_deleted_site_gets_401);
async fn a_key_of_a_deleted_site_gets_401(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (_, token) = create_key(&server, &site).await;
    let path = format!("/v1/sites/{site}/webhooks");
    let (status, _) = server.call_as(Some(&token), Method::GET, &path, None).await;
    assert_eq!(status, 200, "the key works (and is now remembered)");

    let (status, body) = server
        .call(Method::DELETE, &format!("/v1/sites/{site}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    assert_error(
        &server.call_as(Some(&token), Method::GET, &path, None).await,
        401,
        "unauthorized",
    );
    server.stop().await;
}
