//! The benchmark's receiver: verifies both signatures of every delivery
//! (`fullup-signature` and the Standard Webhooks `webhook-signature`), checks that each
//! delivery is one the run expects, and notes when the first copy of each arrived, so a
//! fast run that lost, duplicated or corrupted deliveries cannot pass for a good one, and
//! latency can be measured per event. It also counts the connections open to it, whose
//! peak is the most requests a client had in flight at once (see [`Receiver::peak_in_flight`]).
//!
//! Every event the load sends carries its sequence number as the first field of its data
//! (`{"seq":N,...}`); with the webhook number in the URL path (`/hook/{index}`), that
//! names one slot of the run's [`Expect`]ation.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use fullup_signature::standard::{self, StandardVerifier};
use fullup_signature::{Secret, Verifier};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How often waiting loops look at the counts.
const POLL: Duration = Duration::from_millis(5);

/// Which deliveries a run expects: one per slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Every event `0..events` to every webhook `0..hooks`.
    FanOut {
        /// Events sent.
        events: usize,
        /// Webhooks each event goes to.
        hooks: usize,
    },
    /// Event `seq` to webhook `seq % hooks` only; webhooks `healthy..hooks` point at
    /// another receiver, so their events are not expected here.
    RoundRobin {
        /// Events sent.
        events: usize,
        /// Webhooks the events are spread over.
        hooks: usize,
        /// Webhooks `0..healthy` deliver here.
        healthy: usize,
    },
}

impl Expect {
    fn slots(self) -> usize {
        match self {
            Self::FanOut { events, hooks } => events * hooks,
            Self::RoundRobin { events, .. } => events,
        }
    }

    /// Events the run sends.
    pub fn events(self) -> usize {
        match self {
            Self::FanOut { events, .. } | Self::RoundRobin { events, .. } => events,
        }
    }

    /// Slots per event: slot `i` belongs to event `i / slots_per_event()`.
    pub fn slots_per_event(self) -> usize {
        match self {
            Self::FanOut { hooks, .. } => hooks,
            Self::RoundRobin { .. } => 1,
        }
    }

    /// How many deliveries should arrive here.
    pub fn expected(self) -> usize {
        match self {
            Self::FanOut { events, hooks } => events * hooks,
            Self::RoundRobin {
                events,
                hooks,
                healthy,
            } => (events / hooks) * healthy + (events % hooks).min(healthy),
        }
    }

    /// The slot of event `seq` delivered to webhook `hook`, if the run expects it.
    fn slot(self, seq: usize, hook: usize) -> Option<usize> {
        match self {
            Self::FanOut { events, hooks } => {
                (seq < events && hook < hooks).then(|| seq * hooks + hook)
            }
            Self::RoundRobin {
                events,
                hooks,
                healthy,
            } => (seq < events && hook < healthy && seq % hooks == hook).then_some(seq),
        }
    }
}

/// What the receiver has seen since the last [`Receiver::expect`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Requests whose signature verified.
    pub verified: usize,
    /// Distinct expected deliveries among them.
    pub distinct: usize,
    /// Requests of which either signature did not verify.
    pub failures: usize,
    /// Verified requests the run did not expect (unknown event or wrong webhook).
    pub unexpected: usize,
}

#[derive(Debug)]
struct Tally {
    expect: Expect,
    /// Per slot: when its first copy was verified, in ns since the epoch; 0 = not yet.
    first: Vec<u64>,
    counts: Counts,
    last_new: Option<Instant>,
}

impl Tally {
    fn new(expect: Expect) -> Self {
        Self {
            expect,
            first: vec![0; expect.slots()],
            counts: Counts::default(),
            last_new: None,
        }
    }
}

#[derive(Debug)]
struct Shared {
    /// Checks `fullup-signature`.
    verifier: Verifier,
    /// Checks `webhook-id`, `webhook-timestamp` and `webhook-signature`.
    standard: StandardVerifier,
    epoch: Instant,
    tally: Mutex<Tally>,
    /// Connections open now.
    connections: AtomicUsize,
    /// The most connections open at once since the last [`Receiver::expect`].
    peak_connections: AtomicUsize,
    /// `--fault drop-one`, until it has dropped its delivery: the next expected delivery
    /// is answered 200 and not recorded.
    drop_next: AtomicBool,
}

impl Shared {
    fn new(secret: &Secret, drop_one: bool) -> anyhow::Result<Self> {
        Ok(Self {
            verifier: Verifier::new([secret.clone()])?,
            standard: StandardVerifier::new([secret.clone()])?,
            epoch: Instant::now(),
            tally: Mutex::new(Tally::new(Expect::FanOut {
                events: 0,
                hooks: 0,
            })),
            connections: AtomicUsize::new(0),
            peak_connections: AtomicUsize::new(0),
            drop_next: AtomicBool::new(drop_one),
        })
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Both signatures of a request verify.
    fn verifies(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        self.verifier
            .verify(header(fullup_signature::SIGNATURE_HEADER), body)
            .is_ok()
            && self
                .standard
                .verify(
                    header(standard::ID_HEADER),
                    header(standard::TIMESTAMP_HEADER),
                    header(standard::SIGNATURE_HEADER),
                    body,
                )
                .is_ok()
    }
}

/// A verifying receiver; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver on `listen` that verifies with `secret`; webhooks reach it at
    /// `public` (default `http://` and the bound address). With `drop_one`, it answers
    /// the first expected delivery 200 without recording it (`--fault drop-one`).
    pub async fn start(
        secret: &Secret,
        listen: SocketAddr,
        public: Option<&str>,
        drop_one: bool,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::new(secret, drop_one)?);
        let app = axum::Router::new()
            .route("/hook/{index}", axum::routing::post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| {
                format!("cannot listen on {listen}; choose another --receiver-listen")
            })?;
        let addr = listener.local_addr()?;
        let listener = Counting {
            listener,
            shared: shared.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let base = public.map_or_else(
            || format!("http://{addr}"),
            |url| url.trim_end_matches('/').to_owned(),
        );
        Ok(Self { base, shared, task })
    }

    /// The URL of webhook number `index`.
    pub fn url(&self, index: usize) -> String {
        format!("{}/hook/{index}", self.base)
    }

    /// The instant receipt times are counted from.
    pub fn epoch(&self) -> Instant {
        self.shared.epoch
    }

    /// Forgets everything seen and expects `expect` from now on.
    pub fn expect(&self, expect: Expect) {
        *self.shared.tally() = Tally::new(expect);
        let open = self.shared.connections.load(Ordering::Relaxed);
        self.shared.peak_connections.store(open, Ordering::Relaxed);
    }

    /// The most requests a client had in flight at once since the last
    /// [`Self::expect`], counted as the most connections open to the receiver at once.
    ///
    /// The receiver cannot count requests still unread in its sockets, but an HTTP/1.1
    /// client sends one request at a time per connection and opens a new connection
    /// only when every open one is busy, so its connections peak at its requests in
    /// flight (a connection it opened in a race with one coming free may add a few).
    /// Connections of an earlier client end when that client is dropped or killed.
    pub fn peak_in_flight(&self) -> usize {
        self.shared.peak_connections.load(Ordering::Relaxed)
    }

    /// What the receiver expects now.
    pub fn expectation(&self) -> Expect {
        self.shared.tally().expect
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.shared.tally().counts
    }

    /// A function giving the distinct deliveries so far, for a progress bar.
    pub fn distinct_counter(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.tally().counts.distinct
    }

    /// Per slot, when its first copy was verified (ns since [`Self::epoch`]; 0 = never).
    pub fn receipts(&self) -> Vec<u64> {
        self.shared.tally().first.clone()
    }

    /// Waits until every expected delivery arrived (then returns when the last one did)
    /// or none arrived for `idle` (then `None`).
    pub async fn wait_for_all(&self, idle: Duration) -> Option<Instant> {
        let mut progress = (0, Instant::now());
        loop {
            {
                let tally = self.shared.tally();
                if tally.counts.distinct >= tally.expect.expected() {
                    return tally.last_new;
                }
                if tally.counts.distinct > progress.0 {
                    progress = (tally.counts.distinct, Instant::now());
                }
            }
            if progress.1.elapsed() >= idle {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(hook): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let verified = shared.verifies(&headers, &body);
    let now = Instant::now();
    let at = super::load::nanos_since(shared.epoch);
    let mut tally = shared.tally();
    if !verified {
        tally.counts.failures += 1;
        return StatusCode::FORBIDDEN;
    }
    let expect = tally.expect;
    let Some(slot) = sequence_number(&body).and_then(|seq| expect.slot(seq, hook)) else {
        tally.counts.verified += 1;
        tally.counts.unexpected += 1;
        return StatusCode::OK;
    };
    if tally.first[slot] == 0 && shared.drop_next.swap(false, Ordering::Relaxed) {
        return StatusCode::OK;
    }
    tally.counts.verified += 1;
    if tally.first[slot] == 0 {
        tally.first[slot] = at;
        tally.counts.distinct += 1;
        tally.last_new = Some(now);
    }
    StatusCode::OK
}

/// The receiver's listener: counts the connections open, and their peak.
struct Counting {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for Counting {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        let open = self.shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
        self.shared
            .peak_connections
            .fetch_max(open, Ordering::Relaxed);
        let shared = self.shared.clone();
        (Counted { stream, shared }, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An accepted connection, counted as open until it is dropped.
struct Counted {
    stream: tokio::net::TcpStream,
    shared: Arc<Shared>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The `seq` of an envelope whose data starts with `{"seq":N`.
fn sequence_number(body: &[u8]) -> Option<usize> {
    const MARKER: &[u8] = br#""data":{"seq":"#;
    let start = body.windows(MARKER.len()).position(|w| w == MARKER)? + MARKER.len();
    let digits = body[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&body[start..start + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use fullup_signature::{sign, sign_standard};

    use super::*;

    #[test]
    fn a_delivery_verifies_only_when_both_signatures_do() {
        let secret = Secret::generate();
        let shared = Shared::new(&secret, false).expect("a secret");
        let body = br#"{"data":{"seq":0}}"#;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        let headers = |fullup: &Secret, standard: &Secret| {
            let mut headers = HeaderMap::new();
            let mut put = |name: &'static str, value: String| {
                headers.insert(name, value.parse().expect("a header value"));
            };
            put("fullup-signature", sign(fullup, body).to_string());
            put("webhook-id", "evt_1".to_owned());
            put("webhook-timestamp", now.to_string());
            put(
                "webhook-signature",
                sign_standard(standard, "evt_1", now, body),
            );
            headers
        };
        let other = Secret::generate();
        assert!(shared.verifies(&headers(&secret, &secret), body));
        assert!(!shared.verifies(&headers(&other, &secret), body));
        assert!(!shared.verifies(&headers(&secret, &other), body));
        let mut unsigned = headers(&secret, &secret);
        unsigned.remove("webhook-signature");
        assert!(!shared.verifies(&unsigned, body));
    }

    #[test]
    fn finds_the_sequence_number_of_an_envelope() {
        let body = br#"{"id":"evt_1","type":"a","created_at":"x","data":{"seq":42,"form":"c"}}"#;
        assert_eq!(sequence_number(body), Some(42));
        assert_eq!(sequence_number(br#"{"data":{"form":"c"}}"#), None);
        assert_eq!(sequence_number(br#"{"data":{"seq":}}"#), None);
    }

    #[test]
    fn round_robin_expects_only_the_healthy_webhooks_share() {
        let expect = Expect::RoundRobin {
            events: 43,
            hooks: 21,
            healthy: 20,
        };
        // 43 = 2 * 21 + 1: two full rounds of 20 healthy, then event 42 to webhook 0.
        assert_eq!(expect.expected(), 41);
        assert_eq!(expect.slot(42, 0), Some(42));
        assert_eq!(expect.slot(20, 20), None);
        assert_eq!(expect.slot(5, 4), None);
    }

    #[test]
    fn fan_out_expects_every_event_at_every_webhook() {
        let expect = Expect::FanOut {
            events: 3,
            hooks: 2,
        };
        assert_eq!(expect.expected(), 6);
        assert_eq!(expect.slot(2, 1), Some(5));
        assert_eq!(expect.slot(3, 0), None);
        assert_eq!(expect.slot(0, 2), None);
    }
}
