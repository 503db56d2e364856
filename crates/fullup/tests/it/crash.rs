//! Crash safety of `fullup serve`: SIGKILL while 2,000 events are being ingested and
//! delivered, restart on the same database, and every accepted event still arrives.
//!
//! Every event is sent with an `Idempotency-Key`, and an event whose POST failed with
//! the kill is sent again after the restart, so in the end all 2,000 have an accepted
//! id (an event committed just before the kill, whose 202 was lost, gets its original
//! id back). The receiver must then have verified each of those ids at least once and
//! no other id: at-least-once, nothing lost, nothing invented.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support_receiver::RecordingReceiver;
use crate::support_server::{ADMIN_TOKEN, Server, create_site_and_webhook};

/// Events to deliver, as the acceptance criterion says.
const EVENTS: usize = 2_000;
/// Concurrent ingest clients.
const CLIENTS: usize = 16;
/// Accepted events before the kill is allowed, so there is a backlog to lose.
const KILL_AFTER_ACCEPTED: usize = 500;
/// Bound on waiting for the moment to kill.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on waiting for every accepted event to arrive after the restart.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);

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

    let mut server = Server::start(&database_url, &[], &[]).await;
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

    let server = Server::start(&database_url, &[], &[]).await;
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
