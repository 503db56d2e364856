//! Connection-level bounds of the API (issue #5): the header read timeout closes
//! connections whose request line and headers do not arrive in time (silent, half a
//! line, trickled byte by byte) or that sit idle between requests, and the connection
//! cap makes further clients wait. Assertions are on the connection being closed, never
//! on when; the 10 s limits only stop a broken build from hanging the suite.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::TestServer;

/// Short, so the tests are quick; any value shows the same behaviour.
const HEADER_READ_TIMEOUT: Duration = Duration::from_millis(300);
/// Longest a test waits for the server to act before failing.
const GUARD: Duration = Duration::from_secs(10);

async fn start() -> TestServer {
    TestServer::start_with(|c| c.limits.header_read_timeout = HEADER_READ_TIMEOUT).await
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection (end of stream, or a reset), returning
/// whatever it sent first. Fails if it is still open after [`GUARD`].
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(GUARD, async {
        let mut chunk = [0_u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
    received
}

#[tokio::test]
async fn half_a_request_line_then_silence_gets_the_connection_closed() {
    let server = start().await;
    let mut stream = connect(&server).await;
    stream.write_all(b"GET /hea").await.expect("write");

    let answer = read_until_closed(&mut stream).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_nothing_gets_the_connection_closed() {
    let server = start().await;
    let mut stream = connect(&server).await;

    let answer = read_until_closed(&mut stream).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    server.stop().await;
}

// Slowloris: each byte comes well within the timeout of the previous one, so only a
// deadline on the whole head (not an idle timer reset by every byte) cuts it.
#[tokio::test]
async fn headers_trickled_byte_by_byte_get_the_connection_cut() {
    let server = start().await;
    let stream = connect(&server).await;
    let (mut reader, mut writer) = stream.into_split();
    let head = b"GET /health HTTP/1.1\r\nhost: localhost\r\nx-padding: ";
    let trickle = async move {
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(HEADER_READ_TIMEOUT / 6).await;
        }
    };

    let closed = tokio::time::timeout(GUARD, async {
        let mut chunk = [0_u8; 1024];
        tokio::select! {
            // End of stream or a reset: closed either way, with nothing answered.
            read = reader.read(&mut chunk) => if let Ok(n) = read {
                assert_eq!(n, 0, "{}", String::from_utf8_lossy(&chunk[..n]));
            },
            () = trickle => {}
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept reading the trickled headers"
    );
    server.stop().await;
}

// hyper restarts the header timer while it waits for the next request line, so an idle
// keep-alive connection does not hold a slot forever either.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let server = start().await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("write");

    let answer = read_until_closed(&mut stream).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "the server did not keep the connection alive: {answer}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_request_within_the_timeout_is_answered() {
    let server = start().await;
    let (status, body) = server.call(reqwest::Method::GET, "/health", None).await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

// With one slot, a second client is accepted only when the first leaves. The 200 ms
// check cannot fail spuriously: the first connection stays open for the whole test.
#[tokio::test]
async fn past_max_connections_a_client_waits_until_a_slot_is_free() {
    let server = TestServer::start_with(|c| c.limits.max_connections = 1).await;
    let holder = connect(&server).await;
    let mut waiting = connect(&server).await;
    waiting
        .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");

    let mut chunk = [0_u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(200), waiting.read(&mut chunk)).await;
    assert!(early.is_err(), "answered while the only slot was taken");

    drop(holder);
    let answer = read_until_closed(&mut waiting).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.stop().await;
}
