//! The benchmark's receiver: verifies every `fullup-signature` and counts what arrived,
//! so a fast run that lost or corrupted deliveries cannot pass for a good one.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use fullup_signature::{Secret, Verifier};

/// What the receiver has seen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Requests whose signature verified.
    pub verified: usize,
    /// Distinct (event, webhook) pairs among them.
    pub distinct: usize,
    /// Requests whose signature did not verify.
    pub failures: usize,
}

#[derive(Debug, Default)]
struct Seen {
    counts: Counts,
    pairs: HashSet<(String, u16)>,
    last_new: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Shared {
    verifier: Verifier,
    seen: Arc<Mutex<Seen>>,
}

/// A verifying receiver on 127.0.0.1:0; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver that verifies with `secret`.
    pub async fn start(secret: &Secret) -> anyhow::Result<Self> {
        let shared = Shared {
            verifier: Verifier::new([secret.clone()])?,
            seen: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook/{index}", axum::routing::post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// The URL of webhook number `index`.
    pub fn url(&self, index: usize) -> String {
        format!("http://{}/hook/{index}", self.addr)
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.seen().counts
    }

    /// Waits until `expected` distinct deliveries arrived (then returns when the last
    /// one did) or `timeout` passed (then `None`).
    pub async fn wait_for(&self, expected: usize, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let seen = self.seen();
                if seen.counts.distinct >= expected {
                    return seen.last_new;
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(shared): State<Shared>,
    Path(index): Path<u16>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let verified = shared
        .verifier
        .verify(header("fullup-signature"), &body)
        .is_ok();
    let event = header("fullup-event-id").unwrap_or_default().to_owned();
    let mut seen = shared.seen.lock().unwrap_or_else(PoisonError::into_inner);
    if !verified {
        seen.counts.failures += 1;
        return StatusCode::FORBIDDEN;
    }
    seen.counts.verified += 1;
    if seen.pairs.insert((event, index)) {
        seen.counts.distinct += 1;
        seen.last_new = Some(Instant::now());
    }
    StatusCode::OK
}
