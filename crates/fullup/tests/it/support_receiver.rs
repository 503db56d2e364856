//! A receiver for whole-process tests: axum on port 0 that verifies the
//! `fullup-signature` of every request and records which event ids arrived, how often,
//! and from which sender address.
//!
//! It answers 200 after a short delay taken from the signature's first hex digit
//! (0-5 ms, varying from event to event), so attempts are still in flight whenever
//! the sender is killed; a failing receiver ([`RecordingReceiver::start_failing`])
//! answers 500 instead to a share of the requests, drawn from a seeded generator, and
//! does not count those as delivered. It can also hold the answers to one sender ([`Self::hold`]),
//! and it counts requests for an event that arrive while another for the same event is
//! still being handled: two attempts of one delivery at once.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use fullup_signature::{SIGNATURE_HEADER, Secret, Verifier};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::watch;

/// What one sender address has sent.
#[derive(Debug, Default, Clone, Copy)]
struct Peer {
    /// Its requests being handled right now.
    in_flight: usize,
    /// Its requests that verified.
    verified: u64,
}

/// The verified deliveries of one event.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// How many arrived (and were not answered 500 by choice).
    count: u32,
    /// When the first arrived.
    first: Instant,
}

/// Which requests a failing receiver answers 500: each with probability `share`.
#[derive(Debug)]
struct Failing {
    share: f64,
    rng: StdRng,
}

/// What the receiver has seen so far.
#[derive(Debug)]
struct Record {
    /// The webhook's verifier, set once the webhook (and its secret) exists.
    verifier: OnceLock<Verifier>,
    /// Verified deliveries per event id, not counting those answered 500 by choice.
    seen: Mutex<HashMap<String, Seen>>,
    /// The share of verified requests to answer 500, and the draws; none: all get 200.
    failing: Option<Mutex<Failing>>,
    /// Verified requests answered 500 by choice.
    refused: AtomicUsize,
    /// Requests that did not verify or did not carry a consistent event id.
    failures: AtomicUsize,
    /// Requests being handled right now.
    in_flight: AtomicUsize,
    /// The most requests handled at once so far.
    max_in_flight: AtomicUsize,
    /// Per sender address.
    peers: Mutex<HashMap<IpAddr, Peer>>,
    /// Event ids with a verified request being handled right now.
    attempting: Mutex<HashSet<String>>,
    /// Verified requests that arrived while another for the same event was handled.
    overlapping: AtomicUsize,
    /// The sender whose answers wait, if any.
    held: watch::Sender<Option<IpAddr>>,
}

/// The running receiver; dropped, it stops.
pub struct RecordingReceiver {
    addr: SocketAddr,
    record: Arc<Record>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingReceiver {
    /// Starts listening on loopback; every request fails verification until
    /// [`Self::expect_secret`].
    pub async fn start() -> Self {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST)).await
    }

    /// [`Self::start`] on `ip` (any port).
    pub async fn start_on(ip: IpAddr) -> Self {
        Self::launch(ip, None).await
    }

    /// [`Self::start`], answering 500 to each verified request with probability
    /// `share`, drawn from a generator seeded with `seed`.
    pub async fn start_failing(share: f64, seed: u64) -> Self {
        let failing = Failing {
            share,
            rng: StdRng::seed_from_u64(seed),
        };
        Self::launch(IpAddr::V4(Ipv4Addr::LOCALHOST), Some(failing)).await
    }

    async fn launch(ip: IpAddr, failing: Option<Failing>) -> Self {
        let record = Arc::new(Record {
            verifier: OnceLock::new(),
            seen: Mutex::default(),
            failing: failing.map(Mutex::new),
            refused: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            peers: Mutex::default(),
            attempting: Mutex::default(),
            overlapping: AtomicUsize::new(0),
            held: watch::Sender::new(None),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(record.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind the receiver on a free port");
        let addr = listener.local_addr().expect("the receiver's address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, record, task }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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

    /// When the first verified request of each event arrived.
    pub fn first_arrivals(&self) -> HashMap<String, Instant> {
        self.seen()
            .iter()
            .map(|(id, s)| (id.clone(), s.first))
            .collect()
    }

    /// Verified deliveries in total, duplicates included.
    pub fn deliveries(&self) -> u64 {
        self.seen().values().map(|s| u64::from(s.count)).sum()
    }

    /// Verified deliveries beyond the first of each event.
    pub fn duplicates(&self) -> u64 {
        self.seen().values().map(|s| u64::from(s.count) - 1).sum()
    }

    /// For each verified delivery beyond the first of its event, when the first arrived.
    pub fn duplicates_by_first_arrival(&self) -> Vec<Instant> {
        self.seen()
            .values()
            .flat_map(|s| std::iter::repeat_n(s.first, s.count as usize - 1))
            .collect()
    }

    /// Verified requests answered 500 by choice.
    pub fn refused(&self) -> usize {
        self.record.refused.load(Ordering::SeqCst)
    }

    /// Requests that failed verification.
    pub fn failures(&self) -> usize {
        self.record.failures.load(Ordering::SeqCst)
    }

    /// Requests being handled at this moment.
    pub fn in_flight(&self) -> usize {
        self.record.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests handled at once so far.
    pub fn max_in_flight(&self) -> usize {
        self.record.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests from `sender` being handled at this moment.
    pub fn in_flight_from(&self, sender: IpAddr) -> usize {
        self.peer(sender).in_flight
    }

    /// Verified requests from `sender` so far.
    pub fn verified_from(&self, sender: IpAddr) -> u64 {
        self.peer(sender).verified
    }

    /// Verified requests that arrived while another request for the same event was
    /// being handled.
    pub fn overlapping(&self) -> usize {
        self.record.overlapping.load(Ordering::SeqCst)
    }

    /// Makes the answers to `sender` wait (its requests are still verified and counted
    /// on arrival) until [`Self::release`].
    pub fn hold(&self, sender: IpAddr) {
        self.record.held.send_replace(Some(sender));
    }

    /// Lets held answers go.
    pub fn release(&self) {
        self.record.held.send_replace(None);
    }

    fn peer(&self, sender: IpAddr) -> Peer {
        lock(&self.record.peers)
            .get(&sender)
            .copied()
            .unwrap_or_default()
    }

    fn seen(&self) -> MutexGuard<'_, HashMap<String, Seen>> {
        lock(&self.record.seen)
    }
}

impl Drop for RecordingReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts a request as in flight until dropped (the handler may be cancelled when the
/// sender's connection goes away).
struct InFlight {
    record: Arc<Record>,
    sender: IpAddr,
}

impl InFlight {
    fn enter(record: &Arc<Record>, sender: IpAddr) -> Self {
        let now = record.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        record.max_in_flight.fetch_max(now, Ordering::SeqCst);
        lock(&record.peers).entry(sender).or_default().in_flight += 1;
        Self {
            record: record.clone(),
            sender,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.record.in_flight.fetch_sub(1, Ordering::SeqCst);
        lock(&self.record.peers)
            .entry(self.sender)
            .or_default()
            .in_flight -= 1;
    }
}

/// Marks an event as being attempted until dropped; counts an overlap when it already
/// was.
struct Attempting {
    record: Arc<Record>,
    event_id: Option<String>,
}

impl Attempting {
    fn enter(record: &Arc<Record>, event_id: String) -> Self {
        let fresh = lock(&record.attempting).insert(event_id.clone());
        if !fresh {
            record.overlapping.fetch_add(1, Ordering::SeqCst);
        }
        Self {
            record: record.clone(),
            // The first request removes the mark when it ends.
            event_id: fresh.then_some(event_id),
        }
    }
}

impl Drop for Attempting {
    fn drop(&mut self) {
        if let Some(id) = &self.event_id {
            lock(&self.record.attempting).remove(id);
        }
    }
}

async fn handle(
    State(record): State<Arc<Record>>,
    ConnectInfo(sender): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let sender = sender.ip();
    let _in_flight = InFlight::enter(&record, sender);
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let Some(event_id) = verified_event_id(&record, &headers, signature, &body) else {
        record.failures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    };
    let refuse = record
        .failing
        .as_ref()
        .is_some_and(|failing| draw_failure(&mut lock(failing)));
    if refuse {
        record.refused.fetch_add(1, Ordering::SeqCst);
    } else {
        lock(&record.seen)
            .entry(event_id.clone())
            .and_modify(|s| s.count += 1)
            .or_insert(Seen {
                count: 1,
                first: Instant::now(),
            });
    }
    lock(&record.peers).entry(sender).or_default().verified += 1;
    let _attempting = Attempting::enter(&record, event_id);
    let mut held = record.held.subscribe();
    let _ = held.wait_for(|held| *held != Some(sender)).await;
    let digit = signature
        .and_then(|s| s.chars().next())
        .and_then(|c| c.to_digit(16))
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(u64::from(digit % 6))).await;
    if refuse {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

fn draw_failure(failing: &mut Failing) -> bool {
    let share = failing.share;
    failing.rng.gen_bool(share)
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
