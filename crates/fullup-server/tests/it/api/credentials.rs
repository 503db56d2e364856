//! Stored credentials (issue 18, items 3 to 5): token hashes are keyed, so a database
//! writer cannot plant a token; failed authentication is throttled per address; reading
//! a secret leaves an audit line.

use reqwest::Method;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::assert_error;
use super::auth::create_scoped_key;
use crate::console::Browser;
use crate::leaks::Logs;
use crate::secrets::create_api_key;
use crate::support::server::ADMIN_TOKEN;
use crate::support::{Backend, store_test};

store_test!(a_planted_sha256_token_hash_does_not_authenticate);
async fn a_planted_sha256_token_hash_does_not_authenticate(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let issued = create_api_key(&server, &site).await;
    let planted = "fk_planted-by-a-database-writer-0123456789abcdef";
    let insert = format!(
        "INSERT INTO api_keys (id, site_id, name, token_hash, created_at, scopes) \
         VALUES ('key_01JDQ3W5Z8K9T2M4N6P8R0S2V4', '{site}', 'planted', $1, 0, 'manage')"
    );
    let server = server
        .restart_after_sql(&insert, Sha256::digest(planted).to_vec())
        .await;

    let path = format!("/v1/sites/{site}/webhooks");
    let got = server
        .call_as(Some(planted), Method::GET, &path, None)
        .await;
    let message = assert_error(&got, 401, "unauthorized");
    assert!(
        message.contains("no longer authenticates") && message.contains("new one"),
        "a key hashed the old way is told to be re-issued: {message}"
    );
    let (status, body) = server
        .call_as(Some(&issued), Method::GET, &path, None)
        .await;
    assert_eq!(
        status, 200,
        "a key issued before the restart still works: {body}"
    );
    server.stop().await;
}

store_test!(failed_authentication_is_throttled_per_address);
async fn failed_authentication_is_throttled_per_address(backend: Backend) {
    let server = backend.start_with(|c| c.limits.auth.failures = 3).await;
    let site = server.create_site().await;
    let path = format!("/v1/sites/{site}");
    for _ in 0..3 {
        let got = server
            .call_as(Some("fk_guess"), Method::GET, &path, None)
            .await;
        assert_error(&got, 401, "unauthorized");
    }
    let response = reqwest::Client::new()
        .get(format!("{}{path}", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status(),
        429,
        "even the right token is refused while the address is throttled"
    );
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("whole seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "too_many_failures", "{body}");
    let (status, _) = server.call_as(None, Method::GET, "/healthz", None).await;
    assert_eq!(status, 200, "unauthenticated routes are not throttled");
    server.stop().await;
}

store_test!(failed_console_sign_ins_count_against_the_address_too);
async fn failed_console_sign_ins_count_against_the_address_too(backend: Backend) {
    let server = backend.start_with(|c| c.limits.auth.failures = 2).await;
    let mut browser = Browser::new(&server);
    for _ in 0..2 {
        let csrf = browser.get("/console/sign-in").await.csrf();
        let wrong = browser
            .post(
                "/console/sign-in",
                &[("csrf", &csrf), ("token", "not-the-admin-token")],
            )
            .await;
        assert_eq!(wrong.status, 401, "{}", wrong.body);
    }
    let csrf = browser.get("/console/sign-in").await.csrf();
    let right = browser
        .post(
            "/console/sign-in",
            &[("csrf", &csrf), ("token", ADMIN_TOKEN)],
        )
        .await;
    assert_eq!(
        right.status, 429,
        "throttled, whatever the token: {}",
        right.body
    );
    assert!(
        right.body.contains("Too many failed sign-ins"),
        "{}",
        right.body
    );
    let api = server.call(Method::GET, "/v1/sites", None).await;
    assert_error(&api, 429, "too_many_failures");
    server.stop().await;
}

store_test!(reading_a_secret_writes_an_audit_line_without_the_secret);
async fn reading_a_secret_writes_an_audit_line_without_the_secret(backend: Backend) {
    let logs = Logs::capture();
    let server = backend.start().await;
    let site = server.create_site().await;
    let (webhook, secret) = server
        .create_webhook(&site, "http://127.0.0.1:9/hook", &["*"])
        .await;
    let (key_id, token) = create_scoped_key(&server, &site, Some(&["manage"])).await;
    let (status, body) = server
        .call_as(
            Some(&token),
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{webhook}/secret"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, rotated) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks/{webhook}/rotate-secret"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    server.stop().await;

    let text = logs.text();
    let audit: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("fullup::audit") && l.contains(webhook.as_str()))
        .collect();
    assert_eq!(audit.len(), 2, "one line per secret shown: {audit:#?}");
    assert!(
        audit[0].contains("webhook secret read")
            && audit[0].contains(&format!("api_key:{key_id}"))
            && audit[0].contains(&site)
            && audit[0].contains(" INFO "),
        "{}",
        audit[0]
    );
    assert!(
        audit[1].contains("webhook secret rotated") && audit[1].contains("actor=admin"),
        "{}",
        audit[1]
    );
    let new_secret = rotated["secret"].as_str().expect("secret");
    for line in &audit {
        assert!(
            !line.contains(secret.expose()) && !line.contains(new_secret),
            "a secret in an audit line: {line}"
        );
    }
}
