//! Abuse limits: the per-credential ingest rate limit, body limits on every route that
//! reads a body, the webhooks-per-site cap and the API request timeout.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::TestServer;
use crate::support::server::ADMIN_TOKEN;

/// A response's status, `Retry-After` header and JSON body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

/// `POST …/events` with `token`.
async fn ingest(server: &TestServer, token: &str, site: &str) -> Answer {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/sites/{site}/events", server.base))
        .bearer_auth(token)
        .json(&json!({"type": "rate.test", "data": {}}))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ascii header").to_owned());
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        body,
    }
}

/// Creates an API key of `site`, returning its token.
async fn api_key(server: &TestServer, site: &str) -> String {
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/api-keys"),
            Some(json!({"name": "limits"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

/// Sends `burst` events with `token`, all accepted, then one more, refused with 429.
async fn exhaust(server: &TestServer, token: &str, site: &str, burst: usize) {
    for n in 0..burst {
        let got = ingest(server, token, site).await;
        assert_eq!(got.status, 202, "event {n} of the burst: {}", got.body);
    }
    let got = ingest(server, token, site).await;
    assert_eq!(got.status, 429, "{}", got.body);
    assert_eq!(got.body["error"]["code"], "rate_limited", "{}", got.body);
    let retry_after: u64 = got
        .retry_after
        .expect("429 carries Retry-After")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(retry_after >= 1, "Retry-After {retry_after}");
}

// A real clock at 1 event/s: the burst is spent in a few milliseconds, far less than
// the second a token takes to come back.
#[tokio::test]
async fn ingest_is_rate_limited_per_credential() {
    let server = TestServer::start_with(|c| {
        c.limits.ingest_rate = 1;
        c.limits.ingest_burst = 3;
    })
    .await;
    let site = server.create_site().await;
    let first_key = api_key(&server, &site).await;
    let second_key = api_key(&server, &site).await;

    exhaust(&server, ADMIN_TOKEN, &site, 3).await;
    // Each key has its own bucket, untouched by the admin's or the other key's.
    exhaust(&server, &first_key, &site, 3).await;
    exhaust(&server, &second_key, &site, 3).await;

    // Only ingest is limited; a bad token is refused before it is counted.
    let (status, body) = server.call(Method::GET, "/v1/sites", None).await;
    assert_eq!(status, 200, "{body}");
    let got = ingest(&server, "fk_not-a-key", &site).await;
    assert_eq!(got.status, 401, "{}", got.body);
    server.stop().await;
}

#[tokio::test]
async fn a_rate_of_zero_disables_the_limit() {
    let server = TestServer::start_with(|c| {
        c.limits.ingest_rate = 0;
        c.limits.ingest_burst = 0;
    })
    .await;
    let site = server.create_site().await;
    for n in 0..20 {
        let got = ingest(&server, ADMIN_TOKEN, &site).await;
        assert_eq!(got.status, 202, "event {n}: {}", got.body);
    }
    server.stop().await;
}

/// `method path` with a JSON body of `bytes` bytes, as admin; status and error code.
async fn oversized(server: &TestServer, method: Method, path: &str, bytes: usize) -> (u16, Value) {
    let body = json!({"name": "x".repeat(bytes)}).to_string();
    let resp = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_route_that_reads_a_body_refuses_more_than_64_kib() {
    let server = TestServer::start().await;
    let receiver = crate::support::TestReceiver::start().await;
    let site = server.create_site().await;
    let (webhook, _) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    let routes = [
        (Method::POST, "/v1/sites".to_owned()),
        (Method::PATCH, format!("/v1/sites/{site}")),
        (Method::POST, format!("/v1/sites/{site}/api-keys")),
        (Method::POST, format!("/v1/sites/{site}/webhooks")),
        (
            Method::PATCH,
            format!("/v1/sites/{site}/webhooks/{webhook}"),
        ),
        (
            Method::POST,
            format!("/v1/sites/{site}/webhooks/{webhook}/recover"),
        ),
    ];
    for (method, path) in routes {
        let (status, body) = oversized(&server, method.clone(), &path, 70 * 1024).await;
        assert_eq!(status, 413, "{method} {path}: {body}");
        assert_eq!(
            body["error"]["code"], "payload_too_large",
            "{method} {path}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_site_holds_at_most_100_webhooks() {
    let server = TestServer::start().await;
    let receiver = crate::support::TestReceiver::start().await;
    let site = server.create_site().await;
    for _ in 0..100 {
        server.create_webhook(&site, &receiver.url(), &["*"]).await;
    }
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks"),
            Some(json!({"url": receiver.url(), "event_types": ["*"]})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "limit_reached", "{body}");
    // Another site has its own allowance.
    let other = server.create_site().await;
    server.create_webhook(&other, &receiver.url(), &["*"]).await;
    server.stop().await;
}

// The client announces 100 body bytes and sends one: the handler waits for the rest
// until the API timeout answers for it.
#[tokio::test]
async fn a_request_slower_than_the_api_timeout_gets_503_timeout() {
    let server =
        TestServer::start_with(|c| c.limits.request_timeout = Duration::from_millis(200)).await;
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/sites HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.expect("write");

    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0_u8; 1024];
        while !String::from_utf8_lossy(&answer).contains("}}") {
            let n = stream.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains(r#""code":"timeout""#), "{answer}");
    server.stop().await;
}
