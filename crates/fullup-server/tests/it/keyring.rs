//! The main key ring and what a database writer can do (issue 18, items 1 and 3): a
//! main key rotation never runs beside a running node and leaves every webhook
//! delivering; a secret that does not open fails only its own webhook's deliveries and
//! secret reads; a webhook moved to another site, or a secret planted in clear, does
//! not give its secret away; values of the first format still open and are re-sealed.

use std::time::Duration;

use fullup_server::crypto::MainKey;
use fullup_server::domain::retry::RetrySchedule;
use fullup_server::rekey::rotate_main_key;
use futures::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::postgres::{TestDatabase, pg_config, start_node};
use crate::support::{Backend, Received, TestReceiver, TestServer, store_test};

const WAIT: Duration = Duration::from_secs(10);
/// The retry delay of tests whose failed deliveries are retried through the claims.
const RETRY: Duration = Duration::from_millis(50);

/// `GET …/secret`: its status and body.
async fn read_secret(server: &TestServer, site: &str, webhook: &str) -> (u16, Value) {
    server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{webhook}/secret"),
            None,
        )
        .await
}

/// The value of one series in `GET /metrics` (0 when absent).
async fn metric(server: &TestServer, series: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Receives `n` deliveries, each verified under the receiver's expected secrets.
async fn receive_verified(receiver: &mut TestReceiver, n: usize) -> Vec<Received> {
    let mut received = Vec::with_capacity(n);
    for _ in 0..n {
        let got = receiver.next(WAIT).await;
        assert!(
            got.fullup_ok && got.standard_ok,
            "a delivery did not verify"
        );
        received.push(got);
    }
    received
}

/// Issue 18: rotating the main key beside a running PostgreSQL node made that node fail
/// every claim and deliver nothing. Now the rotation is refused while any node holds
/// the database, with a clear message, and events keep flowing; with the nodes
/// stopped it runs, and after both start on the new key alone, the webhook created
/// before and one created after deliver, under their unchanged secrets.
#[tokio::test]
async fn a_main_key_rotation_is_refused_while_nodes_run_and_every_webhook_delivers_after_it() {
    const EVENTS: usize = 60;
    let Some(db) = TestDatabase::create(
        "keyring::a_main_key_rotation_is_refused_while_nodes_run_and_every_webhook_delivers_after_it",
    )
    .await
    else {
        return;
    };
    let old_key = MainKey::generate();
    let nodes = [
        start_node(pg_config(&db, &old_key)).await,
        start_node(pg_config(&db, &old_key)).await,
    ];
    let site = nodes[0].create_site().await;
    let mut before = TestReceiver::start().await;
    let (before_id, before_secret) = nodes[1].create_webhook(&site, &before.url(), &["*"]).await;
    before.expect_secret(before_secret.clone());
    let (status, body) = nodes[0]
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}/webhooks/{before_id}"),
            Some(json!({"headers": {"x-gateway-key": "k-1"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let keys = tempfile::tempdir().expect("temp dir");
    let key_file = keys.path().join("fullup.key");
    let flow = futures::stream::iter(0..EVENTS)
        .map(|i| nodes[i % 2].send_event(&site, "order.paid", json!({"n": i})))
        .buffer_unordered(4)
        .collect::<Vec<String>>();
    let rotation = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        rotate_main_key(&db.url, old_key.clone(), &key_file).await
    };
    let (sent, refused) = tokio::join!(flow, rotation);
    let refused = format!("{:#}", refused.expect_err("refused while nodes run"));
    assert!(
        refused.contains("2 process(es) hold this database") && refused.contains("stop every node"),
        "{refused}"
    );
    assert!(
        !key_file.exists() && !keys.path().join("fullup.key.new").exists(),
        "a refused rotation leaves no key file"
    );
    receive_verified(&mut before, sent.len()).await;
    for node in &nodes {
        assert_eq!(
            metric(node, "fullup_store_errors_total{op=\"claim\"}").await,
            0.0
        );
    }
    for event in &sent {
        let delivery = nodes[0].wait_for_state(&site, event, "succeeded").await;
        assert_eq!(delivery["attempt_count"], 1, "{delivery}");
    }
    let [a, b] = nodes;
    a.stop().await;
    b.stop().await;

    let done = rotate_main_key(&db.url, old_key.clone(), &key_file)
        .await
        .expect("rotation with every node stopped");
    assert_eq!(done.webhooks, 1);
    let new_key = MainKey::read_file(&key_file).expect("new key file");
    assert_eq!(new_key.key_ids().len(), 1, "the old key is retired");
    assert_ne!(new_key.key_id(), old_key.key_id());

    let nodes = [
        start_node(pg_config(&db, &new_key)).await,
        start_node(pg_config(&db, &new_key)).await,
    ];
    let mut after = TestReceiver::start().await;
    let (_, after_secret) = nodes[0].create_webhook(&site, &after.url(), &["*"]).await;
    after.expect_secret(after_secret);
    for i in 0..4 {
        nodes[i % 2]
            .send_event(&site, "order.shipped", json!({"n": i}))
            .await;
    }
    for got in receive_verified(&mut before, 4).await {
        assert_eq!(
            got.header("x-gateway-key"),
            "k-1",
            "custom headers re-sealed"
        );
    }
    receive_verified(&mut after, 4).await;
    let [a, b] = nodes;
    a.stop().await;
    b.stop().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    assert!(
        fullup_server::app::Application::build(pg_config(&db, &old_key), listener)
            .await
            .is_err(),
        "the old key no longer opens the database"
    );
}

/// Issue 18: one undecryptable row failed every claim, stopping every delivery. Now
/// its webhook's delivery fails on its own (an attempt `secret_unreadable`, counted in
/// the metrics), reading its secret answers a clear error, and every other webhook
/// delivers and reads as before.
async fn a_secret_that_does_not_open_fails_only_its_own_deliveries(backend: Backend) {
    // Quick retries, so the failed deliveries go through the claims too (a fresh
    // delivery may be handed to the dispatcher by the ingest itself).
    let server = backend
        .start_with(|c| c.delivery.retry = RetrySchedule::new(vec![RETRY; 4], 0.0))
        .await;
    let site = server.create_site().await;
    let (broken, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/never", &["*"])
        .await;
    let mut receiver = TestReceiver::start().await;
    let (fine, secret) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    receiver.expect_secret(secret.clone());
    // Sealed for another webhook: it does not open as this one's.
    server
        .execute_sql(&format!(
            "UPDATE webhooks SET secret_sealed = (SELECT secret_sealed FROM webhooks WHERE id = '{fine}') \
             WHERE id = '{broken}'"
        ))
        .await;

    for n in 0..3 {
        let event = server.send_event(&site, "a.b", json!({"n": n})).await;
        receive_verified(&mut receiver, 1).await;
        let failed = server
            .wait_for_delivery(&site, &event, |d| {
                d["webhook_id"] == broken.as_str() && d["attempt_count"].as_u64() >= Some(1)
            })
            .await;
        let attempts = server
            .attempts(&site, failed["id"].as_str().expect("id"))
            .await;
        assert_eq!(
            attempts[0]["error_kind"], "secret_unreadable",
            "{attempts:?}"
        );
        assert!(
            attempts[0]["error_message"]
                .as_str()
                .is_some_and(|m| m.contains(&broken) && m.contains("does not open")),
            "{attempts:?}"
        );
    }
    let first = server
        .deliveries(&site, &format!("webhook_id={broken}"))
        .await;
    let retried = server
        .wait_for_delivery(
            &site,
            first.last().expect("delivery")["event_id"]
                .as_str()
                .expect("id"),
            |d| d["webhook_id"] == broken.as_str() && d["attempt_count"].as_u64() >= Some(3),
        )
        .await;
    let attempts = server
        .attempts(&site, retried["id"].as_str().expect("id"))
        .await;
    assert!(
        attempts
            .iter()
            .all(|a| a["error_kind"] == "secret_unreadable"),
        "{attempts:?}"
    );
    assert!(
        metric(
            &server,
            "fullup_attempts_total{status_class=\"secret_unreadable\"}"
        )
        .await
            >= 5.0
    );
    server.send_event(&site, "a.b", json!({"n": "after"})).await;
    receive_verified(&mut receiver, 1).await;
    assert_eq!(
        metric(&server, "fullup_store_errors_total{op=\"claim\"}").await,
        0.0
    );

    let (status, body) = read_secret(&server, &site, &broken).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("secret_unreadable")),
        "{body}"
    );
    let (status, body) = read_secret(&server, &site, &fine).await;
    assert_eq!(
        (status, body["secret"].as_str()),
        (200, Some(secret.expose()))
    );
    let (status, body) = server
        .call(Method::GET, &format!("/v1/sites/{site}/webhooks"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2), "{body}");
    server.stop().await;
}
store_test!(a_secret_that_does_not_open_fails_only_its_own_deliveries);

/// Issue 18: a sealed secret was bound to its webhook id only, so a database writer
/// without the key moved a webhook to its own site and read the secret there. Now the
/// site is in the associated data: the moved webhook's secret does not open.
async fn a_webhook_moved_to_another_site_does_not_give_its_secret_away(backend: Backend) {
    let server = backend.start().await;
    let victim = server.create_site().await;
    let attacker = server.create_site().await;
    let (webhook, _) = server
        .create_webhook(&victim, "http://127.0.0.1:9/", &["*"])
        .await;
    assert_eq!(read_secret(&server, &victim, &webhook).await.0, 200);
    server
        .execute_sql(&format!(
            "UPDATE webhooks SET site_id = '{attacker}' WHERE id = '{webhook}'"
        ))
        .await;
    let (status, body) = read_secret(&server, &attacker, &webhook).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("secret_unreadable")),
        "{body}"
    );
    assert!(body["secret"].is_null(), "{body}");
    server.stop().await;
}
store_test!(a_webhook_moved_to_another_site_does_not_give_its_secret_away);

/// Issue 18: a value sealed before a rotation of the webhook's secret, written back by
/// a database writer, signed again. The secret version is in the associated data.
async fn a_sealed_secret_written_back_from_before_a_rotation_does_not_open(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (webhook, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/", &["*"])
        .await;
    let saved = format!("saved_{}", webhook.to_lowercase());
    server
        .execute_sql(&format!(
            "CREATE TABLE {saved} AS SELECT secret_sealed FROM webhooks WHERE id = '{webhook}'"
        ))
        .await;
    let (status, rotated) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks/{webhook}/rotate-secret"),
            Some(json!({"grace_period_secs": 0})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(
        read_secret(&server, &site, &webhook).await.1["secret"],
        rotated["secret"]
    );
    server
        .execute_sql(&format!(
            "UPDATE webhooks SET secret_sealed = (SELECT secret_sealed FROM {saved}) WHERE id = '{webhook}'"
        ))
        .await;
    let (status, body) = read_secret(&server, &site, &webhook).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("secret_unreadable")),
        "{body}"
    );
    server.stop().await;
}
store_test!(a_sealed_secret_written_back_from_before_a_rotation_does_not_open);

/// Issue 17, item 12: receiver URLs are sealed like secrets. A URL a database writer
/// plants in clear (to repoint a webhook at its own receiver) is never used: the
/// webhook reads as unreadable and nothing is sent to the planted URL.
async fn a_url_planted_in_clear_is_never_used(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let (webhook, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/", &["*"])
        .await;
    let mut planted = TestReceiver::start().await;
    server
        .execute_sql(&format!(
            "UPDATE webhooks SET url = '{}', url_sealed = NULL WHERE id = '{webhook}'",
            planted.url()
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
    let (status, shown) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{webhook}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["url"], "https://unreadable.invalid/", "{shown}");
    let (status, body) = server
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}/webhooks/{webhook}"),
            Some(json!({"description": "x"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("secret_unreadable")),
        "an unreadable webhook is not written back: {body}"
    );
    server.stop().await;
}
store_test!(a_url_planted_in_clear_is_never_used);
