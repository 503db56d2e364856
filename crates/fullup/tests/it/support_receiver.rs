//! A receiver for whole-process tests: axum on 127.0.0.1:0 that verifies the
//! `fullup-signature` of every request and records which event ids arrived, how often.
//!
//! It answers 200 after a short delay taken from the signature's first hex digit
//! (0-5 ms, varying from event to event), so attempts are still in flight whenever
//! the sender is killed.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use fullup_signature::{SIGNATURE_HEADER, Secret, Verifier};

/// What the receiver has seen so far.
#[derive(Debug, Default)]
struct Record {
    /// The webhook's verifier, set once the webhook (and its secret) exists.
    verifier: OnceLock<Verifier>,
    /// Verified deliveries per event id.
    seen: Mutex<HashMap<String, u32>>,
    /// Requests that did not verify or did not carry a consistent event id.
    failures: AtomicUsize,
    /// Requests being handled right now.
    in_flight: AtomicUsize,
}

/// The running receiver; dropped, it stops.
pub struct RecordingReceiver {
    addr: SocketAddr,
    record: Arc<Record>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingReceiver {
    /// Starts listening; every request fails verification until [`Self::expect_secret`].
    pub async fn start() -> Self {
        let record = Arc::new(Record::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(record.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver on a free port");
        let addr = listener.local_addr().expect("the receiver's address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, record, task }
    }

    /// The URL to register as the webhook.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Verifies every later request against `secret`.
    pub fn expect_secret(&self, secret: Secret) {
        let verifier = Verifier::new([secret]).expect("one secret makes a verifier");
        assert!(
            self.record.verifier.set(verifier).is_ok(),
            "the receiver's secret is set once"
        );
    }

    /// The distinct event ids received with a valid signature.
    pub fn received(&self) -> HashSet<String> {
        self.seen().keys().cloned().collect()
    }

    /// Verified deliveries in total, duplicates included.
    pub fn deliveries(&self) -> u64 {
        self.seen().values().map(|&n| u64::from(n)).sum()
    }

    /// Requests that failed verification.
    pub fn failures(&self) -> usize {
        self.record.failures.load(Ordering::SeqCst)
    }

    /// Requests being handled at this moment.
    pub fn in_flight(&self) -> usize {
        self.record.in_flight.load(Ordering::SeqCst)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.record
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for RecordingReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts a request as in flight until dropped (the handler may be cancelled when the
/// sender's connection goes away).
struct InFlight(Arc<Record>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(State(record): State<Arc<Record>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    record.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(record.clone());
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let Some(event_id) = verified_event_id(&record, &headers, signature, &body) else {
        record.failures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    };
    *record
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(event_id)
        .or_default() += 1;
    let digit = signature
        .and_then(|s| s.chars().next())
        .and_then(|c| c.to_digit(16))
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(u64::from(digit % 6))).await;
    StatusCode::OK
}

/// The envelope's event id, if the signature verifies and the id matches the
/// `fullup-event-id` header.
fn verified_event_id(
    record: &Record,
    headers: &HeaderMap,
    signature: Option<&str>,
    body: &[u8],
) -> Option<String> {
    record.verifier.get()?.verify(signature, body).ok()?;
    let envelope: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = envelope.get("id")?.as_str()?;
    let header = headers.get("fullup-event-id")?.to_str().ok()?;
    (id == header).then(|| id.to_owned())
}
