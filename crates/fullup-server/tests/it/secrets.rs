//! Secrets at rest: after a real run, the database files hold no webhook secret, API
//! token or admin token in clear; the main key is checked, and rotating it re-seals.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use fullup_server::app::Application;
use fullup_server::crypto::MainKey;
use fullup_server::rekey::rotate_main_key;
use fullup_signature::Secret;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::{ADMIN_TOKEN, test_config};
use crate::support::{TestReceiver, TestServer};

const WAIT: Duration = Duration::from_secs(10);
const CHOSEN_SECRET: &str = "a-chosen-plain-secret-4f1d9c";
/// A token in a receiver URL's query, as Slack's and others' URLs carry.
const URL_TOKEN: &str = "url-query-token-3e7d";

/// The bytes of `fullup.db` and, if present, its `-wal` and `-shm` files.
fn database_bytes(dir: &Path) -> Vec<u8> {
    ["fullup.db", "fullup.db-wal", "fullup.db-shm"]
        .iter()
        .filter_map(|name| std::fs::read(dir.join(name)).ok())
        .flatten()
        .collect()
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A token or secret, and the bytes its base64 part (after a `whsec_`/`fk_` prefix)
/// decodes to.
pub(crate) fn needles(text: &str) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut found = vec![text.as_bytes().to_vec()];
    let encoded = text.split_once('_').map_or(text, |(_, rest)| rest);
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(encoded)
            && bytes.len() >= 16
        {
            found.push(bytes);
        }
    }
    found
}

/// Builds the service once without a configured admin token, so one is generated and
/// its hash stored; returns that token.
async fn generate_admin_token(dir: &tempfile::TempDir) -> String {
    let mut config = test_config(dir);
    config.admin_token = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = Application::build(config, listener)
        .await
        .expect("build app");
    let token = app
        .generated_admin_token()
        .expect("a token is generated on first start")
        .to_owned();
    // Run it to its end, which closes the store: a store only dropped may still hold
    // the database's lock file when the test starts the next service on it.
    app.run(async {}).await.expect("the first service stops");
    token
}

/// Creates a `manage` API key of `site` (it may do everything there); returns its token.
pub(crate) async fn create_api_key(server: &TestServer, site: &str) -> String {
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/api-keys"),
            Some(json!({"name": "backend", "scopes": ["manage"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn the_database_files_hold_no_secret_or_token_in_clear() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let generated_admin = generate_admin_token(&dir).await;
    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    let mut receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    let api_token = create_api_key(&server, &site).await;
    let (first, generated_secret) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks"),
            Some(json!({"url": format!("{}?token={URL_TOKEN}", receiver.url()), "secret": CHOSEN_SECRET, "description": "marker-description-77"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, rotated) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks/{first}/rotate-secret"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let rotated_secret = rotated["secret"].as_str().expect("secret").to_owned();
    receiver.expect_secret(generated_secret.clone());
    receiver.expect_secret(Secret::parse(&rotated_secret).expect("secret"));
    receiver.expect_secret(Secret::parse(CHOSEN_SECRET).expect("secret"));

    let (status, body) = server
        .call_as(
            Some(&api_token),
            Method::POST,
            &format!("/v1/sites/{site}/events"),
            Some(json!({"type": "a.b", "data": {}})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    for _ in 0..2 {
        let got = receiver.next(WAIT).await;
        assert!(
            got.fullup_ok && got.standard_ok,
            "deliveries are signed with the stored secrets"
        );
    }
    let event = body["id"].as_str().expect("event id");
    server.wait_for_state(&site, event, "succeeded").await;

    let secrets = [
        generated_secret.expose(),
        rotated_secret.as_str(),
        CHOSEN_SECRET,
    ];
    let tokens = [api_token.as_str(), ADMIN_TOKEN, generated_admin.as_str()];
    for text in [generated_secret.expose(), &api_token, &generated_admin] {
        assert!(
            needles(text).len() > 1,
            "the decoded key bytes are searched too"
        );
    }
    let running = database_bytes(dir.path());
    server.stop().await;
    let stopped = database_bytes(dir.path());
    for (when, bytes) in [("while running", &running), ("after stopping", &stopped)] {
        assert!(
            contains(bytes, b"marker-description-77"),
            "{when}: the search finds stored text"
        );
        // Receiver URLs are sealed too: their paths and queries often carry tokens.
        for url_part in ["webhook-endpoint", URL_TOKEN] {
            assert!(
                !contains(bytes, url_part.as_bytes()),
                "{when}: a receiver URL is stored in clear"
            );
        }
        for text in secrets.iter().chain(tokens.iter()) {
            for needle in needles(text) {
                assert!(
                    !contains(bytes, &needle),
                    "{when}: a secret or token is stored in clear"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_key_file_is_created_private_once_and_a_wrong_key_is_refused() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = Application::build(test_config(&dir), listener)
        .await
        .expect("build");
    let key_file = dir.path().join("fullup.key");
    assert_eq!(app.created_main_key_file(), Some(key_file.as_path()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    drop(app);

    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    let site = server.create_site().await;
    let (webhook, secret) = server
        .create_webhook(&site, "http://127.0.0.1:9/", &["*"])
        .await;
    server.stop().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let reopened = Application::build(test_config(&dir), listener)
        .await
        .expect("build");
    assert_eq!(
        reopened.created_main_key_file(),
        None,
        "the existing key file is reused"
    );
    drop(reopened);
    let mut wrong = test_config(&dir);
    wrong.main_key = Some(MainKey::generate());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = Application::build(wrong, listener)
        .await
        .expect_err("another key is refused");
    assert!(
        format!("{err:#}").contains("main key does not match"),
        "{err:#}"
    );

    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    assert_eq!(secret_of(&server, &site, &webhook).await, secret.expose());
}

async fn secret_of(server: &TestServer, site: &str, webhook: &str) -> Value {
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{webhook}/secret"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["secret"].clone()
}

#[tokio::test]
async fn a_sealed_secret_moved_to_another_row_does_not_open() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    let site = server.create_site().await;
    let (a, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/a", &["*"])
        .await;
    let (b, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/b", &["*"])
        .await;
    server.stop().await;

    let url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open database");
    sqlx::query("UPDATE webhooks SET secret_sealed = (SELECT secret_sealed FROM webhooks WHERE id = ?) WHERE id = ?")
        .bind(&a)
        .bind(&b)
        .execute(&pool)
        .await
        .expect("swap");
    pool.close().await;

    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    let (status, body) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{b}/secret"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("secret_unreadable")),
        "{body}"
    );
    assert_eq!(
        secret_of(&server, &site, &a).await.as_str().map(str::len),
        Some(50)
    );
}

#[tokio::test]
async fn rotating_the_main_key_reseals_every_secret() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    let mut receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    let (webhook, old_secret) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    let (status, body) = server
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}/webhooks/{webhook}"),
            Some(json!({"headers": {"x-gateway-key": "k-1"}})),
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
    let api_token = create_api_key(&server, &site).await;
    server.stop().await;

    let key_file = dir.path().join("fullup.key");
    let old_key = MainKey::read_file(&key_file).expect("key file");
    let url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let done = rotate_main_key(&url, old_key.clone(), &key_file)
        .await
        .expect("rotation");
    assert_eq!(done.webhooks, 1);
    let new_key = MainKey::read_file(&key_file).expect("new key file");
    assert_ne!(new_key.to_base64(), old_key.to_base64());
    assert!(
        !dir.path().join("fullup.key.old").exists() && !dir.path().join("fullup.key.new").exists()
    );

    let mut with_old = test_config(&dir);
    with_old.main_key = Some(old_key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    assert!(
        Application::build(with_old, listener).await.is_err(),
        "the old key no longer opens the database"
    );

    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    assert_eq!(secret_of(&server, &site, &webhook).await, rotated["secret"]);
    let (status, body) = server
        .call_as(
            Some(&api_token),
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{webhook}"),
            None,
        )
        .await;
    assert_eq!(
        status, 200,
        "API keys outlive the rotation (the token-hash key is re-sealed): {body}"
    );
    receiver.expect_secret(old_secret);
    server.send_event(&site, "a.b", json!({})).await;
    let got = receiver.next(WAIT).await;
    assert!(
        got.fullup_ok,
        "the old secret, still in its grace period, was re-sealed too"
    );
    assert_eq!(
        got.header("x-gateway-key"),
        "k-1",
        "custom headers were re-sealed too"
    );
    let new_secret = Secret::parse(rotated["secret"].as_str().expect("secret")).expect("secret");
    let standard = fullup_signature::standard::StandardVerifier::new([new_secret]).expect("secret");
    let header = |n: &str| got.headers.get(n).and_then(|v| v.to_str().ok());
    assert!(
        standard
            .verify(
                header("webhook-id"),
                header("webhook-timestamp"),
                header("webhook-signature"),
                &got.body
            )
            .is_ok()
    );
}

#[tokio::test]
async fn secrets_stored_in_clear_by_an_earlier_version_are_sealed_at_start() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    let site = server.create_site().await;
    let (webhook, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/", &["*"])
        .await;
    server.stop().await;

    // What migration 0001 left behind: the secret in clear, nothing sealed, and no
    // record of the one-time sealing of such rows.
    let legacy = "legacy-plain-secret-0a7c55e1";
    let url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open database");
    sqlx::query(
        "UPDATE webhooks SET secret = ?, secret_sealed = NULL, url = 'http://127.0.0.1:9/', \
         url_sealed = NULL WHERE id = ?",
    )
    .bind(legacy)
    .bind(&webhook)
    .execute(&pool)
    .await
    .expect("make the row legacy");
    sqlx::query("DELETE FROM settings WHERE key = 'plaintext_secrets_sealed'")
        .execute(&pool)
        .await
        .expect("an earlier version's settings");
    pool.close().await;
    assert!(
        contains(&database_bytes(dir.path()), legacy.as_bytes()),
        "the legacy row holds the secret"
    );

    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    assert_eq!(secret_of(&server, &site, &webhook).await, legacy);
    assert!(
        !contains(&database_bytes(dir.path()), legacy.as_bytes()),
        "sealed and wiped while running"
    );
    server.stop().await;
    assert!(
        !contains(&database_bytes(dir.path()), legacy.as_bytes()),
        "sealed and wiped after stopping"
    );
}

/// Issue 18: a legacy fallback read a secret stored in clear, so a database writer
/// could plant a secret of its choosing. Once the rows of the first schema were sealed,
/// a secret in clear is never read, at once or after a restart.
#[tokio::test]
async fn a_secret_planted_in_clear_is_never_read() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    let site = server.create_site().await;
    let (webhook, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/", &["*"])
        .await;
    let planted = "planted-plain-secret-5be01d7f";
    server
        .execute_sql(&format!(
            "UPDATE webhooks SET secret = '{planted}', secret_sealed = NULL WHERE id = '{webhook}'"
        ))
        .await;
    let refused = |(status, body): (u16, Value)| {
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (500, Some("secret_unreadable")),
            "{body}"
        );
    };
    let path = format!("/v1/sites/{site}/webhooks/{webhook}/secret");
    refused(server.call(Method::GET, &path, None).await);
    let server = server.restart_with(|_| {}).await;
    refused(server.call(Method::GET, &path, None).await);
    server.stop().await;
}

/// Values sealed before key ids and bindings (`v1:`, bound to the webhook id only)
/// still open after an upgrade, and are re-sealed at start as `v2:` under the current
/// key, bound to the site, webhook and secret version.
#[tokio::test]
async fn values_of_the_first_format_open_and_are_resealed_at_start() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    let site = server.create_site().await;
    let (webhook, secret) = server
        .create_webhook(&site, "http://127.0.0.1:9/", &["*"])
        .await;
    server.stop().await;

    let key = MainKey::read_file(&dir.path().join("fullup.key")).expect("key file");
    let v2 = key.seal(
        secret.as_bytes(),
        format!("webhook-secret:{webhook}").as_bytes(),
    );
    let v1 = format!("v1:{}", v2.rsplit(':').next().expect("base64"));
    let url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open database");
    sqlx::query(
        "UPDATE webhooks SET secret_sealed = ?, url = 'http://127.0.0.1:9/', url_sealed = NULL \
         WHERE id = ?",
    )
    .bind(&v1)
    .bind(&webhook)
    .execute(&pool)
    .await
    .expect("make the row v1, its URL in clear");
    pool.close().await;

    let server = TestServer::start_in(dir.clone(), test_config(&dir)).await;
    assert_eq!(secret_of(&server, &site, &webhook).await, secret.expose());
    let (_, shown) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{webhook}"),
            None,
        )
        .await;
    assert_eq!(shown["url"], "http://127.0.0.1:9/");
    server.stop().await;
    let pool = sqlx::SqlitePool::connect(&url)
        .await
        .expect("open database");
    let (stored, url, url_sealed): (String, String, String) =
        sqlx::query_as("SELECT secret_sealed, url, url_sealed FROM webhooks WHERE id = ?")
            .bind(&webhook)
            .fetch_one(&pool)
            .await
            .expect("read");
    pool.close().await;
    let sealed_now = format!("v2:{}:", key.key_id());
    assert!(stored.starts_with(&sealed_now), "re-sealed: {stored}");
    assert!(
        url_sealed.starts_with(&sealed_now) && url.is_empty(),
        "URL sealed: {url_sealed}"
    );
}
