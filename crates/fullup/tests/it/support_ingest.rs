//! Ingest for whole-process tests: concurrent clients sending numbered events, each
//! with an `Idempotency-Key`, where an event whose request failed in transport (the
//! server was killed) goes back to the queue to be sent again, so an event committed
//! just before a kill, whose 202 was lost, gets its original id back.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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

/// Sends pending events to `base` until none are left (false) or a request fails in
/// transport, which only a kill causes (true); that event goes back to the queue.
async fn ingest_until_error(ingest: Arc<Ingest>, base: String) -> bool {
    let url = format!("{base}/v1/sites/{}/events", ingest.site);
    while let Some(n) = ingest.take() {
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
