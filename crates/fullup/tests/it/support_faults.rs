//! A fault-injecting TCP proxy between `fullup serve` and a receiver, for the faulty
//! network suite: each connection draws one fault from a seeded RNG (latency with
//! jitter, a reset before or after the request, a stall, an answer cut in half, or
//! none) and counts it, until [`FaultyProxy::stop_faults`]; from then on it forwards
//! every byte untouched.
//!
//! While faults are on, every connection carries one exchange (the request, the first
//! chunk of the answer) and is then closed, so each attempt opens a new connection and
//! draws again: a keep-alive connection that drew no fault cannot carry the rest of
//! the run. The proxy also times how long each stalled connection stays open, which is
//! how long the sender took to give up on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// The variable that sets the seed; unset, the seed is random (and printed).
pub const SEED_ENV: &str = "FULLUP_FAULT_SEED";
/// The most a stalled connection is held if its client never gives up: far past any
/// request timeout the suite sets, so a sender that does not give up shows.
const STALL_LIMIT: Duration = Duration::from_secs(120);
/// The latency added to each direction of an exchange: `LATENCY_BASE` plus up to
/// `LATENCY_JITTER`, so that some exchanges (both directions at their longest) pass a
/// 2 s request timeout and most do not.
const LATENCY_BASE: Duration = Duration::from_millis(100);
const LATENCY_JITTER: Duration = Duration::from_millis(1_000);
/// Large enough for the first chunk of an answer the recording receiver sends.
const CHUNK: usize = 16 * 1024;

/// What a connection gets while faults are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded at once (one exchange, then closed).
    Clean,
    /// Each direction held back: the request by the first, the answer by the second.
    Latency(Duration, Duration),
    /// Reset (RST) as soon as it is accepted, before the request is read.
    ResetBeforeRequest,
    /// The request forwarded, the receiver's answer read, then a reset instead of it:
    /// the receiver got the event, the sender does not know.
    ResetAfterRequest,
    /// The request read and dropped; the connection held open until the client closes
    /// it (or [`STALL_LIMIT`]).
    Stall,
    /// The request forwarded, the first half of the answer's bytes sent back, then the
    /// connection closed.
    CutAnswer,
}

impl Fault {
    /// Every kind's name, in the order of [`Fault::index`].
    pub const NAMES: [&'static str; 6] = [
        "clean",
        "latency",
        "reset_before_request",
        "reset_after_request",
        "stall",
        "cut_answer",
    ];

    fn index(self) -> usize {
        match self {
            Self::Clean => 0,
            Self::Latency(..) => 1,
            Self::ResetBeforeRequest => 2,
            Self::ResetAfterRequest => 3,
            Self::Stall => 4,
            Self::CutAnswer => 5,
        }
    }

    /// Draws a fault: a quarter of connections get latency, a twelfth a cut answer,
    /// a sixth each every other kind.
    fn draw(rng: &mut StdRng) -> Self {
        let latency = |rng: &mut StdRng| LATENCY_BASE + LATENCY_JITTER.mul_f64(rng.r#gen::<f64>());
        match rng.gen_range(0..12) {
            0 | 1 => Self::Clean,
            2..=4 => Self::Latency(latency(rng), latency(rng)),
            5 | 6 => Self::ResetBeforeRequest,
            7 | 8 => Self::ResetAfterRequest,
            9 | 10 => Self::Stall,
            _ => Self::CutAnswer,
        }
    }
}

/// State shared by the proxy's tasks.
struct Shared {
    /// The receiver's address.
    target: SocketAddr,
    /// Whether new connections draw a fault.
    faults_on: AtomicBool,
    /// The seeded draws, one per connection in the order they are accepted.
    rng: Mutex<StdRng>,
    /// Connections per fault kind ([`Fault::NAMES`]).
    injected: [AtomicU64; 6],
    /// The longest a stalled connection stayed open, in milliseconds.
    longest_stall_ms: AtomicU64,
    /// Stalled connections the client had not closed by [`STALL_LIMIT`].
    stalls_past_limit: AtomicU64,
}

/// The running proxy; dropped, it stops accepting.
pub struct FaultyProxy {
    addr: SocketAddr,
    seed: u64,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// Listens on a free loopback port and forwards to `target`, faults on, drawing
    /// from `seed`.
    pub async fn start(target: SocketAddr, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy on a free port");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            target,
            faults_on: AtomicBool::new(true),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            injected: Default::default(),
            longest_stall_ms: AtomicU64::new(0),
            stalls_past_limit: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(accepting.clone(), client));
            }
        });
        Self {
            addr,
            seed,
            shared,
            task,
        }
    }

    /// The seed from [`SEED_ENV`], or a random one.
    pub fn seed_from_env() -> u64 {
        match std::env::var(SEED_ENV) {
            Ok(value) => value
                .parse()
                .unwrap_or_else(|_| panic!("{SEED_ENV}={value} is not a u64")),
            Err(_) => rand::random(),
        }
    }

    /// The URL to register as the webhook: the receiver's path, through the proxy.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The seed the draws come from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// From now on, every connection is forwarded untouched.
    pub fn stop_faults(&self) {
        self.shared.faults_on.store(false, Ordering::SeqCst);
    }

    /// Connections per fault kind so far, named as in [`Fault::NAMES`].
    pub fn injected(&self) -> Vec<(&'static str, u64)> {
        Fault::NAMES
            .iter()
            .zip(&self.shared.injected)
            .map(|(&name, count)| (name, count.load(Ordering::SeqCst)))
            .collect()
    }

    /// The longest a stalled connection stayed open before its client closed it.
    pub fn longest_stall(&self) -> Duration {
        Duration::from_millis(self.shared.longest_stall_ms.load(Ordering::SeqCst))
    }

    /// Stalled connections still open at [`STALL_LIMIT`].
    pub fn stalls_past_limit(&self) -> u64 {
        self.shared.stalls_past_limit.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Handles one accepted connection; I/O errors end it (the client sees them as the
/// fault they are).
async fn serve(shared: Arc<Shared>, client: TcpStream) {
    let accepted = Instant::now();
    if !shared.faults_on.load(Ordering::SeqCst) {
        let _ = pass_through(&shared, client).await;
        return;
    }
    let fault = Fault::draw(&mut shared.rng.lock().unwrap_or_else(PoisonError::into_inner));
    shared.injected[fault.index()].fetch_add(1, Ordering::SeqCst);
    if matches!(fault, Fault::ResetBeforeRequest | Fault::ResetAfterRequest) {
        // Closed with SO_LINGER 0, the socket sends RST instead of FIN.
        let _ = client.set_zero_linger();
    }
    match fault {
        Fault::ResetBeforeRequest => drop(client),
        Fault::Stall => stall(&shared, client, accepted).await,
        Fault::Clean => {
            let _ = exchange(
                &shared,
                client,
                Duration::ZERO,
                Duration::ZERO,
                Answer::Whole,
            )
            .await;
        }
        Fault::Latency(request, answer) => {
            let _ = exchange(&shared, client, request, answer, Answer::Whole).await;
        }
        Fault::ResetAfterRequest => {
            let _ = exchange(
                &shared,
                client,
                Duration::ZERO,
                Duration::ZERO,
                Answer::None,
            )
            .await;
        }
        Fault::CutAnswer => {
            let _ = exchange(
                &shared,
                client,
                Duration::ZERO,
                Duration::ZERO,
                Answer::Half,
            )
            .await;
        }
    }
}

/// Forwards both ways until either side closes.
async fn pass_through(shared: &Shared, mut client: TcpStream) -> std::io::Result<()> {
    let mut upstream = TcpStream::connect(shared.target).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

/// How much of the answer an exchange passes on.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Whole,
    Half,
    None,
}

/// One exchange: the request forwarded after `request_delay`, the first chunk of the
/// answer read, and what `answer` says of it sent back after `answer_delay`; then the
/// connection is closed (with RST if the caller set a zero linger).
async fn exchange(
    shared: &Shared,
    client: TcpStream,
    request_delay: Duration,
    answer_delay: Duration,
    answer: Answer,
) -> std::io::Result<()> {
    let upstream = TcpStream::connect(shared.target).await?;
    let (client_read, mut client_write) = client.into_split();
    let (mut upstream_read, upstream_write) = upstream.into_split();
    let forward = tokio::spawn(forward_after(request_delay, client_read, upstream_write));
    let mut chunk = vec![0; CHUNK];
    let read = upstream_read.read(&mut chunk).await;
    forward.abort();
    let read = read?;
    tokio::time::sleep(answer_delay).await;
    let sent = match answer {
        Answer::Whole => read,
        Answer::Half => read / 2,
        Answer::None => 0,
    };
    client_write.write_all(&chunk[..sent]).await?;
    client_write.flush().await
}

/// Copies the request to the receiver once `delay` has passed.
async fn forward_after(delay: Duration, mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
    tokio::time::sleep(delay).await;
    let _ = tokio::io::copy(&mut from, &mut to).await;
}

/// Reads and drops whatever the client sends until it closes the connection, and
/// records how long that took.
async fn stall(shared: &Shared, mut client: TcpStream, accepted: Instant) {
    let mut sink = vec![0; CHUNK];
    let closed = tokio::time::timeout(STALL_LIMIT, async {
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    if closed.is_err() {
        shared.stalls_past_limit.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let open = u64::try_from(accepted.elapsed().as_millis()).unwrap_or(u64::MAX);
    shared.longest_stall_ms.fetch_max(open, Ordering::SeqCst);
}
