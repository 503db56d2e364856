//! Faulty networks (issue #17, item 2): `fullup serve` delivers through a proxy that
//! injects latency with jitter, resets before and after the request, stalls past the
//! request timeout and cuts answers in half ([`FaultyProxy`]). Once the faults stop,
//! every accepted event must arrive verified at the receiver; no attempt may outlive
//! the request timeout by more than a second (in the attempt log, and as the proxy
//! sees its stalled connections close); every failed attempt must say what happened in
//! one of the kinds these faults cause; the service's peak RSS must stay bounded.
//!
//! Small scale by default (CI); `FULLUP_RELIABILITY=full` runs the full scale. The
//! seed of the faults is printed; `FULLUP_FAULT_SEED` replays it (the draws, not the
//! timing).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fullup_testkit::postgres::TestDatabase;
use futures::StreamExt as _;
use serde_json::Value;

use crate::support_faults::{FaultyProxy, SEED_ENV};
use crate::support_ingest::{Ingest, join_clients, spawn_clients, wait_for_all};
use crate::support_receiver::RecordingReceiver;
use crate::support_server::{
    PEAK_RSS_LIMIT, SHORT_REQUEST_TIMEOUT, Server, TIMEOUT_GRACE, add_webhook,
    assert_within_timeout, create_site, fetch,
};

/// Forty retries a second apart, more than a fault phase can use up (each attempt
/// fails with odds under 2 in 3, so one delivery's 41 all failing is a 1 in 10^7 chance).
const RETRIES: &str = "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,\
                       1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s";
/// The error kinds the faults cause: a stall or a long latency is `timeout`; a reset
/// is `connect` when it lands while the connection is being made, `other` later, as is
/// an answer cut in its headers.
const EXPECTED_KINDS: [&str; 3] = ["timeout", "connect", "other"];
/// Words one of which the message of a `connect` or `other` attempt holds: a reset,
/// a close, or hyper's "connection was not ready" (a kept-alive connection the proxy
/// closed just as the request was given to it).
const CONNECTION_LOST: [&str; 5] = ["reset", "closed", "incomplete", "broken pipe", "not ready"];
/// Concurrent ingest clients.
const CLIENTS: usize = 16;
/// Largest page of a list route.
const PAGE: usize = 250;
/// Attempt logs read at once.
const READERS: usize = 8;

/// How big a run is.
#[derive(Debug, Clone, Copy)]
struct Scale {
    /// Events ingested, all while the faults are on.
    events: usize,
    /// How long the faults last, from the webhook's creation.
    faults_for: Duration,
    /// Bound on every accepted event arriving once the faults stop, and again on
    /// every delivery being recorded.
    settle_within: Duration,
}

impl Scale {
    /// Full scale when `FULLUP_RELIABILITY=full`, else the small one CI runs.
    fn from_env() -> Self {
        fullup_testkit::Scale::from_env().pick(
            Self {
                events: 300,
                faults_for: Duration::from_secs(10),
                settle_within: Duration::from_secs(60),
            },
            Self {
                events: 10_000,
                faults_for: Duration::from_secs(180),
                settle_within: Duration::from_secs(300),
            },
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_delivers_every_event_once_the_faults_stop_and_no_attempt_outlives_its_timeout() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    run("sqlite", &database_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_delivers_every_event_once_the_faults_stop_and_no_attempt_outlives_its_timeout() {
    let Some(db) = TestDatabase::create("faulty_network::postgres_delivers_every_event").await
    else {
        return;
    };
    run("postgres", &db.url).await;
}

/// The whole run on `database_url`; `store` names it in the figures.
async fn run(store: &str, database_url: &str) {
    let started = Instant::now();
    let scale = Scale::from_env();
    let receiver = RecordingReceiver::start().await;
    let proxy = FaultyProxy::start(receiver.addr(), FaultyProxy::seed_from_env()).await;
    println!(
        "faulty_network {store}: {scale:?}, seed {} (set {SEED_ENV} to replay)",
        proxy.seed()
    );
    let server = Server::start_quick_to_give_up(database_url, RETRIES).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let site = create_site(&client, &server.base).await;
    add_webhook(&client, &server.base, &site, &proxy.url(), &receiver).await;
    let faults_end = tokio::time::Instant::now() + scale.faults_for;

    let ingest = Ingest::new(client.clone(), site.clone(), scale.events);
    let stopped = join_clients(spawn_clients(&ingest, &server.base, CLIENTS)).await;
    assert_eq!(stopped, 0, "ingest failed in transport");
    let accepted = ingest.accepted_ids();
    assert_eq!(
        accepted.len(),
        scale.events,
        "every event has one accepted id"
    );
    let ingested_in = started.elapsed();
    tokio::time::sleep_until(faults_end).await;
    let delivered_in_faults = receiver.received().len();
    proxy.stop_faults();
    let faults_stopped = Instant::now();

    wait_for_all(&receiver, &accepted, scale.settle_within).await;
    let all_arrived_in = faults_stopped.elapsed();
    assert_eq!(
        receiver.failures(),
        0,
        "deliveries whose signature did not verify"
    );
    assert_eq!(receiver.received(), accepted, "events nobody sent arrived");
    let deliveries = settled_deliveries(&client, &server.base, &site, scale.settle_within).await;
    assert_eq!(deliveries.len(), scale.events, "one delivery per event");
    let log = read_attempt_logs(&client, &server.base, &site, &deliveries).await;
    let peak_rss = server.peak_rss_bytes();

    println!(
        "faulty_network {store}: {} events ingested in {ingested_in:.1?}, {delivered_in_faults} \
         delivered during {:?} of faults, the rest within {all_arrived_in:.1?} after; \
         {} deliveries at the receiver ({} duplicates), lost 0",
        scale.events,
        scale.faults_for,
        receiver.deliveries(),
        receiver.duplicates()
    );
    println!(
        "faulty_network {store}: faults injected (connections): {:?}",
        proxy.injected()
    );
    println!(
        "faulty_network {store}: {} attempts, failed by kind {:?}; longest attempt {} ms, \
         longest stalled connection {} ms (timeout {SHORT_REQUEST_TIMEOUT:?}); peak RSS {:.1} MiB; \
         {:.1?} in all",
        log.attempts,
        log.kinds,
        log.longest_ms,
        proxy.longest_stall().as_millis(),
        peak_rss as f64 / (1024.0 * 1024.0),
        started.elapsed()
    );
    println!(
        "faulty_network {store}: messages of `connect` and `other`: {:?}",
        log.lost_messages
    );

    assert!(
        log.unexpected.is_empty(),
        "{} attempts failed in a way these faults do not explain (expected kinds \
         {EXPECTED_KINDS:?}, a lost connection's message saying one of {CONNECTION_LOST:?}), \
         e.g. {}",
        log.unexpected.len(),
        log.unexpected[0]
    );

    for (kind, count) in proxy.injected() {
        assert!(count > 0, "the proxy never injected {kind}");
    }
    assert!(
        log.kinds.contains_key("timeout"),
        "no attempt timed out: nothing tested the bound"
    );
    assert_within_timeout("faulty_network", log.longest_ms);
    let bound = SHORT_REQUEST_TIMEOUT + TIMEOUT_GRACE;
    assert_eq!(
        proxy.stalls_past_limit(),
        0,
        "the sender never closed a stalled connection"
    );
    assert!(
        proxy.longest_stall() <= bound,
        "a stalled connection stayed open {:?}, past the {SHORT_REQUEST_TIMEOUT:?} timeout by more \
         than {TIMEOUT_GRACE:?}",
        proxy.longest_stall()
    );
    assert!(
        peak_rss <= PEAK_RSS_LIMIT,
        "peak RSS {peak_rss} bytes, over {PEAK_RSS_LIMIT}"
    );
}

/// Waits, at most `within`, until no delivery of `site` is pending; requires every one
/// `succeeded` then and returns their ids.
async fn settled_deliveries(
    client: &reqwest::Client,
    base: &str,
    site: &str,
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    let pending = format!("{base}/v1/sites/{site}/deliveries?state=pending&limit=1");
    while !fetch(client, pending.clone()).await["data"]
        .as_array()
        .expect("a list")
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "deliveries still pending after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/sites/{site}/deliveries?limit={PAGE}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page = fetch(client, url).await;
        for delivery in page["data"].as_array().expect("a list") {
            assert_eq!(delivery["state"], "succeeded", "{delivery}");
            ids.push(delivery["id"].as_str().expect("a delivery id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

/// What the attempt logs hold.
#[derive(Debug, Default)]
struct AttemptLog {
    /// Attempts in all.
    attempts: u64,
    /// Failed attempts per error kind (a 2xx whose body was cut counts under its kind).
    kinds: BTreeMap<String, u64>,
    /// The longest attempt's `duration_ms`.
    longest_ms: u64,
    /// The distinct messages of `connect` and `other` attempts, with their counts.
    lost_messages: BTreeMap<String, u64>,
    /// Failed attempts whose kind is not expected, or whose message does not say what
    /// their kind should.
    unexpected: Vec<Value>,
}

/// Reads every delivery's attempt log.
async fn read_attempt_logs(
    client: &reqwest::Client,
    base: &str,
    site: &str,
    deliveries: &[String],
) -> AttemptLog {
    let mut logs = futures::stream::iter(deliveries)
        .map(|id| {
            fetch(
                client,
                format!("{base}/v1/sites/{site}/deliveries/{id}/attempts?limit={PAGE}"),
            )
        })
        .buffer_unordered(READERS);
    let mut log = AttemptLog::default();
    while let Some(page) = logs.next().await {
        for attempt in page["data"].as_array().expect("a list") {
            add_attempt(&mut log, attempt);
        }
    }
    log
}

fn add_attempt(log: &mut AttemptLog, attempt: &Value) {
    log.attempts += 1;
    let duration = attempt["duration_ms"].as_u64().expect("a duration");
    log.longest_ms = log.longest_ms.max(duration);
    let Some(kind) = attempt["error_kind"].as_str() else {
        return;
    };
    *log.kinds.entry(kind.to_owned()).or_default() += 1;
    let message = attempt["error_message"].as_str().unwrap_or_default();
    let expected = match kind {
        "timeout" => true,
        "connect" | "other" => {
            *log.lost_messages.entry(message.to_owned()).or_default() += 1;
            let lowercase = message.to_ascii_lowercase();
            CONNECTION_LOST.iter().any(|word| lowercase.contains(word))
        }
        _ => false,
    };
    if !expected {
        log.unexpected.push(attempt.clone());
    }
}
