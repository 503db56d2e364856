//! Hostile receivers for whole-process tests: raw TCP listeners on loopback that read a
//! request's head and then misbehave in one way each ([`Hostile`]). Each counts the
//! connections it accepted, so a test can tell that a receiver was (or was never)
//! reached.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The body a [`Hostile::HugeBody`] receiver announces and streams: 1 GiB.
pub const HUGE_BODY: u64 = 1 << 30;
/// How much of the body it writes at once (one buffer, reused: nothing is allocated
/// per byte sent).
const CHUNK: usize = 64 * 1024;
/// The most of a request head read before the receiver acts.
const MAX_HEAD: usize = 64 * 1024;

/// How a hostile receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Reads the request and never answers; holds the connection until the sender
    /// closes it.
    Silent,
    /// Writes its answer (`200 OK`, status line first) one byte a second.
    Drip,
    /// `200 OK` with a `content-length` of 1 GiB, and streams the body as fast as the
    /// sender reads it.
    HugeBody,
    /// `200 OK`, then header lines as fast as the sender reads them, never ending the
    /// head.
    EndlessHeaders,
    /// Part of a status line and headers, then a reset (RST).
    Reset,
    /// A redirect with this status to the `location` the receiver was started with.
    Redirect(u16),
}

impl Hostile {
    /// A short name for the figures.
    pub fn name(self) -> String {
        match self {
            Self::Silent => "silent".into(),
            Self::Drip => "drip".into(),
            Self::HugeBody => "huge_body".into(),
            Self::EndlessHeaders => "endless_headers".into(),
            Self::Reset => "reset".into(),
            Self::Redirect(status) => format!("redirect_{status}"),
        }
    }
}

/// A running hostile receiver; dropped, it stops listening (connections it holds end
/// with the test's runtime).
pub struct HostileReceiver {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HostileReceiver {
    /// Starts one on loopback; a [`Hostile::Redirect`] sends the sender to `location`.
    pub async fn start(behaviour: Hostile, location: &str) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a hostile receiver on a free port");
        let addr = listener.local_addr().expect("the receiver's address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let location: Arc<str> = location.into();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let location = location.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, behaviour, &location).await;
                });
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }

    /// The URL to register as the webhook.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HostileReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection: the request's head read, then `behaviour`.
async fn serve(mut stream: TcpStream, behaviour: Hostile, location: &str) -> std::io::Result<()> {
    read_head(&mut stream).await?;
    match behaviour {
        Hostile::Silent => {
            let mut buf = [0u8; 1024];
            while stream.read(&mut buf).await? > 0 {}
        }
        Hostile::Drip => {
            for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok" {
                stream.write_all(&[*byte]).await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Hostile::HugeBody => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {HUGE_BODY}\r\n\r\n");
            stream.write_all(head.as_bytes()).await?;
            let chunk = [b'x'; CHUNK];
            let mut sent = 0u64;
            while sent < HUGE_BODY {
                stream.write_all(&chunk).await?;
                sent += CHUNK as u64;
            }
        }
        Hostile::EndlessHeaders => {
            stream.write_all(b"HTTP/1.1 200 OK\r\n").await?;
            for n in 0u64.. {
                let line = format!("x-hostile-{n}: {}\r\n", "h".repeat(100));
                stream.write_all(line.as_bytes()).await?;
            }
        }
        Hostile::Reset => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/pl")
                .await?;
            stream.flush().await?;
            // Closed with SO_LINGER 0, the socket sends RST instead of FIN.
            stream.set_zero_linger()?;
            drop(stream);
        }
        Hostile::Redirect(status) => {
            let head = format!(
                "HTTP/1.1 {status} Moved\r\nlocation: {location}\r\ncontent-length: 0\r\n\
                 connection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
        }
    }
    Ok(())
}

/// Reads until the end of the request's head (or [`MAX_HEAD`] bytes, or the
/// connection's end); the body, a few hundred bytes, is left unread.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(())
}
