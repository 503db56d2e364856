//! Crash safety of `fullup serve`: SIGKILL while 2,000 events are being ingested and
//! delivered, restart on the same database, and every accepted event still arrives.
//!
//! Every event is sent with an `Idempotency-Key`, and an event whose POST failed with
//! the kill is sent again after the restart, so in the end all 2,000 have an accepted
//! id (an event committed just before the kill, whose 202 was lost, gets its original
//! id back). The receiver must then have verified each of those ids at least once and
//! no other id: at-least-once, nothing lost, nothing invented.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fullup_signature::Secret;
use serde_json::{Value, json};

use crate::support_receiver::RecordingReceiver;

/// Events to deliver, as the acceptance criterion says.
const EVENTS: usize = 2_000;
/// Concurrent ingest clients.
const CLIENTS: usize = 16;
/// Accepted events before the kill is allowed, so there is a backlog to lose.
const KILL_AFTER_ACCEPTED: usize = 500;
const ADMIN_TOKEN: &str = "crash-test-admin-token-0123456789";
/// A debug build on a busy 2-core machine can take a while to open the database.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on waiting for the moment to kill.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on waiting for every accepted event to arrive after the restart.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);
const LISTENING_PREFIX: &str = "fullup serve: listening on http://";

/// A running `fullup serve`; killed (SIGKILL) and reaped when dropped, so no exit path
/// of the test leaves it running.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts the binary on `database_url` and port 0, and reads the address it prints.
    async fn start(database_url: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fullup"))
            .args([
                "serve",
                "--database-url",
                database_url,
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--retry-schedule", "1s,1s,1s,1s,1s"])
            .args(["--allow-network", "127.0.0.0/8"])
            // Leases last connect + request timeout + 30 s. A 5-minute request timeout
            // makes them outlast the whole test, so only the restart's release of the
            // dead process's leases can get its claimed deliveries out in time.
            .args(["--request-timeout", "5m"])
            .env("FULLUP_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn `fullup serve`");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut server = Server {
            child,
            base: String::new(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            // Keep reading to the end so the child never writes into a closed pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let (Some(addr), Some(tx)) = (line.strip_prefix(LISTENING_PREFIX), tx.take()) {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = tokio::time::timeout(START_TIMEOUT, rx)
            .await
            .expect("`fullup serve` prints its address within the start timeout")
            .expect("`fullup serve` prints its address before exiting");
        server.base = format!("http://{addr}");
        server
    }

    /// Sends SIGKILL and waits until the process is gone.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL `fullup serve`");
        self.child.wait().expect("reap `fullup serve`");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The events still to be accepted and the ids of those that were, shared by the
/// ingest clients.
struct Ingest {
    client: reqwest::Client,
    site: String,
    pending: Mutex<Vec<usize>>,
    accepted: Mutex<HashMap<usize, String>>,
}

impl Ingest {
    fn new(client: reqwest::Client, site: String) -> Arc<Ingest> {
        Arc::new(Ingest {
            client,
            site,
            pending: Mutex::new((0..EVENTS).rev().collect()),
            accepted: Mutex::default(),
        })
    }

    fn accepted_count(&self) -> usize {
        self.accepted().len()
    }

    fn accepted_ids(&self) -> HashSet<String> {
        self.accepted().values().cloned().collect()
    }

    fn accepted(&self) -> std::sync::MutexGuard<'_, HashMap<usize, String>> {
        self.accepted.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Option<usize> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn put_back(&self, n: usize) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(n);
    }
}

/// Sends pending events to `base` until none are left (false) or a request fails in
/// transport, which only the kill causes (true); that event goes back to the queue.
async fn ingest_until_error(ingest: Arc<Ingest>, base: String) -> bool {
    let url = format!("{base}/v1/sites/{}/events", ingest.site);
    while let Some(n) = ingest.take() {
        let sent = ingest
            .client
            .post(&url)
            .bearer_auth(ADMIN_TOKEN)
            .header("idempotency-key", format!("crash-{n}"))
            .json(&json!({"type": "crash.test", "data": {"n": n}}))
            .send()
            .await;
        let answer = match sent {
            Ok(response) => (response.status().as_u16(), response.json::<Value>().await),
            Err(_) => {
                ingest.put_back(n);
                return true;
            }
        };
        match answer {
            (202, Ok(body)) => {
                let id = body["id"].as_str().expect("a 202 carries the event id");
                ingest.accepted().insert(n, id.to_owned());
            }
            (_, Err(_)) => {
                ingest.put_back(n);
                return true;
            }
            (status, Ok(body)) => panic!("event {n} got {status}, not 202: {body}"),
        }
    }
    false
}

fn spawn_clients(ingest: &Arc<Ingest>, base: &str) -> Vec<tokio::task::JoinHandle<bool>> {
    (0..CLIENTS)
        .map(|_| tokio::spawn(ingest_until_error(ingest.clone(), base.to_owned())))
        .collect()
}

/// How many clients stopped because a request failed in transport.
async fn join_clients(clients: Vec<tokio::task::JoinHandle<bool>>) -> usize {
    let mut stopped = 0;
    for client in clients {
        stopped += usize::from(client.await.expect("an ingest client panicked"));
    }
    stopped
}

/// An admin API call that must answer `expected`; returns the JSON answer.
async fn call(client: &reqwest::Client, url: String, body: Value, expected: u16) -> Value {
    let response = client
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("the API answers JSON");
    assert_eq!(status, expected, "POST {url}: {body}");
    body
}

/// Creates a site with a webhook to `receiver`; returns the site id.
async fn create_site_and_webhook(
    client: &reqwest::Client,
    base: &str,
    receiver: &RecordingReceiver,
) -> String {
    let site = call(
        client,
        format!("{base}/v1/sites"),
        json!({"name": "crash"}),
        201,
    )
    .await;
    let site = site["id"].as_str().expect("a site id").to_owned();
    let webhook = call(
        client,
        format!("{base}/v1/sites/{site}/webhooks"),
        json!({"url": receiver.url(), "event_types": ["*"], "description": "crash test"}),
        201,
    )
    .await;
    let secret = webhook["secret"].as_str().expect("the webhook's secret");
    receiver.expect_secret(Secret::parse(secret).expect("a usable secret"));
    site
}

/// Waits until enough events are accepted and some delivered with attempts in flight,
/// then SIGKILLs the server; returns the ids the receiver had verified by then.
async fn kill_mid_delivery(
    server: &mut Server,
    ingest: &Ingest,
    receiver: &RecordingReceiver,
) -> HashSet<String> {
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let ready = ingest.accepted_count() >= KILL_AFTER_ACCEPTED
            && receiver.deliveries() > 0
            && receiver.in_flight() > 0;
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no moment with {KILL_AFTER_ACCEPTED} accepted events and deliveries in flight \
             (accepted {}, delivered {})",
            ingest.accepted_count(),
            receiver.deliveries()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let in_flight = receiver.in_flight();
    server.kill();
    let received = receiver.received();
    println!(
        "killed with {} accepted, {} received, {in_flight} deliveries in flight",
        ingest.accepted_count(),
        received.len()
    );
    received
}

/// Waits (bounded) until the receiver has verified every id in `expected`.
async fn wait_for_all(receiver: &RecordingReceiver, expected: &HashSet<String>) {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let received = receiver.received();
        let missing: Vec<&String> = expected.difference(&received).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted events never arrived within {DELIVERY_TIMEOUT:?}, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_loses_no_accepted_event() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let receiver = RecordingReceiver::start().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");

    let mut server = Server::start(&database_url).await;
    let site = create_site_and_webhook(&client, &server.base, &receiver).await;
    let ingest = Ingest::new(client, site);
    let clients = spawn_clients(&ingest, &server.base);
    let received_at_kill = kill_mid_delivery(&mut server, &ingest, &receiver).await;
    let stopped = join_clients(clients).await;
    let accepted_before_kill = ingest.accepted_ids();
    assert!(stopped > 0, "the kill interrupted no ingest client");
    assert!(
        !received_at_kill.is_empty(),
        "nothing was delivered before the kill"
    );
    assert!(
        !accepted_before_kill.is_subset(&received_at_kill),
        "every accepted event was already delivered at the kill; nothing was at risk"
    );

    let server = Server::start(&database_url).await;
    let stopped = join_clients(spawn_clients(&ingest, &server.base)).await;
    assert_eq!(stopped, 0, "ingest failed after the restart");
    let accepted = ingest.accepted_ids();
    assert_eq!(accepted.len(), EVENTS, "every event has one accepted id");

    wait_for_all(&receiver, &accepted).await;
    let received = receiver.received();
    assert_eq!(
        receiver.failures(),
        0,
        "deliveries whose signature did not verify"
    );
    assert_eq!(received, accepted, "the receiver got events nobody sent");
    println!(
        "{EVENTS} events delivered at least once: {} deliveries, {} duplicates, in {:?}",
        receiver.deliveries(),
        receiver.deliveries() - received.len() as u64,
        started.elapsed()
    );
}
