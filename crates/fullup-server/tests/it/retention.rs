//! Retention (issue 15, item 5), on both stores: old events are pruned with their
//! deliveries and attempts, in batches, while recent ones and unfinished ones stay; a
//! site's own retention wins over the server's; what is pruned is counted; a deleted
//! webhook's history stays readable, its pending deliveries cancelled, until retention
//! removes it; on PostgreSQL, a site another node is pruning is skipped.
//!
//! Old rows are written straight to the database with ids of their age
//! (`EventId::from_parts`): ids made by the service come from one process-wide
//! generator that never goes back, so an event ingested "40 days ago" by a test's clock
//! may carry a later id when another test ran its clock ahead.

use std::time::Duration;

use fullup_server::domain::canonical_json::canonicalize;
use fullup_server::domain::event_type::EventType;
use fullup_server::domain::ids::{AttemptId, DeliveryId, EventId};
use fullup_server::domain::time::Timestamp;
use fullup_server::store::{NewEvent, PruneBatch};
use reqwest::Method;
use serde_json::json;
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use crate::support::records::site_with_webhooks;
use crate::support::server::manual_clock;
use crate::support::{Backend, TestReceiver, TestServer, store_test};

const DAY_MS: i64 = 86_400_000;
const WAIT: Duration = Duration::from_secs(10);

/// A server with a manual clock pruning every 20 ms in batches of `batch` events, its
/// default retention `default` (None: off).
async fn start(backend: Backend, default: Option<Duration>, batch: u32) -> TestServer {
    let clock = manual_clock();
    backend
        .start_with(|c| {
            c.clock = clock;
            c.retention.default = default;
            c.retention.interval = Duration::from_millis(20);
            c.retention.batch = batch;
            c.retention.pause = Duration::from_millis(1);
        })
        .await
}

/// The test clock's time (`manual_clock`), as Unix ms.
fn now_ms() -> i64 {
    use fullup_server::domain::clock::Clock as _;
    manual_clock().now().unix_ms()
}

/// One event of `site` created `days_ago` (number `n` of that time), with its delivery
/// to `webhook` in `state` and `attempts` attempts, written in one transaction.
struct Seed<'a> {
    site: &'a str,
    webhook: &'a str,
    days_ago: i64,
    n: u128,
    state: &'a str,
    attempts: u32,
}

impl Seed<'_> {
    /// The SQL of this seed and its event's and delivery's ids.
    fn sql(&self, postgres: bool) -> (String, String, String) {
        let at = now_ms() - self.days_ago * DAY_MS;
        let time = Timestamp::from_unix_ms(at);
        let event = EventId::from_parts(time, self.n).to_string();
        let delivery = DeliveryId::from_parts(time, self.n).to_string();
        let hash = if postgres {
            "decode('00', 'hex')"
        } else {
            "zeroblob(1)"
        };
        let (site, webhook, state) = (self.site, self.webhook, self.state);
        let mut sql = format!(
            "INSERT INTO events (id, site_id, type, payload, created_at, idempotency_key, request_hash) \
             VALUES ('{event}', '{site}', 'a.b', '{{}}', {at}, NULL, {hash}); \
             INSERT INTO deliveries (id, site_id, event_id, webhook_id, state, attempt_count, \
             next_attempt_at, created_at, updated_at) VALUES ('{delivery}', '{site}', '{event}', \
             '{webhook}', '{state}', {}, {at}, {at}, {at});",
            self.attempts
        );
        for i in 0..self.attempts {
            let attempt = AttemptId::from_parts(time, self.n * 100 + u128::from(i));
            sql.push_str(&format!(
                "INSERT INTO attempts (id, delivery_id, webhook_id, attempt_number, started_at, \
                 duration_ms, status_code, error_kind, error_message, response_body) VALUES \
                 ('{attempt}', '{delivery}', '{webhook}', {}, {at}, 3, 204, NULL, NULL, '');",
                i + 1
            ));
        }
        (sql, event, delivery)
    }
}

/// Writes `seeds` in one transaction; returns each one's event and delivery ids.
async fn seed(server: &TestServer, seeds: &[Seed<'_>]) -> Vec<(String, String)> {
    let postgres = server.database_url().starts_with("postgres");
    let mut script = String::from("BEGIN;");
    let mut ids = Vec::new();
    for s in seeds {
        let (sql, event, delivery) = s.sql(postgres);
        script.push_str(&sql);
        ids.push((event, delivery));
    }
    script.push_str("COMMIT;");
    server.execute_script(&script).await;
    ids
}

/// `fullup_pruned_rows_total{table}`.
async fn pruned(server: &TestServer, table: &str) -> f64 {
    crate::readiness::sample(
        server,
        &format!("fullup_pruned_rows_total{{table=\"{table}\"}}"),
    )
    .await
}

/// Waits until `fullup_pruned_rows_total{table="events"}` reaches `events`.
async fn wait_pruned(server: &TestServer, events: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = pruned(server, "events").await;
        if seen >= events {
            assert_eq!(seen, events, "pruned more events than expected");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {seen} of {events} events pruned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A site (with `retention_days`, if any) and a paused webhook of it, which nothing
/// attempts: the seeded pending deliveries stay pending.
async fn site_and_paused_webhook(
    server: &TestServer,
    retention_days: Option<i64>,
) -> (String, String) {
    let (status, body) = server
        .call(
            Method::POST,
            "/v1/sites",
            Some(json!({"name": "retention", "retention_days": retention_days})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["retention_days"], json!(retention_days));
    let site = body["id"].as_str().expect("site id").to_owned();
    let (webhook, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/hook", &["*"])
        .await;
    let (status, body) = server
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}/webhooks/{webhook}"),
            Some(json!({"paused": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (site, webhook)
}

async fn status_of(server: &TestServer, path: &str) -> u16 {
    server.call(Method::GET, path, None).await.0
}

/// Sets the `retention_days` of `site` to `days` (a number, null, or something to
/// refuse); the answer's status and body.
async fn set_retention(
    server: &TestServer,
    site: &str,
    days: serde_json::Value,
) -> (u16, serde_json::Value) {
    server
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}"),
            Some(json!({ "retention_days": days })),
        )
        .await
}

store_test!(old_history_is_pruned_in_batches_and_recent_and_unfinished_events_kept);
/// Ten old finished events (two attempts each), pruned in batches of two; an old event
/// whose delivery is pending and a recent one are kept. Nothing is pruned before the
/// site has a retention (the server's default is off).
async fn old_history_is_pruned_in_batches_and_recent_and_unfinished_events_kept(backend: Backend) {
    let server = start(backend, None, 2).await;
    let (site, webhook) = site_and_paused_webhook(&server, None).await;
    let old = |n, state| Seed {
        site: &site,
        webhook: &webhook,
        days_ago: 40,
        n,
        state,
        attempts: 2,
    };
    let mut seeds: Vec<Seed<'_>> = (1..=10).map(|n| old(n, "succeeded")).collect();
    seeds.push(Seed {
        attempts: 0,
        ..old(11, "pending")
    });
    seeds.push(Seed {
        days_ago: 1,
        ..old(12, "failed")
    });
    let ids = seed(&server, &seeds).await;
    let (status, body) = set_retention(&server, &site, json!(30)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retention_days"], 30);

    wait_pruned(&server, 10.0).await;
    assert_eq!(pruned(&server, "deliveries").await, 10.0);
    assert_eq!(pruned(&server, "attempts").await, 20.0);
    for (event, delivery) in &ids[..10] {
        assert_eq!(
            status_of(&server, &format!("/v1/sites/{site}/events/{event}")).await,
            404
        );
        let path = format!("/v1/sites/{site}/deliveries/{delivery}");
        assert_eq!(status_of(&server, &path).await, 404);
    }
    for (event, delivery) in &ids[10..] {
        assert_eq!(
            status_of(&server, &format!("/v1/sites/{site}/events/{event}")).await,
            200
        );
        let path = format!("/v1/sites/{site}/deliveries/{delivery}");
        assert_eq!(status_of(&server, &path).await, 200);
    }
    let recent = &ids[11].1;
    assert_eq!(
        server.attempts(&site, recent).await.len(),
        2,
        "a recent delivery keeps its attempts"
    );
}

store_test!(a_site_retention_wins_over_the_server_default);
/// The server keeps 30 days: a 45-day-old event of a site that keeps 60 stays, one of
/// a site with no retention of its own goes, and a 10-day-old one of a site that keeps
/// 7 goes too. Setting a site's retention back to null returns it to the default.
async fn a_site_retention_wins_over_the_server_default(backend: Backend) {
    let server = start(backend, Some(Duration::from_secs(30 * 86_400)), 200).await;
    let (longer, longer_hook) = site_and_paused_webhook(&server, Some(60)).await;
    let (default, default_hook) = site_and_paused_webhook(&server, None).await;
    let (shorter, shorter_hook) = site_and_paused_webhook(&server, Some(7)).await;
    let seeds = [
        Seed {
            site: &longer,
            webhook: &longer_hook,
            days_ago: 45,
            n: 1,
            state: "succeeded",
            attempts: 1,
        },
        Seed {
            site: &default,
            webhook: &default_hook,
            days_ago: 45,
            n: 2,
            state: "succeeded",
            attempts: 1,
        },
        Seed {
            site: &shorter,
            webhook: &shorter_hook,
            days_ago: 10,
            n: 3,
            state: "failed",
            attempts: 1,
        },
    ];
    let ids = seed(&server, &seeds).await;
    wait_pruned(&server, 2.0).await;
    let kept = format!("/v1/sites/{longer}/events/{}", ids[0].0);
    assert_eq!(status_of(&server, &kept).await, 200, "60 days win over 30");
    let gone = format!("/v1/sites/{default}/events/{}", ids[1].0);
    assert_eq!(status_of(&server, &gone).await, 404, "the default applies");
    let gone = format!("/v1/sites/{shorter}/events/{}", ids[2].0);
    assert_eq!(status_of(&server, &gone).await, 404, "7 days win over 30");

    let (status, body) = set_retention(&server, &longer, json!(null)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retention_days"], json!(null));
    wait_pruned(&server, 3.0).await;
    assert_eq!(status_of(&server, &kept).await, 404, "back to the default");

    for bad in [json!(0), json!(3651), json!(-1), json!("30d")] {
        let (status, body) = set_retention(&server, &longer, bad.clone()).await;
        assert!(matches!(status, 400 | 422), "{bad}: {status} {body}");
    }
}

store_test!(a_deleted_webhook_keeps_its_history_until_retention_removes_it);
/// A webhook with a delivered event and a pending one (paused) is deleted: it is gone
/// from the API (404, not listed), its delivered event's delivery and attempt stay
/// readable and show it deleted, its pending delivery is cancelled and cannot be
/// retried, and nothing more reaches its receiver. Once the site's retention passes,
/// the history and the webhook's row go, counted. A webhook that had no deliveries is
/// removed at once.
async fn a_deleted_webhook_keeps_its_history_until_retention_removes_it(backend: Backend) {
    let clock = manual_clock();
    let server = backend
        .start_with(|c| {
            c.clock = clock.clone();
            c.retention.interval = Duration::from_millis(20);
        })
        .await;
    let mut receiver = TestReceiver::start().await;
    receiver.set_clock(clock.clone());
    let site = server.create_site().await;
    let (webhook, secret) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    receiver.expect_secret(secret);
    let delivered = server.send_event(&site, "a.b", json!({"n": 1})).await;
    server.wait_for_state(&site, &delivered, "succeeded").await;
    receiver.next(WAIT).await;
    let hook = format!("/v1/sites/{site}/webhooks/{webhook}");
    let (status, body) = server
        .call(Method::PATCH, &hook, Some(json!({"paused": true})))
        .await;
    assert_eq!(status, 200, "{body}");
    let waiting = server.send_event(&site, "a.b", json!({"n": 2})).await;
    server.wait_for_state(&site, &waiting, "pending").await;
    let (unused, _) = server
        .create_webhook(&site, &receiver.url(), &["none.ever"])
        .await;

    assert_eq!(server.call(Method::DELETE, &hook, None).await.0, 204);
    let unused_path = format!("/v1/sites/{site}/webhooks/{unused}");
    assert_eq!(server.call(Method::DELETE, &unused_path, None).await.0, 204);
    assert_eq!(status_of(&server, &hook).await, 404);
    assert_eq!(server.call(Method::DELETE, &hook, None).await.0, 404);
    let (status, _) = server
        .call(Method::PATCH, &hook, Some(json!({"paused": false})))
        .await;
    assert_eq!(status, 404, "a deleted webhook cannot be resumed");
    let (_, listed) = server
        .call(Method::GET, &format!("/v1/sites/{site}/webhooks"), None)
        .await;
    assert_eq!(listed["data"], json!([]), "{listed}");
    assert_eq!(
        server
            .query_text(&format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM webhooks WHERE id IN ('{webhook}', '{unused}')"
            ))
            .await,
        "1",
        "the row of the webhook with history is kept, the other one is gone"
    );

    let done = server
        .deliveries(&site, &format!("event_id={delivered}"))
        .await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["state"], "succeeded");
    assert_eq!(done[0]["webhook_deleted"], true);
    let id = done[0]["id"].as_str().expect("id");
    assert_eq!(
        server.attempts(&site, id).await.len(),
        1,
        "its attempt stays readable"
    );
    let (status, one) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/deliveries/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["webhook_deleted"], true);

    let cancelled = server
        .deliveries(&site, &format!("event_id={waiting}"))
        .await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["state"], "cancelled");
    assert_eq!(cancelled[0]["webhook_deleted"], true);
    let retry = format!(
        "/v1/sites/{site}/deliveries/{}/retry",
        cancelled[0]["id"].as_str().expect("id")
    );
    let (status, body) = server.call(Method::POST, &retry, None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "webhook_deleted", "{body}");
    assert!(
        receiver
            .try_next(Duration::from_millis(300))
            .await
            .is_none(),
        "a cancelled delivery is never attempted"
    );

    // Ten years on, with a retention of 30 days, all of it goes.
    clock.advance(Duration::from_secs(3650 * 86_400));
    let (status, body) = set_retention(&server, &site, json!(30)).await;
    assert_eq!(status, 200, "{body}");
    wait_pruned(&server, 2.0).await;
    assert_eq!(pruned(&server, "deliveries").await, 2.0);
    assert_eq!(pruned(&server, "attempts").await, 1.0);
    let deadline = tokio::time::Instant::now() + WAIT;
    while pruned(&server, "webhooks").await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the webhook row stays"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.deliveries(&site, "").await.is_empty());
    assert_eq!(
        server
            .query_text(&format!(
                "SELECT CAST(COUNT(*) AS TEXT) FROM webhooks WHERE id = '{webhook}'"
            ))
            .await,
        "0"
    );
}

/// Several nodes prune at once on PostgreSQL: a site whose prune lock another node
/// holds is skipped, untouched, and pruned once the lock is free.
#[tokio::test]
async fn a_site_another_node_is_pruning_is_skipped() {
    let test = "retention::a_site_another_node_is_pruning_is_skipped";
    let Some(backend) = Backend::postgres(test).await else {
        return;
    };
    let Backend::Postgres(db) = &backend else {
        unreachable!("a PostgreSQL backend");
    };
    let url = db.db.url.clone();
    let open = backend.open_store().await;
    let store = &*open.store;
    let now = Timestamp::from_unix_ms(now_ms());
    let old = now - Duration::from_secs(40 * 86_400);
    let (site, _) = site_with_webhooks(store, old, 0).await;
    let mut new = NewEvent::new(
        site,
        EventType::parse("a.b").expect("type"),
        &canonicalize(b"{}").expect("json"),
        old,
        None,
        None,
    );
    new.event.id = EventId::from_parts(old, 1);
    store.ingest(new).await.expect("ingest");
    let batch = PruneBatch {
        site,
        after: None,
        below: EventId::floor(now - Duration::from_secs(30 * 86_400)),
        limit: 10,
    };

    // The other node: the lock key of `store/postgres/prune.rs` ("prun", the site's hash).
    let mut other = PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql("BEGIN")
        .execute(&mut other)
        .await
        .expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock(1886549358, hashtext($1))")
        .bind(site.to_string())
        .execute(&mut other)
        .await
        .expect("lock");
    let skipped = store.prune(&batch).await.expect("prune");
    assert!(skipped.busy, "{skipped:?}");
    assert_eq!(skipped.events, 0);

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("rollback");
    let pruned = store.prune(&batch).await.expect("prune");
    assert!(!pruned.busy);
    assert_eq!((pruned.scanned, pruned.events), (1, 1), "{pruned:?}");
}
