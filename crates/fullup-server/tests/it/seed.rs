//! The seed document's receivers, and those `docs/receiving.md` shows, run as real
//! processes against the real service.
//!
//! Each answers 200 only when its own signature check passes (Node re-serializes the
//! parsed body with `JSON.stringify`; Python hashes the raw body) and 403 otherwise, so
//! a delivery that does not reach `succeeded` is a body our users' code rejects.

use fullup_testkit::{SEED_SECRET, SeedKind, SeedReceiver};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::TestServer;
use crate::support::server::ADMIN_TOKEN;

/// Event requests written out by hand: key order, number spellings and escapes are
/// exactly what a client sends (`json!` would sort keys and normalize numbers).
const BODIES: &[&str] = &[
    r#"{"type":"form.submitted","data":{"name":"Zoë Ångström","city":"東京","greeting":"¡hola! привет"}}"#,
    r#"{"type":"form.submitted","data":{"emoji":"🎉👍🏽👨‍👩‍👧","escaped":"\ud83c\udf89","flag":"🇫🇷"}}"#,
    r#"{"type":"form.submitted","data":{"b":1,"2":"x","1":"y"}}"#,
    r#"{"type":"form.submitted","data":{"z":0,"10":"ten","4294967295":"not an index","9":"nine","a":{"1":1,"0":0}}}"#,
    r#"{"type":"form.submitted","data":{"one":1.0,"thousand":1e3,"big":1e21,"negzero":-0,"tiny":1e-7,"tenth":0.1,"neg":-1.5E+2,"max":9007199254740991}}"#,
    r#"{"type":"form.submitted","data":{"slash":"a\/b","control":"\u0001\t","newline":"line\nbreak","quote":"\"q\" \\ back"}}"#,
    "{\"type\":\"form.submitted\",\"data\":{\"ls\":\"\u{2028}\",\"ps\":\"\\u2029\",\"del\":\"\u{7f}\",\"nul\":\"\\u0000\"}}",
    r#"{"type":"form.submitted","data":{"matrix":[[1,[2,[3,{"10":"x","9":"y"}]]],[],[{}]],"flags":[true,false,null]}}"#,
    r#"{"type":"form.submitted","data":{"dup":1,"other":2,"dup":3}}"#,
    r#"{"type":"form.submitted" , "data" : [ "top-level array" , 1 , { } ] }"#,
];

/// Creates a `*` webhook with the seed secret pointing at `seed`.
async fn subscribe(server: &TestServer, site: &str, seed: &SeedReceiver) -> String {
    let body = json!({"url": seed.url(), "event_types": ["*"], "secret": SEED_SECRET, "description": "seed"});
    let (status, answer) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks"),
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().expect("webhook id").to_owned()
}

/// Waits for the first attempt of `event` to `webhook` and asserts it succeeded.
async fn assert_accepted(
    server: &TestServer,
    site: &str,
    event: &str,
    webhook: &str,
    seed: &SeedReceiver,
    body: &str,
) {
    let delivery = server
        .wait_for_delivery(site, event, |d| {
            d["webhook_id"] == webhook && d["attempt_count"] == 1
        })
        .await;
    if delivery["state"] != "succeeded" {
        let attempts = server
            .attempts(site, delivery["id"].as_str().expect("id"))
            .await;
        // Raw text: parsed into a `Value`, the stored body would come back with sorted keys.
        let stored = reqwest::Client::new()
            .get(format!("{}/v1/sites/{site}/events/{event}", server.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("get the event")
            .text()
            .await
            .expect("event text");
        panic!(
            "the {} seed receiver refused the event sent as {body}\nstored event: {stored}\nattempts: {}\nreceiver output:\n{}",
            seed.kind(),
            Value::from(attempts),
            seed.output()
        );
    }
}

#[tokio::test]
async fn the_seed_receivers_verify_every_delivery() {
    every_delivery_verifies([SeedKind::Node, SeedKind::Python]).await;
}

/// The receivers `docs/receiving.md` tells users to copy (issue 17, item 11) get the
/// same events as the seeds, and accept every one.
#[tokio::test]
async fn the_documented_receivers_verify_every_delivery() {
    every_delivery_verifies([SeedKind::DocumentedNode, SeedKind::DocumentedPython]).await;
}

/// Sends every one of [`BODIES`] to a webhook per receiver of `kinds` and asserts each
/// first attempt succeeded.
async fn every_delivery_verifies(kinds: [SeedKind; 2]) {
    let seeds: Vec<SeedReceiver> = kinds.into_iter().filter_map(SeedReceiver::start).collect();
    if seeds.is_empty() {
        return;
    }
    let server = TestServer::start().await;
    let site = server.create_site().await;
    let mut webhooks = Vec::new();
    for seed in &seeds {
        webhooks.push(subscribe(&server, &site, seed).await);
    }
    let mut events = Vec::new();
    for body in BODIES {
        events.push((server.send_raw_event(&site, body).await, *body));
    }
    for (event, body) in &events {
        for (seed, webhook) in seeds.iter().zip(&webhooks) {
            assert_accepted(&server, &site, event, webhook, seed, body).await;
        }
    }
    server.stop().await;
}
