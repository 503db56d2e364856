//! Graceful shutdown (issue #17, item 7): at the signal the service stops claiming and
//! stops accepting connections; the attempts in flight get the shutdown timeout to
//! finish; those still running then are stopped and their deliveries given back at
//! once; after a restart nothing that finished is delivered again and everything given
//! back or left queued is delivered.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::support::{Backend, TestServer, store_test};

/// Longest the test waits for the service to stop or deliver; only a broken build
/// waits this long (the drain under test is 3 s, the request timeout 300 s).
const GUARD: Duration = Duration::from_secs(60);

/// A receiver that holds every request until its gate opens, then answers 200. It
/// reports each request's `webhook-id` (the event) and `fullup-attempt`.
struct Gate {
    addr: SocketAddr,
    open: watch::Sender<bool>,
    seen: mpsc::UnboundedReceiver<(String, String)>,
    task: tokio::task::JoinHandle<()>,
}

impl Gate {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (open, gate) = watch::channel(false);
        let (tx, seen) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let (mut gate, tx) = (gate.clone(), tx.clone());
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let _ = tx.send((header("webhook-id"), header("fullup-attempt")));
                let _ = gate.wait_for(|open| *open).await;
                "ok"
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            open,
            seen,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn open(&self) {
        self.open.send_replace(true);
    }

    /// The next `n` requests: `(event id, attempt header)`.
    async fn next(&mut self, n: usize) -> Vec<(String, String)> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let request = tokio::time::timeout(GUARD, self.seen.recv())
                .await
                .unwrap_or_else(|_| panic!("a request in time: {} of {n}", got.len()))
                .expect("receiver running");
            got.push(request);
        }
        got
    }

    /// The requests that arrived and were not taken yet.
    fn arrived(&mut self) -> Vec<(String, String)> {
        std::iter::from_fn(|| self.seen.try_recv().ok()).collect()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until the API refuses connections: the signal has been taken.
async fn until_refused(server: &TestServer) {
    let client = reqwest::Client::new();
    for _ in 0..3000 {
        if client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the API still accepts connections after the shutdown signal");
}

/// Events sent to `site`, in order.
async fn send(server: &TestServer, site: &str, n: usize, from: usize) -> Vec<String> {
    let mut events = Vec::with_capacity(n);
    for i in from..from + n {
        events.push(
            server
                .send_event(site, "order.created", json!({"n": i}))
                .await,
        );
    }
    events
}

/// How often each event arrived.
fn counts(requests: &[(String, String)]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for (event, _) in requests {
        *counts.entry(event.clone()).or_default() += 1;
    }
    counts
}

store_test!(sigterm_with_100_in_flight_finishes_or_gives_back_each_and_claims_nothing_new);
/// 100 attempts in flight (50 events × 2 webhooks, 100 workers) and 10 more events
/// queued behind them; the signal; then webhook A's receiver answers, webhook B's never
/// does. The service exits with A's 50 recorded and B's 50 given back at the 3 s drain
/// (its request timeout is 300 s, its lease 332 s), and no queued delivery reached a
/// receiver. Restarted: A gets exactly the 10 queued events, B the 50 given back and
/// the 10 queued, each once, and every delivery succeeds.
async fn sigterm_with_100_in_flight_finishes_or_gives_back_each_and_claims_nothing_new(
    backend: Backend,
) {
    let (mut a, mut b) = (Gate::start().await, Gate::start().await);
    let mut server = backend
        .start_with(|c| {
            c.delivery.workers = 100;
            c.delivery.per_webhook_concurrency = 100;
            c.delivery.per_site_concurrency = 100;
            c.delivery.request_timeout = Duration::from_secs(300);
            c.shutdown_timeout = Duration::from_secs(3);
        })
        .await;
    let site = server.create_site().await;
    server.create_webhook(&site, &a.url(), &["*"]).await;
    server.create_webhook(&site, &b.url(), &["*"]).await;

    let first = send(&server, &site, 50, 0).await;
    let (in_flight_a, in_flight_b) = (a.next(50).await, b.next(50).await);
    assert!(
        in_flight_a
            .iter()
            .chain(&in_flight_b)
            .all(|(_, attempt)| attempt == "1")
    );
    let queued = send(&server, &site, 10, 50).await;

    let signalled = std::time::Instant::now();
    server.signal_stop();
    until_refused(&server).await;
    a.open();
    tokio::time::timeout(GUARD, server.wait_stopped())
        .await
        .expect("the service exits at its drain timeout, not at its request timeout");
    println!(
        "exited {:.2} s after the signal (drain 3 s, request timeout 300 s)",
        signalled.elapsed().as_secs_f64()
    );
    assert!(
        a.arrived().is_empty() && b.arrived().is_empty(),
        "nothing was claimed after the signal"
    );

    b.open();
    let server = server.restart_with(|_| {}).await;
    let mut after_a = a.next(10).await;
    let after_b = b.next(60).await;
    for event in first.iter().chain(&queued) {
        server.wait_for_state(&site, event, "succeeded").await;
        let deliveries = server.deliveries(&site, &format!("event_id={event}")).await;
        assert!(
            deliveries.iter().all(|d| d["state"] == "succeeded"),
            "{deliveries:?}"
        );
    }
    // Attempt bookkeeping (item 9): B's attempts cut at shutdown count, their resent
    // copies are attempt 2 and the log shows the lost one; nothing else was attempted twice.
    let given_back = server
        .deliveries(&site, &format!("event_id={}", first[0]))
        .await
        .into_iter()
        .find(|d| d["attempt_count"] == 2)
        .expect("B's delivery of the first event, attempted twice");
    let attempts = server
        .attempts(&site, given_back["id"].as_str().expect("id"))
        .await;
    let log: Vec<(&Value, &Value, &Value)> = attempts
        .iter()
        .map(|a| (&a["attempt_number"], &a["status_code"], &a["error_kind"]))
        .collect();
    assert_eq!(
        log,
        [
            (&json!(2), &json!(200), &Value::Null),
            (&json!(1), &Value::Null, &json!("interrupted")),
        ],
        "{attempts:?}"
    );
    server.stop().await;
    let first_set: std::collections::HashSet<&String> = first.iter().collect();
    assert!(
        after_a.iter().all(|(_, attempt)| attempt == "1"),
        "{after_a:?}"
    );
    for (event, attempt) in &after_b {
        let expected = if first_set.contains(event) { "2" } else { "1" };
        assert_eq!(attempt, expected, "B's copy of {event}");
    }
    after_a.extend(a.arrived());
    let (counts_a, counts_b) = (counts(&after_a), counts(&[after_b, b.arrived()].concat()));
    let expected_a: HashMap<String, usize> = queued.iter().map(|e| (e.clone(), 1)).collect();
    assert_eq!(counts_a, expected_a, "A: only the queued events, once each");
    let expected_b: HashMap<String, usize> = first
        .iter()
        .chain(&queued)
        .map(|e| (e.clone(), 1))
        .collect();
    assert_eq!(
        counts_b, expected_b,
        "B: the given-back and the queued, once each"
    );
}
