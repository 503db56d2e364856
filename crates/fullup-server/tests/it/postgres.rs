//! The PostgreSQL store under the real service, each test on a database of its own
//! (`support::postgres`): here a full cycle and the management API; in `nodes`, several
//! nodes sharing one database; in `at_rest`, the main key and a `pg_dump` that holds no
//! secret.

mod at_rest;
mod nodes;

use std::time::Duration;

use fullup_server::crypto::MainKey;
use reqwest::Method;
use serde_json::{Value, json};

use crate::secrets::create_api_key;
use crate::support::postgres::{TestDatabase, pg_config, start_node};
use crate::support::server::{ADMIN_TOKEN, manual_clock, short_schedule};
use crate::support::time::{AdvanceMs as _, NowMs as _, format_rfc3339};
use crate::support::{Received, TestReceiver, TestServer};

pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// Long enough for many 20 ms dispatcher polls; a due attempt would arrive within it.
pub(crate) const QUIET: Duration = Duration::from_millis(300);

pub(crate) fn assert_signed(got: &Received) {
    assert!(
        got.fullup_ok && got.standard_ok,
        "both signatures must verify: {got:?}"
    );
}

/// POSTs an event with an `Idempotency-Key`; returns the status and the answer.
async fn send_keyed(server: &TestServer, site: &str, key: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/sites/{site}/events", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON answer"))
}

/// Every event id of the site, following the cursor two at a time.
async fn all_event_ids(server: &TestServer, site: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, body) = server
            .call(
                Method::GET,
                &format!("/v1/sites/{site}/events?limit=2{cursor}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        for e in body["data"].as_array().expect("data") {
            ids.push(e["id"].as_str().expect("id").to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return ids,
        }
    }
}

pub(crate) async fn scalar(db: &TestDatabase, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&mut db.connect().await)
        .await
        .expect(sql)
}
#[tokio::test]
async fn a_full_cycle_runs_on_postgres() {
    let Some(db) = TestDatabase::create("a_full_cycle_runs_on_postgres").await else {
        return;
    };
    let clock = manual_clock();
    let mut config = pg_config(&db, &MainKey::generate());
    config.clock = clock.clone();
    config.delivery.retry = short_schedule();
    let server = start_node(config).await;
    let mut receiver = TestReceiver::start().await;
    receiver.set_clock(clock.clone());
    let site = server.create_site().await;
    let token = create_api_key(&server, &site).await;
    let (webhook, secret) = server
        .create_webhook(&site, &receiver.url(), &["form.*"])
        .await;
    receiver.expect_secret(secret);

    let (status, body) = server
        .call_as(
            Some(&token),
            Method::POST,
            &format!("/v1/sites/{site}/events"),
            Some(json!({"type": "form.submitted", "data": {"name": "Zoë 🎉"}})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let event = body["id"].as_str().expect("event id").to_owned();
    let got = receiver.next(WAIT).await;
    assert_signed(&got);
    assert_eq!(got.header("webhook-id"), event);
    assert_eq!(got.json()["data"], json!({"name": "Zoë 🎉"}));
    let delivery = server.wait_for_state(&site, &event, "succeeded").await;
    assert_eq!(delivery["webhook_id"], webhook.as_str());
    let attempts = server
        .attempts(&site, delivery["id"].as_str().expect("id"))
        .await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["status_code"], 200);
    assert_eq!(attempts[0]["response_body"], "receiver says hello");

    // A 500 is retried on schedule.
    receiver.set_status(500);
    let t0 = clock.now_ms();
    let failing = server.send_event(&site, "form.sent", json!({})).await;
    let first = receiver.next(WAIT).await;
    assert_signed(&first);
    assert_eq!(first.header("fullup-attempt"), "1");
    let pending = server
        .wait_for_delivery(&site, &failing, |d| d["attempt_count"] == 1)
        .await;
    assert_eq!(pending["state"], "pending");
    assert_eq!(pending["next_attempt_at"], format_rfc3339(t0 + 5_000));
    receiver.set_status(200);
    clock.advance_ms(5_000);
    let second = receiver.next(WAIT).await;
    assert_signed(&second);
    assert_eq!(second.header("fullup-attempt"), "2");
    let done = server.wait_for_state(&site, &failing, "succeeded").await;
    let attempts = server
        .attempts(&site, done["id"].as_str().expect("id"))
        .await;
    let codes: Vec<&Value> = attempts.iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, [&json!(200), &json!(500)], "newest first");

    // Idempotency: one event per key, the first answer to every retry.
    let order = json!({"type": "order.paid", "data": {"n": 1}});
    let (status, once) = send_keyed(&server, &site, "order-1", order.clone()).await;
    assert_eq!(status, 202, "{once}");
    assert_eq!(
        send_keyed(&server, &site, "order-1", order.clone()).await,
        (202, once)
    );
    let other = json!({"type": "order.paid", "data": {"n": 2}});
    let (status, reused) = send_keyed(&server, &site, "order-1", other).await;
    assert_eq!(
        (status, &reused["error"]["code"]),
        (422, &json!("idempotency_key_reused"))
    );
    let answers = futures::future::join_all(
        (0..10).map(|_| send_keyed(&server, &site, "burst", order.clone())),
    )
    .await;
    assert!(answers.iter().all(|a| a == &answers[0] && a.0 == 202));

    let ids = all_event_ids(&server, &site).await;
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    server.stop().await;
}

/// `n` API keys' tokens and ids.
async fn api_keys(server: &TestServer, site: &str, n: usize) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    for _ in 0..n {
        let (status, body) = server
            .call(
                Method::POST,
                &format!("/v1/sites/{site}/api-keys"),
                Some(json!({"name": "k"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        keys.push((
            body["token"].as_str().expect("token").to_owned(),
            body["id"].as_str().expect("id").to_owned(),
        ));
    }
    keys
}

#[tokio::test]
async fn the_management_api_and_delivery_controls_work_on_postgres() {
    let Some(db) =
        TestDatabase::create("the_management_api_and_delivery_controls_work_on_postgres").await
    else {
        return;
    };
    let clock = manual_clock();
    let mut config = pg_config(&db, &MainKey::generate());
    config.clock = clock.clone();
    config.delivery.retry = short_schedule();
    config.delivery.disable_after = Duration::from_secs(60);
    let server = start_node(config).await;
    let mut receiver = TestReceiver::start().await;
    receiver.set_clock(clock.clone());
    let site = server.create_site().await;
    let site_path = format!("/v1/sites/{site}");
    let (status, renamed) = server
        .call(Method::PATCH, &site_path, Some(json!({"name": "renamed"})))
        .await;
    assert_eq!((status, &renamed["name"]), (200, &json!("renamed")));

    let keys = api_keys(&server, &site, 3).await;
    let (_, page) = server
        .call(Method::GET, &format!("{site_path}/api-keys?limit=2"), None)
        .await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2), "{page}");
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("{site_path}/api-keys/{}", keys[0].1),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let events = format!("{site_path}/events");
    let (status, _) = server
        .call_as(Some(&keys[0].0), Method::GET, &events, None)
        .await;
    assert_eq!(status, 401, "a deleted key no longer works");

    let (webhook, secret) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    receiver.expect_secret(secret);
    let webhook_path = format!("{site_path}/webhooks/{webhook}");
    let (status, _) = server
        .call(Method::PATCH, &webhook_path, Some(json!({"paused": true})))
        .await;
    assert_eq!(status, 200);
    let event = server.send_event(&site, "a.b", json!({})).await;
    assert!(receiver.try_next(QUIET).await.is_none(), "paused");
    server
        .call(Method::PATCH, &webhook_path, Some(json!({"paused": false})))
        .await;
    assert_signed(&receiver.next(WAIT).await);
    let delivery = server.wait_for_state(&site, &event, "succeeded").await;
    let delivery_id = delivery["id"].as_str().expect("id");

    let (status, _) = server
        .call(
            Method::POST,
            &format!("{site_path}/deliveries/{delivery_id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(receiver.next(WAIT).await.header("fullup-attempt"), "2");
    server
        .wait_for_delivery(&site, &event, |d| {
            d["attempt_count"] == 2 && d["state"] == "succeeded"
        })
        .await;
    let (status, ping) = server
        .call(Method::POST, &format!("{webhook_path}/test"), None)
        .await;
    assert_eq!(status, 202, "{ping}");
    assert_eq!(
        receiver.next(WAIT).await.header("fullup-event-type"),
        "ping"
    );
    // The ping's success clears the webhook's `failing_since` when it is recorded, which
    // is after the receiver has it: wait for that, or it can land after the first
    // failure below and move the start of the failing streak to the second one.
    let ping = ping["event_id"].as_str().expect("ping event id");
    server.wait_for_state(&site, ping, "succeeded").await;

    // Failing for longer than disable_after disables, with the reason SQLite gives.
    receiver.set_status(500);
    let t0 = clock.now_ms();
    let failing = server.send_event(&site, "a.b", json!({})).await;
    for (made, wait) in [(1, 5_000), (2, 300_000)] {
        receiver.next(WAIT).await;
        server
            .wait_for_delivery(&site, &failing, |d| d["attempt_count"] == made)
            .await;
        clock.advance_ms(wait);
    }
    receiver.next(WAIT).await;
    server
        .wait_for_delivery(&site, &failing, |d| d["attempt_count"] == 3)
        .await;
    let (_, body) = server.call(Method::GET, &webhook_path, None).await;
    assert_eq!(body["enabled"], false, "{body}");
    let since = format_rfc3339(t0).replace(".000Z", "Z");
    assert_eq!(
        body["disabled_reason"],
        format!("every attempt failed since {since}")
    );

    let (status, _) = server.call(Method::DELETE, &webhook_path, None).await;
    assert_eq!(status, 204);
    // Its history stays, marked (issue 15): until retention prunes it.
    let kept = server
        .deliveries(&site, &format!("webhook_id={webhook}"))
        .await;
    assert!(!kept.is_empty());
    assert!(
        kept.iter().all(|d| d["webhook_deleted"] == true),
        "{kept:?}"
    );
    assert_eq!(server.call(Method::GET, &webhook_path, None).await.0, 404);
    assert_eq!(server.call(Method::DELETE, &site_path, None).await.0, 204);
    assert_eq!(server.call(Method::GET, &site_path, None).await.0, 404);
    server.stop().await;
}
