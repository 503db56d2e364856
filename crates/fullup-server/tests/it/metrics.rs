//! `GET /metrics`: a known workload moves each counter by exactly what it did, on both
//! stores; the backlog gauges count what the store holds; and a real scrape passes
//! `promtool check metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fullup_server::domain::clock::ManualClock;
use fullup_server::domain::time::Timestamp;
use reqwest::Method;
use serde_json::json;

use crate::support::records::{ingest_at, site_with_webhooks};
use crate::support::server::{manual_clock, short_schedule};
use crate::support::time::AdvanceMs as _;
use crate::support::{Backend, TestReceiver, TestServer, store_test};

const WAIT: Duration = Duration::from_secs(10);

/// Every sample of a scrape: `name{labels}` → value.
type Samples = BTreeMap<String, f64>;

/// The scrape's text, asserting the status and content type.
pub async fn scrape_text(base: &str) -> String {
    let response = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.expect("body")
}

/// Parses the text format's sample lines.
fn parse(text: &str) -> Samples {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

async fn scrape(server: &TestServer) -> Samples {
    parse(&scrape_text(&server.base).await)
}

/// A server on `backend` with a manual clock and a 5 s first retry, and a receiver
/// subscribed to everything of a new site; returns (clock, server, receiver, site).
async fn setup(backend: Backend) -> (Arc<ManualClock>, TestServer, TestReceiver, String) {
    let clock = manual_clock();
    let server = backend
        .start_with(|c| {
            c.clock = clock.clone();
            c.delivery.retry = short_schedule();
            c.backlog_refresh = Duration::from_millis(20);
        })
        .await;
    let receiver = TestReceiver::start().await;
    receiver.set_clock(clock.clone());
    let site = server.create_site().await;
    let (_, secret) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    receiver.expect_secret(secret);
    (clock, server, receiver, site)
}

store_test!(a_workload_moves_each_counter_by_exactly_what_it_did);
/// Three events; the receiver fails the first one's first attempt (500) and takes
/// everything after. Every counter series moves by exactly that, and no other.
async fn a_workload_moves_each_counter_by_exactly_what_it_did(backend: Backend) {
    let (clock, server, mut receiver, site) = setup(backend).await;
    let before = scrape(&server).await;
    for series in [
        r#"fullup_deliveries_total{outcome="exhausted"}"#,
        r#"fullup_attempts_total{status_class="timeout"}"#,
        r#"fullup_store_errors_total{op="claim"}"#,
    ] {
        assert_eq!(before.get(series), Some(&0.0), "{series} is exported at 0");
    }

    receiver.set_status(500);
    let first = server
        .send_event(&site, "order.paid", json!({"n": 1}))
        .await;
    receiver.next(WAIT).await;
    server
        .wait_for_delivery(&site, &first, |d| d["attempt_count"] == 1)
        .await;
    receiver.set_status(200);
    clock.advance_ms(5_000);
    receiver.next(WAIT).await;
    server.wait_for_state(&site, &first, "succeeded").await;
    for n in 2..=3 {
        let event = server
            .send_event(&site, "order.paid", json!({"n": n}))
            .await;
        receiver.next(WAIT).await;
        server.wait_for_state(&site, &event, "succeeded").await;
    }

    let after = scrape(&server).await;
    let expected: BTreeMap<&str, f64> = [
        ("fullup_events_ingested_total", 3.0),
        (r#"fullup_deliveries_total{outcome="succeeded"}"#, 3.0),
        (
            r#"fullup_deliveries_total{outcome="failed_retryable"}"#,
            1.0,
        ),
        (r#"fullup_attempts_total{status_class="2xx"}"#, 3.0),
        (r#"fullup_attempts_total{status_class="5xx"}"#, 1.0),
        ("fullup_attempt_duration_seconds_count", 4.0),
        ("fullup_ingest_duration_seconds_count", 3.0),
    ]
    .into_iter()
    .collect();
    let counters = after
        .keys()
        .filter(|s| s.contains("_total") || s.ends_with("_count"));
    let mut moved = BTreeMap::new();
    for series in counters {
        let delta = after[series] - before.get(series).copied().unwrap_or(0.0);
        if delta != 0.0 {
            moved.insert(series.as_str(), delta);
        }
    }
    assert_eq!(moved, expected);
    server.stop().await;
}

store_test!(the_backlog_gauges_count_pending_deliveries_and_webhooks_by_state);
/// A paused webhook's deliveries are pending but not overdue; the gauges follow the
/// store within the refresh interval.
async fn the_backlog_gauges_count_pending_deliveries_and_webhooks_by_state(backend: Backend) {
    let (_clock, server, _receiver, site) = setup(backend).await;
    let (paused, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/never", &["*"])
        .await;
    let (status, body) = server
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}/webhooks/{paused}"),
            Some(json!({"paused": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (gone, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/gone", &["*"])
        .await;
    let (status, body) = server
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}/webhooks/{gone}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let event = server.send_event(&site, "order.paid", json!({})).await;
    server.wait_for_state(&site, &event, "succeeded").await;

    let want = [
        ("fullup_deliveries_pending", 1.0),
        ("fullup_oldest_pending_age_seconds", 0.0),
        (r#"fullup_webhooks{state="enabled"}"#, 1.0),
        (r#"fullup_webhooks{state="paused"}"#, 1.0),
        (r#"fullup_webhooks{state="disabled"}"#, 1.0),
    ];
    let mut last = Samples::new();
    for _ in 0..500 {
        last = scrape(&server).await;
        if want.iter().all(|(k, v)| last.get(*k) == Some(v)) {
            server.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the gauges never showed {want:?}; last scrape: {last:?}");
}

/// `promtool check metrics` (Prometheus' own linter) accepts a scrape taken after
/// deliveries, so every metric family, histogram included, has samples.
#[tokio::test]
async fn a_scrape_passes_promtool_check_metrics() {
    let test = "metrics::a_scrape_passes_promtool_check_metrics";
    if !fullup_testkit::require_tool("promtool", &["--version"], test) {
        return;
    }
    let (_clock, server, mut receiver, site) = setup(Backend::Sqlite).await;
    let event = server.send_event(&site, "order.paid", json!({})).await;
    receiver.next(WAIT).await;
    server.wait_for_state(&site, &event, "succeeded").await;
    let text = scrape_text(&server.base).await;
    server.stop().await;

    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the scrape");
    let out = child.wait_with_output().expect("promtool's answer");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{text}"
    );
}

const T0: Timestamp = Timestamp::from_unix_ms(1_800_000_000_000);

store_test!(the_backlog_query_skips_paused_webhooks_for_the_oldest_due);
/// The store's backlog: every pending delivery counts, but only enabled, unpaused
/// webhooks' deliveries can be overdue.
async fn the_backlog_query_skips_paused_webhooks_for_the_oldest_due(backend: Backend) {
    let open = backend.open_store().await;
    let store = &*open.store;
    let (site, hooks) = site_with_webhooks(store, T0, 2).await;
    ingest_at(store, site, T0, Some(hooks[0])).await;
    let later = T0 + Duration::from_millis(10);
    ingest_at(store, site, later, None).await;
    let backlog = store.backlog().await.expect("backlog");
    assert_eq!(backlog.pending, 3);
    assert_eq!(backlog.oldest_due, Some(T0));
    assert_eq!(
        (
            backlog.webhooks.enabled,
            backlog.webhooks.paused,
            backlog.webhooks.disabled
        ),
        (2, 0, 0)
    );

    let mut first = store
        .get_webhook(site, hooks[0])
        .await
        .expect("read")
        .expect("webhook");
    first.paused = true;
    assert!(store.update_webhook(&first).await.expect("pause"));
    let mut second = store
        .get_webhook(site, hooks[1])
        .await
        .expect("read")
        .expect("webhook");
    second.health.enabled = false;
    assert!(store.update_webhook(&second).await.expect("disable"));
    let backlog = store.backlog().await.expect("backlog");
    assert_eq!(backlog.pending, 3);
    assert_eq!(
        backlog.oldest_due, None,
        "paused and disabled: nothing overdue"
    );
    assert_eq!(
        (
            backlog.webhooks.enabled,
            backlog.webhooks.paused,
            backlog.webhooks.disabled
        ),
        (0, 1, 1)
    );
}

/// The alert rules `docs/operations.md` gives are valid Prometheus rules.
#[test]
fn the_documented_alert_rules_pass_promtool_check_rules() {
    let test = "metrics::the_documented_alert_rules_pass_promtool_check_rules";
    if !fullup_testkit::require_tool("promtool", &["--version"], test) {
        return;
    }
    let doc = include_str!("../../../../docs/operations.md");
    let (_, rest) = doc.split_once("```yaml\n").expect("a yaml block");
    let (rules, _) = rest.split_once("```").expect("its end");
    assert!(rules.contains("fullup_oldest_pending_age_seconds"));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, rules).expect("write the rules");
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--metrics-listen`: a second listener serves the metrics and the probes, and
/// nothing of the API.
#[tokio::test]
async fn the_metrics_listener_serves_the_metrics_and_not_the_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = crate::support::server::test_config(&dir);
    let api = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = fullup_server::app::Application::build(config, api)
        .await
        .expect("build")
        .with_metrics_listener(metrics);
    let base = format!(
        "http://{}",
        app.metrics_addr().expect("a listener").expect("addr")
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));

    let text = scrape_text(&base).await;
    assert!(text.contains("fullup_build_info{version=\""), "{text}");
    for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/v1/sites", 404)] {
        let got = reqwest::get(format!("{base}{path}")).await.expect(path);
        assert_eq!(got.status().as_u16(), status, "{path}");
    }
    let _ = stop.send(());
    running.await.expect("task").expect("clean stop");
}
