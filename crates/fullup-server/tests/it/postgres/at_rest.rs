//! Secrets at rest on PostgreSQL: the main key must be given and must match, and a
//! `pg_dump` after a run with rotations holds no secret, token or key.

use fullup_server::app::Application;
use fullup_server::crypto::MainKey;
use fullup_server::rekey::rotate_main_key;
use reqwest::Method;
use serde_json::json;

use super::{WAIT, assert_signed};
use crate::secrets::{contains, create_api_key, needles};
use crate::support::TestReceiver;
use crate::support::postgres::{TestDatabase, pg_config, start_node};
use crate::support::server::ADMIN_TOKEN;

#[tokio::test]
async fn a_postgres_database_needs_an_explicit_main_key_and_refuses_another() {
    let Some(db) =
        TestDatabase::create("a_postgres_database_needs_an_explicit_main_key_and_refuses_another")
            .await
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("fullup.key");
    let build = |main_key: Option<MainKey>, main_key_file: Option<&std::path::Path>| {
        let mut config = pg_config(&db, &MainKey::generate());
        config.main_key = main_key;
        config.main_key_file = main_key_file.map(ToOwned::to_owned);
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            Application::build(config, listener).await
        }
    };

    let err = build(None, None).await.expect_err("no key, no default");
    assert!(format!("{err:#}").contains("FULLUP_MAIN_KEY"), "{err:#}");
    let first = build(None, Some(&key_file))
        .await
        .expect("key file created");
    assert_eq!(first.created_main_key_file(), Some(key_file.as_path()));
    drop(first);
    let err = build(Some(MainKey::generate()), None)
        .await
        .expect_err("another key is refused");
    assert!(
        format!("{err:#}").contains("main key does not match"),
        "{err:#}"
    );
    let again = build(None, Some(&key_file)).await.expect("key file reused");
    assert_eq!(again.created_main_key_file(), None);
}

/// What must never appear in a dump: the text, the bytes its base64 decodes to, and
/// both in hex (how `pg_dump` writes BYTEA).
fn dump_needles(text: &str) -> Vec<Vec<u8>> {
    needles(text)
        .into_iter()
        .flat_map(|n| [hex::encode(&n).into_bytes(), n])
        .collect()
}

fn pg_dump(db: &TestDatabase) -> Vec<u8> {
    let out = std::process::Command::new("pg_dump")
        .arg("--dbname")
        .arg(&db.url)
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test]
async fn a_pg_dump_contains_no_secret() {
    const TEST: &str = "a_pg_dump_contains_no_secret";
    if !fullup_testkit::require_tool("pg_dump", &[], TEST) {
        return;
    }
    let Some(db) = TestDatabase::create(TEST).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("fullup.key");
    let mut config = pg_config(&db, &MainKey::generate());
    config.main_key = None;
    config.main_key_file = Some(key_file.clone());
    let mut first = config.clone();
    first.admin_token = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = Application::build(first, listener).await.expect("build");
    let generated_admin = app.generated_admin_token().expect("generated").to_owned();
    drop(app);

    let server = start_node(config.clone()).await;
    let mut receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    let api_token = create_api_key(&server, &site).await;
    let (webhook, generated) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    let chosen = "a-chosen-plain-secret-9e2b17";
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks"),
            Some(json!({"url": receiver.url(), "secret": chosen, "description": "marker-description-77"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, rotated) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks/{webhook}/rotate-secret"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let rotated = rotated["secret"].as_str().expect("secret").to_owned();
    server.stop().await;

    let old_key = MainKey::read_file(&key_file).expect("key file");
    let done = rotate_main_key(&db.url, old_key.clone(), &key_file)
        .await
        .expect("main key rotation");
    assert_eq!(done.webhooks, 2);
    let new_key = MainKey::read_file(&key_file).expect("new key file");

    let server = start_node(config).await;
    for secret in [generated.expose(), &rotated, chosen] {
        receiver.expect_secret(fullup_signature::Secret::parse(secret).expect("secret"));
    }
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
        assert_signed(&receiver.next(WAIT).await);
    }
    server.stop().await;

    let dump = pg_dump(&db);
    assert!(
        contains(&dump, b"marker-description-77"),
        "the dump holds the data"
    );
    assert!(
        contains(&dump, hex::encode("v2:").as_bytes()),
        "the dump holds the sealed values, in hex"
    );
    assert!(
        !contains(&dump, b"webhook-endpoint"),
        "the dump holds a receiver URL in clear"
    );
    let secrets = [generated.expose(), rotated.as_str(), chosen];
    let tokens = [api_token.as_str(), ADMIN_TOKEN, generated_admin.as_str()];
    let keys = [old_key.to_base64(), new_key.to_base64()];
    let keys = keys.iter().map(|k| k.as_str());
    for text in secrets.into_iter().chain(tokens).chain(keys) {
        for needle in dump_needles(text) {
            assert!(!contains(&dump, &needle), "the dump holds a secret");
        }
    }
}
