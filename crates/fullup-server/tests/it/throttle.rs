//! Per-webhook throttle (issue 15, item 2): a webhook limited to N requests per second
//! never receives more than N + 1 in any 1-second window (measured at the receiver,
//! over its receipt times), and every delivery arrives, once, without a failed or extra
//! attempt and without touching the webhook's health; a webhook without a limit beside
//! it is not held up. On both stores, and on two PostgreSQL nodes sharing one database.
//!
//! The figures these tests print (`--nocapture`) are in `docs/benchmarks.md`.

use std::time::{Duration, Instant};

use fullup_server::crypto::MainKey;
use fullup_server::domain::ids::WebhookId;
use fullup_server::domain::throttle::RateLimit;
use fullup_server::domain::time::Timestamp;
use fullup_server::store::Claim;
use futures::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::postgres::{TestDatabase, pg_config, start_node};
use crate::support::records::{ingest_at, site_with_webhooks};
use crate::support::{Backend, TestReceiver, TestServer, store_test};

/// Long enough for the slowest receipt of a throttled run on a loaded machine.
const WAIT: Duration = Duration::from_secs(30);
/// Events of a throttled run, and its limit: six seconds of deliveries.
const EVENTS: usize = 300;
const PER_SECOND: u64 = 50;
/// A dispatcher poll interval longer than any run: deliveries must be started by
/// wake-ups (ingests, other nodes' announcements, attempts ending), not by polling.
const NO_POLL: Duration = Duration::from_secs(600);

/// A receiver on a thread and runtime of its own, as a receiver is another process: the
/// times it records are not those of the service's tasks, which share the test's
/// runtime (one thread), and would otherwise delay the receiver's handler. It stops when
/// the returned sender is dropped.
fn receiver_apart() -> (TestReceiver, tokio::sync::oneshot::Sender<()>) {
    let (started, receiver) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let receiver = TestReceiver::start().await;
            started.send(receiver).expect("test waits");
            let _ = stopped.await;
        });
    });
    (receiver.recv().expect("receiver started"), stop)
}

/// Creates a webhook of `site` to `receiver` with `body`'s extra fields; its id.
async fn webhook(server: &TestServer, site: &str, receiver: &TestReceiver, extra: Value) -> String {
    let created = server
        .create_webhook_with(site, &receiver.url(), extra)
        .await;
    receiver.expect_secret(
        fullup_signature::Secret::parse(created["secret"].as_str().expect("secret"))
            .expect("secret"),
    );
    created["id"].as_str().expect("id").to_owned()
}

/// Sends `count` events to `site`, alternately through each of `servers`, 16 at once.
async fn send(servers: &[&TestServer], site: &str, count: usize) {
    futures::stream::iter(0..count)
        .map(|i| servers[i % servers.len()].send_event(site, "order.paid", json!({"n": i})))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

/// Receives `count` requests, each verified and a first attempt; their receipt times.
async fn receive(receiver: &mut TestReceiver, count: usize) -> Vec<Instant> {
    let mut ids = std::collections::HashSet::new();
    let mut times = Vec::with_capacity(count);
    while times.len() < count {
        let got = receiver.next(WAIT).await;
        assert!(got.fullup_ok && got.standard_ok, "signed: {got:?}");
        assert_eq!(got.header("fullup-attempt"), "1", "waiting is no attempt");
        assert!(
            ids.insert(got.header("webhook-id").to_owned()),
            "each delivery arrives once"
        );
        times.push(got.at);
    }
    times
}

/// The most receipts in any closed 1-second window of `times` (in receipt order).
fn max_in_one_second(times: &[Instant]) -> usize {
    let mut max = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) > Duration::from_secs(1) {
            start += 1;
        }
        max = max.max(end - start + 1);
    }
    max
}

/// Asserts the bound over `times` and prints the run's figures.
fn check_and_report(run: &str, began: Instant, times: &[Instant]) {
    let max = max_in_one_second(times);
    let first = times.first().copied().unwrap_or(began);
    let last = times.last().copied().unwrap_or(began);
    println!(
        "throttle {run}: {} deliveries at {PER_SECOND}/s: max {max} in any 1 s window; \
         first to last receipt {:.2} s; first send to last receipt {:.2} s",
        times.len(),
        last.duration_since(first).as_secs_f64(),
        last.duration_since(began).as_secs_f64(),
    );
    let bound = usize::try_from(PER_SECOND).expect("small") + 1;
    assert!(max <= bound, "{max} requests arrived within one second");
}

/// A number `sql` selects (as text) from the server's database.
async fn count(server: &TestServer, sql: &str) -> i64 {
    server.query_text(sql).await.parse().expect("a number")
}

store_test!(a_throttled_webhook_gets_at_most_n_plus_one_a_second_and_every_delivery);
async fn a_throttled_webhook_gets_at_most_n_plus_one_a_second_and_every_delivery(backend: Backend) {
    let store = match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres(_) => "PostgreSQL",
    };
    // No poll to fall back on: a throttled delivery is started when room frees up.
    let server = backend
        .start_with(|c| c.delivery.poll_interval = NO_POLL)
        .await;
    let (mut receiver, _stop) = receiver_apart();
    let site = server.create_site().await;
    webhook(
        &server,
        &site,
        &receiver,
        json!({"rate_limit_per_second": PER_SECOND}),
    )
    .await;

    let began = Instant::now();
    send(&[&server], &site, EVENTS).await;
    let times = receive(&mut receiver, EVENTS).await;
    check_and_report(store, began, &times);
    assert!(
        receiver
            .try_next(Duration::from_millis(300))
            .await
            .is_none()
    );
    let attempts = "SELECT CAST(COUNT(*) AS TEXT) FROM attempts";
    assert_eq!(
        count(&server, attempts).await,
        i64::try_from(EVENTS).expect("small")
    );
    server.stop().await;
}

store_test!(a_throttle_leaves_health_alone_and_holds_up_no_other_webhook);
async fn a_throttle_leaves_health_alone_and_holds_up_no_other_webhook(backend: Backend) {
    const EACH: usize = 30;
    let server = backend.start().await;
    let (mut slow, mut free) = (TestReceiver::start().await, TestReceiver::start().await);
    let site = server.create_site().await;
    let throttled = webhook(&server, &site, &slow, json!({"rate_limit_per_second": 5})).await;
    webhook(&server, &site, &free, json!({})).await;

    send(&[&server], &site, EACH).await;
    receive(&mut free, EACH).await;
    // The unlimited webhook had all of its deliveries while the throttled one, at 5/s,
    // had received few of its own: it did not wait behind them.
    let mut throttled_so_far = 0;
    while slow.try_next(Duration::ZERO).await.is_some() {
        throttled_so_far += 1;
    }
    assert!(
        throttled_so_far < EACH,
        "the throttled webhook got all {EACH} before the other webhook got its own"
    );
    receive(&mut slow, EACH - throttled_so_far).await;

    let (status, got) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{throttled}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["enabled"], true);
    assert_eq!(got["disabled_reason"], Value::Null);
    assert_eq!(
        got["concurrency_limit"], 16,
        "no attempt was held against it"
    );
    assert_eq!(got["rate_limit_per_second"], 5);
    let health = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM webhooks WHERE id = '{throttled}' \
         AND failing_since IS NULL AND concurrency_limit IS NULL"
    );
    assert_eq!(count(&server, &health).await, 1, "its health is untouched");
    let attempts = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM attempts WHERE webhook_id = '{throttled}' \
         AND attempt_number = 1 AND status_code = 200"
    );
    // Records land a moment after the receipts: wait for all of them.
    let expected = i64::try_from(EACH).expect("small");
    for _ in 0..500 {
        if count(&server, &attempts).await == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        count(&server, &attempts).await,
        expected,
        "one successful attempt each"
    );
    let all =
        format!("SELECT CAST(COUNT(*) AS TEXT) FROM attempts WHERE webhook_id = '{throttled}'");
    assert_eq!(count(&server, &all).await, expected, "and no other attempt");
    server.stop().await;
}

store_test!(a_rate_limit_is_set_shown_changed_and_removed_and_bounds_are_enforced);
async fn a_rate_limit_is_set_shown_changed_and_removed_and_bounds_are_enforced(backend: Backend) {
    let server = backend.start().await;
    let receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    let create = |limit: Value| {
        let server = &server;
        let body = json!({"url": receiver.url(), "rate_limit_per_second": limit});
        let path = format!("/v1/sites/{site}/webhooks");
        async move { server.call(Method::POST, &path, Some(body)).await }
    };
    for refused in [json!(0), json!(-1), json!(10_001)] {
        let got = create(refused.clone()).await;
        let message = crate::api::assert_error(&got, 422, "invalid_rate_limit");
        assert!(
            message.contains("between 1 and 10000"),
            "{refused}: {message}"
        );
    }
    for mistyped in [json!("fast"), json!(2.5)] {
        crate::api::assert_error(&create(mistyped).await, 422, "invalid_body");
    }
    let (status, created) = create(json!(50)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["rate_limit_per_second"], 50);
    let path = format!(
        "/v1/sites/{site}/webhooks/{}",
        created["id"].as_str().expect("id")
    );

    let patch = |body: Value| {
        let (server, path) = (&server, &path);
        async move { server.call(Method::PATCH, path, Some(body)).await }
    };
    let got = patch(json!({"rate_limit_per_second": 0})).await;
    crate::api::assert_error(&got, 422, "invalid_rate_limit");
    let (status, got) = patch(json!({"rate_limit_per_second": 7})).await;
    assert_eq!(
        (status, &got["rate_limit_per_second"]),
        (200, &json!(7)),
        "{got}"
    );
    let (status, got) = patch(json!({"description": "kept"})).await;
    assert_eq!(
        (status, &got["rate_limit_per_second"]),
        (200, &json!(7)),
        "absent: unchanged"
    );
    let (_, shown) = server.call(Method::GET, &path, None).await;
    assert_eq!(shown["rate_limit_per_second"], 7, "stored");
    let (status, got) = patch(json!({"rate_limit_per_second": null})).await;
    assert_eq!(
        (status, &got["rate_limit_per_second"]),
        (200, &Value::Null),
        "null removes it"
    );
    let (_, shown) = server.call(Method::GET, &path, None).await;
    assert_eq!(shown["rate_limit_per_second"], Value::Null);

    let (status, unlimited) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks"),
            Some(json!({"url": receiver.url()})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        unlimited["rate_limit_per_second"],
        Value::Null,
        "no limit by default"
    );
    server.stop().await;
}

store_test!(both_stores_space_a_webhooks_slots_alike);
/// The store's slots: the first at once, each next one a spacing after the one before
/// (less the moment between the two requests), another webhook's at once.
async fn both_stores_space_a_webhooks_slots_alike(backend: Backend) {
    let open = backend.open_store().await;
    let store = open.store.as_ref();
    let now = Timestamp::from_unix_ms(1_800_000_000_000);
    let (_, webhooks) = site_with_webhooks(store, now, 2).await;
    let limit = RateLimit::new(2).expect("limit");
    let spacing = Duration::from_micros(u64::try_from(limit.spacing().0).expect("positive"));
    let take = |i: usize| store.take_slot(webhooks[i], limit);
    assert_eq!(
        take(0).await.expect("slot"),
        Duration::ZERO,
        "idle: at once"
    );
    for n in 1..=2u32 {
        let wait = take(0).await.expect("slot");
        assert!(
            wait <= spacing * n && wait > spacing * n - spacing / 2,
            "slot {n} in {wait:?}, spacing {spacing:?}"
        );
    }
    assert_eq!(
        take(1).await.expect("slot"),
        Duration::ZERO,
        "each webhook its own"
    );
}

store_test!(a_claim_takes_a_seconds_worth_of_a_throttled_webhooks_backlog);
/// A claim leases at most N of a webhook limited to N per second (the rest stay queued,
/// unclaimed and uncounted), however high the concurrency limit.
async fn a_claim_takes_a_seconds_worth_of_a_throttled_webhooks_backlog(backend: Backend) {
    let open = backend.open_store().await;
    let store = open.store.as_ref();
    let t0 = Timestamp::from_unix_ms(1_800_000_000_000);
    let (site, webhooks) = site_with_webhooks(store, t0, 2).await;
    let mut throttled = store
        .get_webhook(site, webhooks[0])
        .await
        .expect("read")
        .expect("webhook");
    throttled.rate_limit = Some(RateLimit::new(3).expect("limit"));
    assert!(store.update_webhook(&throttled).await.expect("update"));
    for i in 0..5 {
        ingest_at(store, site, t0 + Duration::from_millis(i), None).await;
    }
    let claim = Claim {
        now: t0 + Duration::from_secs(1),
        lease: Duration::from_secs(60),
        limit: 100,
        per_webhook: 16,
        per_site: 100,
        leases_per_request: 1,
        settling: Vec::new(),
    };
    let claimed = store.claim_due(&claim).await.expect("claim");
    let of = |w: WebhookId| claimed.iter().filter(|d| d.webhook.id == w).count();
    assert_eq!(of(webhooks[0]), 3, "3 per second: 3 in flight");
    assert_eq!(of(webhooks[1]), 5, "the unlimited webhook's whole backlog");
    assert!(
        claimed
            .iter()
            .all(|d| d.webhook.id != webhooks[0] || d.webhook.rate_limit.is_some()),
        "the claimed webhook carries its limit"
    );
    let again = store.claim_due(&claim).await.expect("claim");
    assert!(
        again.is_empty(),
        "none more while those are in flight: {again:?}"
    );
}

/// Two nodes on one PostgreSQL database, each sending half of the events and each
/// claiming and sending deliveries of the one throttled webhook: they share its slots.
#[tokio::test]
async fn two_postgres_nodes_share_one_throttle() {
    let Some(db) = TestDatabase::create("two_postgres_nodes_share_one_throttle").await else {
        return;
    };
    let key = MainKey::generate();
    let config = || {
        let mut config = pg_config(&db, &key);
        config.delivery.poll_interval = NO_POLL;
        config
    };
    let nodes = [start_node(config()).await, start_node(config()).await];
    let (mut receiver, _stop) = receiver_apart();
    let site = nodes[0].create_site().await;
    webhook(
        &nodes[1],
        &site,
        &receiver,
        json!({"rate_limit_per_second": PER_SECOND}),
    )
    .await;

    let began = Instant::now();
    send(&[&nodes[0], &nodes[1]], &site, EVENTS).await;
    let times = receive(&mut receiver, EVENTS).await;
    check_and_report("2 PostgreSQL nodes", began, &times);
    assert!(
        receiver
            .try_next(Duration::from_millis(300))
            .await
            .is_none()
    );
    // Both nodes sent some of them (each is handed what it ingests, and claims).
    for node in &nodes {
        let text = crate::metrics::scrape_text(&node.base).await;
        let sent = text
            .lines()
            .find(|l| l.starts_with(r#"fullup_attempts_total{status_class="2xx"}"#))
            .and_then(|l| l.rsplit_once(' '))
            .map_or(0.0, |(_, n)| n.parse::<f64>().expect("a number"));
        println!(
            "throttle 2 PostgreSQL nodes: node {} sent {sent}",
            node.base
        );
        assert!(sent > 0.0, "node {} sent none", node.base);
    }
    for node in nodes {
        node.stop().await;
    }
}
