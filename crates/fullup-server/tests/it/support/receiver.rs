//! A real HTTP receiver (axum on 127.0.0.1:0) that hands every request to the test and
//! verifies both signature schemes of each, as svix's tests do.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::time::NowMs as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fullup_server::domain::clock::{Clock, SystemClock};
use fullup_signature::standard::StandardVerifier;
use fullup_signature::{Secret, Verifier};
use tokio::sync::mpsc;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its exact body.
    pub body: Bytes,
    /// Whether `fullup-signature` verified under the expected secrets.
    pub fullup_ok: bool,
    /// Whether the Standard Webhooks headers verified.
    pub standard_ok: bool,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("delivery body is JSON")
    }
}

#[derive(Clone)]
struct Shared {
    tx: mpsc::UnboundedSender<Received>,
    status: Arc<AtomicU16>,
    hang: Arc<AtomicBool>,
    body: Arc<Mutex<String>>,
    extra_headers: Arc<Mutex<Vec<(String, String)>>>,
    secrets: Arc<Mutex<Vec<Secret>>>,
    clock: Arc<Mutex<Arc<dyn Clock>>>,
}

/// The receiver; dropped, it stops.
pub struct TestReceiver {
    addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Received>,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl TestReceiver {
    /// Starts answering 200 on every path, on 127.0.0.1:0.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        Self::start_on(listener).await
    }

    /// Starts answering 200 on every path, on `listener`.
    pub async fn start_on(listener: tokio::net::TcpListener) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Shared {
            tx,
            status: Arc::new(AtomicU16::new(200)),
            hang: Arc::new(AtomicBool::new(false)),
            body: Arc::new(Mutex::new("receiver says hello".to_owned())),
            extra_headers: Arc::default(),
            secrets: Arc::default(),
            clock: Arc::new(Mutex::new(Arc::new(SystemClock))),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let addr = listener.local_addr().expect("receiver address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            rx,
            shared,
            task,
        }
    }

    /// The URL to register as a webhook.
    pub fn url(&self) -> String {
        format!("http://{}/webhook-endpoint", self.addr)
    }

    /// The secrets every request must verify under (set after creating the webhook).
    pub fn expect_secret(&self, secret: Secret) {
        self.shared.secrets.lock().expect("lock").push(secret);
    }

    /// The clock the `webhook-timestamp` tolerance is judged by (the server's, in
    /// tests with a manual clock).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        *self.shared.clock.lock().expect("lock") = clock;
    }

    /// The status to answer from now on.
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// The body to answer with from now on (default `receiver says hello`).
    pub fn set_body(&self, body: &str) {
        *self.shared.body.lock().expect("lock") = body.to_owned();
    }

    /// A header to add to every answer from now on.
    pub fn add_header(&self, name: &str, value: &str) {
        self.shared
            .extra_headers
            .lock()
            .expect("lock")
            .push((name.to_owned(), value.to_owned()));
    }

    /// Whether to accept requests and never answer.
    pub fn set_hang(&self, hang: bool) {
        self.shared.hang.store(hang, Ordering::SeqCst);
    }

    /// The next request, waiting at most `within`.
    pub async fn next(&mut self, within: Duration) -> Received {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .expect("no delivery arrived in time")
            .expect("receiver stopped")
    }

    /// The next request if one arrives within `within`.
    pub async fn try_next(&mut self, within: Duration) -> Option<Received> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let at = std::time::Instant::now();
    let secrets = s.secrets.lock().expect("lock").clone();
    let now = s.clock.lock().expect("lock").now_ms() / 1000;
    let (fullup_ok, standard_ok) = verify(&secrets, &headers, &body, now);
    let _ = s.tx.send(Received {
        headers,
        body,
        fullup_ok,
        standard_ok,
        at,
    });
    if s.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let status = StatusCode::from_u16(s.status.load(Ordering::SeqCst)).expect("valid status");
    let body = s.body.lock().expect("lock").clone();
    let mut response = (status, body).into_response();
    for (name, value) in s.extra_headers.lock().expect("lock").iter() {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    response
}

fn verify(secrets: &[Secret], headers: &HeaderMap, body: &[u8], now: i64) -> (bool, bool) {
    if secrets.is_empty() {
        return (false, false);
    }
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let fullup = Verifier::new(secrets.to_vec())
        .expect("secrets")
        .verify(get("fullup-signature"), body)
        .is_ok();
    let standard = StandardVerifier::new(secrets.to_vec())
        .expect("secrets")
        .verify_at(
            get("webhook-id"),
            get("webhook-timestamp"),
            get("webhook-signature"),
            body,
            now,
        )
        .is_ok();
    (fullup, standard)
}
