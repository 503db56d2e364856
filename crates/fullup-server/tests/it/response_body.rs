//! Reading a receiver's answer (issue #17, item 10): once the status line and headers
//! are in, the body has its own short bound, so a receiver that sends `200` and then
//! drips its body frees the worker long before the request timeout; a body cut mid-way
//! is recorded as cut. Receivers here are raw TCP listeners that write the answer byte
//! by byte as each test scripts it.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use fullup_server::delivery::sender::MAX_RESPONSE_BODY;

use crate::support::{Backend, TestReceiver, TestServer, store_test};

/// What a raw receiver does with each request it reads.
#[derive(Clone, Copy)]
enum Answer {
    /// `200` announcing a large body, then one byte every 50 ms until the client hangs
    /// up.
    Drip,
    /// `status` announcing 100 bytes of body, then 9 of them, then the connection
    /// closed.
    Cut { status: u16 },
}

/// The part of the body [`Answer::Cut`] sends before closing.
const CUT_BODY: &[u8] = b"only part";

/// A receiver on 127.0.0.1:0 answering every request as `answer` says.
struct RawReceiver {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl RawReceiver {
    async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/hook",
            listener.local_addr().expect("receiver address")
        );
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, answer));
            }
        });
        Self { url, task }
    }
}

impl Drop for RawReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one whole request (so closing the socket sends a FIN, not a reset that could
/// hide the answer), then answers it.
async fn serve(mut stream: TcpStream, answer: Answer) {
    if read_request(&mut stream).await.is_none() {
        return;
    }
    match answer {
        Answer::Drip => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n";
            if stream.write_all(head).await.is_err() {
                return;
            }
            // Ends when the client closes the connection (a write fails), or after
            // 100 s, past any bound the service may have.
            for _ in 0..2000 {
                if stream.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Answer::Cut { status } => {
            let head = format!("HTTP/1.1 {status} Whatever\r\ncontent-length: 100\r\n\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(CUT_BODY).await;
            let _ = stream.shutdown().await;
        }
    }
}

/// Reads a request's headers and its `content-length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut received = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while received.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&chunk[..n]);
    }
    Some(())
}

/// The only attempt of the delivery of `event`, once it is recorded.
async fn only_attempt(server: &TestServer, site: &str, event: &str) -> (Value, Value) {
    let delivery = server
        .wait_for_delivery(site, event, |d| d["attempt_count"] == 1)
        .await;
    let attempts = server
        .attempts(site, delivery["id"].as_str().expect("id"))
        .await;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    (delivery, attempts[0].clone())
}

store_test!(a_dripping_receiver_frees_its_worker_long_before_the_request_timeout);
async fn a_dripping_receiver_frees_its_worker_long_before_the_request_timeout(backend: Backend) {
    let server = backend
        .start_with(|c| {
            // One attempt of the webhook at a time, and a request timeout longer than
            // the test waits: the second event is delivered only if the first attempt
            // ended by the body's own bound.
            c.delivery.per_webhook_concurrency = 1;
            c.delivery.request_timeout = Duration::from_secs(300);
        })
        .await;
    let receiver = RawReceiver::start(Answer::Drip).await;
    let site = server.create_site().await;
    server.create_webhook(&site, &receiver.url, &["*"]).await;

    let first = server
        .send_event(&site, "form.submitted", json!({"n": 1}))
        .await;
    let second = server
        .send_event(&site, "form.submitted", json!({"n": 2}))
        .await;
    for event in [&first, &second] {
        server.wait_for_state(&site, event, "succeeded").await;
        let (_, attempt) = only_attempt(&server, &site, event).await;
        assert_eq!(attempt["status_code"], 200, "{attempt}");
        assert_eq!(attempt["error_kind"], "body_timeout", "{attempt}");
        let message = attempt["error_message"].as_str().expect("message");
        assert!(message.contains("still arriving"), "{message}");
        let body = attempt["response_body"].as_str().expect("body");
        assert!(
            !body.is_empty() && body.bytes().all(|b| b == b'x'),
            "what arrived is kept: {body:?}"
        );
    }
    server.stop().await;
}

store_test!(a_two_hundred_whose_body_is_cut_is_delivered_and_logged_as_cut);
async fn a_two_hundred_whose_body_is_cut_is_delivered_and_logged_as_cut(backend: Backend) {
    let server = backend.start().await;
    let receiver = RawReceiver::start(Answer::Cut { status: 200 }).await;
    let site = server.create_site().await;
    server.create_webhook(&site, &receiver.url, &["*"]).await;

    let event = server.send_event(&site, "form.submitted", json!({})).await;
    server.wait_for_state(&site, &event, "succeeded").await;
    let (_, attempt) = only_attempt(&server, &site, &event).await;
    assert_eq!(attempt["status_code"], 200, "{attempt}");
    assert_eq!(attempt["error_kind"], "body_cut", "{attempt}");
    assert_eq!(attempt["response_body"], "only part");
    let message = attempt["error_message"].as_str().expect("message");
    assert!(message.contains("cut after 9 bytes"), "{message}");
    server.stop().await;
}

store_test!(a_failure_status_whose_body_is_cut_stays_a_failure_and_says_so);
async fn a_failure_status_whose_body_is_cut_stays_a_failure_and_says_so(backend: Backend) {
    let server = backend.start().await;
    let receiver = RawReceiver::start(Answer::Cut { status: 500 }).await;
    let site = server.create_site().await;
    server.create_webhook(&site, &receiver.url, &["*"]).await;

    let event = server.send_event(&site, "form.submitted", json!({})).await;
    let (delivery, attempt) = only_attempt(&server, &site, &event).await;
    assert_eq!(delivery["state"], "pending", "a 500 is retried");
    assert_eq!(attempt["status_code"], 500, "{attempt}");
    assert_eq!(attempt["error_kind"], "status", "{attempt}");
    let message = attempt["error_message"].as_str().expect("message");
    assert!(
        message.contains("answered 500") && message.contains("cut after 9 bytes"),
        "{message}"
    );
    server.stop().await;
}

store_test!(the_attempt_log_keeps_exactly_the_first_4_kib_of_a_larger_answer);
/// Issue 17, item 11: a receiver answering 10 000 bytes has exactly its first 4096 kept.
async fn the_attempt_log_keeps_exactly_the_first_4_kib_of_a_larger_answer(backend: Backend) {
    assert_eq!(MAX_RESPONSE_BODY, 4096, "the documented cap is 4 KiB");
    let server = backend.start().await;
    let receiver = TestReceiver::start().await;
    // Digits that count their own position in tens, so a shifted or partial copy differs.
    let answer: String = (0..10_000)
        .map(|i: u32| char::from_digit((i / 10) % 10, 10).expect("a digit"))
        .collect();
    receiver.set_body(&answer);
    let site = server.create_site().await;
    server.create_webhook(&site, &receiver.url(), &["*"]).await;

    for status in [200, 500] {
        receiver.set_status(status);
        let event = server
            .send_event(&site, "form.submitted", json!({"status": status}))
            .await;
        let (_, attempt) = only_attempt(&server, &site, &event).await;
        assert_eq!(attempt["status_code"], status, "{attempt}");
        let kept = attempt["response_body"].as_str().expect("body");
        assert_eq!(kept.len(), 4096, "answered with {status}");
        assert_eq!(kept, &answer[..4096], "answered with {status}");
    }
    server.stop().await;
}
