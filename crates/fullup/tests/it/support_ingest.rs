//! Ingest for whole-process tests: concurrent clients sending numbered events, each
//! with an `Idempotency-Key`, where an event whose request failed in transport (the
//! server was killed) goes back to the queue to be sent again, so an event committed
//! just before a kill, whose 202 was lost, gets its original id back.
//!
//! Clients either stop at the first such failure ([`spawn_clients`]) or keep sending,
//! round-robin over the nodes [`Targets`] lists at the time, until every event is
//! accepted ([`spawn_persistent_clients`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support_receiver::RecordingReceiver;
use crate::support_server::ADMIN_TOKEN;

/// The events still to be accepted and the ids of those that were, shared by the
/// ingest clients.
pub struct Ingest {
    client: reqwest::Client,
    site: String,
    pending: Mutex<Vec<usize>>,
    accepted: Mutex<HashMap<usize, String>>,
}

impl Ingest {
    /// Events `0..events` to send to `site`.
    pub fn new(client: reqwest::Client, site: String, events: usize) -> Arc<Ingest> {
        Arc::new(Ingest {
            client,
            site,
            pending: Mutex::new((0..events).rev().collect()),
            accepted: Mutex::default(),
        })
    }

    /// Events accepted so far.
    pub fn accepted_count(&self) -> usize {
        self.accepted().len()
    }

    /// The ids of the events accepted so far.
    pub fn accepted_ids(&self) -> HashSet<String> {
        self.accepted().values().cloned().collect()
    }

    fn accepted(&self) -> MutexGuard<'_, HashMap<usize, String>> {
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

/// Sends event `n` to `base`: true once accepted; false, with the event back in the
/// queue, when the request failed in transport, which only a kill causes, or got 503,
/// which promises nothing was stored. Any other answer fails the test.
async fn send(ingest: &Ingest, base: &str, n: usize) -> bool {
    let url = format!("{base}/v1/sites/{}/events", ingest.site);
    let sent = ingest
        .client
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .header("idempotency-key", format!("event-{n}"))
        .json(&json!({"type": "test.event", "data": {"n": n}}))
        .send()
        .await;
    let answer = match sent {
        Ok(response) => (response.status().as_u16(), response.json::<Value>().await),
        Err(_) => {
            ingest.put_back(n);
            return false;
        }
    };
    match answer {
        (202, Ok(body)) => {
            let id = body["id"].as_str().expect("a 202 carries the event id");
            ingest.accepted().insert(n, id.to_owned());
            true
        }
        (503, _) | (_, Err(_)) => {
            ingest.put_back(n);
            false
        }
        (status, Ok(body)) => panic!("event {n} got {status}, not 202: {body}"),
    }
}

/// Sends pending events to `base` until none are left (false) or one is not accepted
/// (true); that event goes back to the queue.
async fn ingest_until_error(ingest: Arc<Ingest>, base: String) -> bool {
    while let Some(n) = ingest.take() {
        if !send(&ingest, &base, n).await {
            return true;
        }
    }
    false
}

/// The base URLs of the nodes that take events; a restarted node's new one replaces
/// its old one.
#[derive(Debug, Default)]
pub struct Targets(RwLock<Vec<String>>);

impl Targets {
    /// Nodes at `bases`.
    pub fn new(bases: Vec<String>) -> Arc<Targets> {
        Arc::new(Targets(RwLock::new(bases)))
    }

    /// Node `index` now listens at `base`.
    pub fn set(&self, index: usize, base: String) {
        self.0.write().unwrap_or_else(PoisonError::into_inner)[index] = base;
    }

    fn get(&self, turn: usize) -> String {
        let bases = self.0.read().unwrap_or_else(PoisonError::into_inner);
        bases[turn % bases.len()].clone()
    }
}

/// A wait before sending again an event that was not accepted (its node is down).
const RESEND_PAUSE: Duration = Duration::from_millis(20);

/// Sends pending events, each to the next of `targets` in turn, until every one is
/// accepted; one that is not goes back to the queue and is sent again after a pause.
/// Returns how many were sent again.
async fn ingest_until_accepted(ingest: Arc<Ingest>, targets: Arc<Targets>, first: usize) -> usize {
    let (mut turn, mut resent) = (first, 0);
    while let Some(n) = ingest.take() {
        turn += 1;
        if !send(&ingest, &targets.get(turn), n).await {
            resent += 1;
            tokio::time::sleep(RESEND_PAUSE).await;
        }
    }
    resent
}

/// Starts `clients` clients that send `ingest`'s pending events to `targets` until
/// each is accepted; each returns how many events it had to send again.
pub fn spawn_persistent_clients(
    ingest: &Arc<Ingest>,
    targets: &Arc<Targets>,
    clients: usize,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..clients)
        .map(|i| tokio::spawn(ingest_until_accepted(ingest.clone(), targets.clone(), i)))
        .collect()
}

/// Starts `clients` clients sending `ingest`'s pending events to `base`.
pub fn spawn_clients(
    ingest: &Arc<Ingest>,
    base: &str,
    clients: usize,
) -> Vec<tokio::task::JoinHandle<bool>> {
    (0..clients)
        .map(|_| tokio::spawn(ingest_until_error(ingest.clone(), base.to_owned())))
        .collect()
}

/// How many clients stopped because a request failed in transport.
pub async fn join_clients(clients: Vec<tokio::task::JoinHandle<bool>>) -> usize {
    let mut stopped = 0;
    for client in clients {
        stopped += usize::from(client.await.expect("an ingest client panicked"));
    }
    stopped
}

/// Waits, at most `within`, until the receiver has verified every id in `expected`.
pub async fn wait_for_all(
    receiver: &RecordingReceiver,
    expected: &HashSet<String>,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let received = receiver.received();
        let missing: Vec<&String> = expected.difference(&received).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} accepted events never arrived at {} within {within:?}, e.g. {:?}",
            missing.len(),
            receiver.url(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
