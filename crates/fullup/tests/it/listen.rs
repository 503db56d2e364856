//! `fullup listen` as a user runs it: a real process on port 0, real HTTP requests,
//! its printed reports, its answers, and `--forward-to` relaying byte-identical bodies.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use fullup_signature::{Secret, sign, sign_standard};

const OLD_SECRET: &str = "your_shared_secret_key";
const NEW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
/// Only a guard against a hung process; no assertion depends on timing.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running `fullup listen`, killed on drop.
struct Listen {
    child: Child,
    url: String,
    lines: mpsc::Receiver<String>,
}

impl Listen {
    /// Starts `fullup listen --port 0` with `args`, the old secret in `OLD` and the new in `NEW`.
    fn start(args: &[&str]) -> Listen {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fullup"))
            .args(["listen", "--port", "0"])
            .args(args)
            .env_remove("FULLUP_SECRET")
            .env_remove("FULLUP_SECRET_FILE")
            .env("OLD", OLD_SECRET)
            .env("NEW", NEW_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the fullup binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(PATIENCE)
            .expect("listen prints its address first");
        let url = match first.strip_prefix("listening on ") {
            Some(url) => url.to_owned(),
            None => {
                let json: serde_json::Value =
                    serde_json::from_str(&first).expect("text or JSON first line");
                json["listening"]
                    .as_str()
                    .expect("listening URL")
                    .to_owned()
            }
        };
        Listen { child, url, lines }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("listen reports every request")
    }

    /// The next readable report: the lines up to the blank line that ends it.
    fn block(&self) -> String {
        let mut block = String::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                return block;
            }
            block.push_str(&line);
            block.push('\n');
        }
    }

    /// The next `--json` report, as printed and parsed.
    fn json(&self) -> (String, serde_json::Value) {
        let line = self.line();
        let value = serde_json::from_str(&line).expect("--json prints one JSON object per line");
        (line, value)
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signature(secret: &str, body: &[u8]) -> String {
    sign(&Secret::parse(secret).expect("valid test secret"), body).to_hex()
}

/// POSTs `body` to `url` with the given headers; returns the status and answer body.
async fn post(url: &str, body: &'static [u8], headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = reqwest::Client::new().post(url).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("listen answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("answer body"))
}

const EVENT: &[u8] = b"{\"type\":\"order.paid\",\"amount\":1.50}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_reports_show_each_verdict_and_answers_follow_it() {
    let listen = Listen::start(&[
        "--allow-untimestamped",
        "--secret-env",
        "OLD",
        "--secret-env",
        "NEW",
    ]);
    let mut printed = String::new();

    let good = signature(NEW_SECRET, EVENT);
    let answer = post(
        &listen.url,
        EVENT,
        &[
            ("fullup-signature", &good),
            ("content-type", "application/json"),
        ],
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    let block = listen.block();
    assert!(block.contains("POST /webhook-endpoint"), "{block}");
    assert!(
        block.contains(&format!("fullup-signature: {good}")),
        "{block}"
    );
    assert!(
        block.contains("\"type\": \"order.paid\""),
        "pretty JSON: {block}"
    );
    assert!(
        block.contains("verdict: verified with secret #2"),
        "{block}"
    );
    assert!(block.contains("answered: 200"), "{block}");
    printed.push_str(&block);

    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("fullup-signature", &signature(OLD_SECRET, b"{}"))],
            "verdict: mismatch",
        ),
        (&[], "verdict: missing header"),
        (
            &[("fullup-signature", "sha256=abc")],
            "verdict: malformed header: fullup-signature",
        ),
    ];
    for (headers, verdict) in cases {
        let answer = post(&listen.url, EVENT, headers).await;
        assert_eq!(answer.0, 403, "{}", answer.1);
        let block = listen.block();
        assert!(block.contains(verdict), "expected {verdict:?} in:\n{block}");
        assert!(block.contains("answered: 403"), "{block}");
        printed.push_str(&block);
    }

    let elsewhere = listen.url.replace("/webhook-endpoint", "/other");
    let answer = post(&elsewhere, EVENT, &[("fullup-signature", &good)]).await;
    assert_eq!(answer.0, 404);
    assert!(listen.block().contains("ignored"));

    for secret in [OLD_SECRET, NEW_SECRET] {
        assert!(
            !printed.contains(secret),
            "a secret was printed:\n{printed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_mode_prints_one_object_per_request() {
    let listen = Listen::start(&["--json", "--allow-untimestamped", "--secret-env", "OLD"]);
    let answer = post(
        &listen.url,
        EVENT,
        &[("fullup-signature", &signature(OLD_SECRET, EVENT))],
    )
    .await;
    assert_eq!(answer.0, 200);
    let (line, report) = listen.json();
    assert_eq!(report["verdict"]["verified"], true);
    assert_eq!(report["verdict"]["secret"], 1);
    assert_eq!(report["body_bytes"], EVENT.len());
    let embedded = format!(
        "\"body\":{}",
        std::str::from_utf8(EVENT).expect("UTF-8 event")
    );
    assert!(
        line.contains(&embedded),
        "one-line JSON is embedded as sent: {line}"
    );
    assert_eq!(report["status"], 200);

    let answer = post(
        &listen.url,
        b"\xff\x00",
        &[("fullup-signature", &signature(NEW_SECRET, b"\xff\x00"))],
    )
    .await;
    assert_eq!(answer.0, 403);
    let (_, report) = listen.json();
    assert_eq!(report["verdict"]["verified"], false);
    assert_eq!(report["verdict"]["code"], "signature_mismatch");
    assert_eq!(report["body_base64"], "/wA=");
    assert_eq!(report["status"], 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_flag_simulates_failing_receivers() {
    let listen = Listen::start(&[
        "--status",
        "503",
        "--allow-untimestamped",
        "--secret-env",
        "OLD",
    ]);
    let answer = post(
        &listen.url,
        EVENT,
        &[("fullup-signature", &signature(OLD_SECRET, EVENT))],
    )
    .await;
    assert_eq!(answer.0, 503);
    assert!(listen.block().contains("answered: 503"));
    let answer = post(
        &listen.url,
        EVENT,
        &[("fullup-signature", &signature(NEW_SECRET, EVENT))],
    )
    .await;
    assert_eq!(answer.0, 403, "unverified requests are still refused");
    listen.block();
}

/// A local app on port 0 that hands every request to the test and answers 201.
async fn app() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
) {
    let (send, received) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |headers: HeaderMap, body: Bytes| {
        let send = send.clone();
        async move {
            let _ = send.send((headers, body));
            (axum::http::StatusCode::CREATED, "created by the app")
        }
    };
    let router = axum::Router::new().route("/hooks/fullup", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let url = format!(
        "http://{}/hooks/fullup",
        listener.local_addr().expect("bound address")
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_to_relays_verified_requests_byte_for_byte() {
    let (app_url, mut received) = app().await;
    let listen = Listen::start(&[
        "--forward-to",
        &app_url,
        "--allow-untimestamped",
        "--secret-env",
        "OLD",
    ]);
    // Bytes a re-serializing proxy would change: spacing, escapes, key order, number spelling.
    let body: &'static [u8] = b"{ \"z\": 1.50,\n  \"a\": \"caf\\u00e9 \xe2\x82\xac\" }\r\n";
    let good = signature(OLD_SECRET, body);
    let headers = [
        ("fullup-signature", good.as_str()),
        ("x-custom", "kept"),
        ("content-type", "application/json"),
    ];

    let answer = post(&listen.url, body, &headers).await;
    assert_eq!(answer, (201, "created by the app".to_owned()));
    let (app_headers, app_body) = received
        .try_recv()
        .expect("the app got the request before listen answered");
    assert_eq!(app_body, body);
    assert_eq!(app_headers["fullup-signature"], good.as_str());
    assert_eq!(app_headers["x-custom"], "kept");
    assert_eq!(app_headers["content-type"], "application/json");
    let block = listen.block();
    assert!(
        block.contains(&format!("forwarded to {app_url}: answered 201")),
        "{block}"
    );
    assert!(block.contains("created by the app"), "{block}");

    let answer = post(
        &listen.url,
        body,
        &[("fullup-signature", &signature(NEW_SECRET, body))],
    )
    .await;
    assert_eq!(answer.0, 403);
    assert!(
        received.try_recv().is_err(),
        "unverified requests are not forwarded"
    );
    assert!(!listen.block().contains("forwarded"));
}

/// The headers Fullup sends with `body`: both signatures, timestamped now.
fn delivery_headers(secret: &str, id: &str, body: &[u8]) -> Vec<(String, String)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let now = i64::try_from(now).expect("seconds fit in i64");
    let key = Secret::parse(secret).expect("valid test secret");
    vec![
        ("fullup-signature".to_owned(), signature(secret, body)),
        ("webhook-id".to_owned(), id.to_owned()),
        ("webhook-timestamp".to_owned(), now.to_string()),
        (
            "webhook-signature".to_owned(),
            sign_standard(&key, id, now, body),
        ),
    ]
}

fn borrowed(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

/// Issue 18: a captured delivery replayed without its `webhook-*` headers, or as an
/// exact copy within the 5-minute window, is refused by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_are_refused_by_default() {
    let listen = Listen::start(&["--json", "--secret-env", "OLD"]);
    let captured = delivery_headers(OLD_SECRET, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", EVENT);
    let answer = post(&listen.url, EVENT, &borrowed(&captured)).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    let (_, report) = listen.json();
    assert_eq!(report["verdict"]["verified"], true, "{report}");
    assert_eq!(
        report["verdict"]["event_id"],
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    );

    let stripped: Vec<(&str, &str)> = borrowed(&captured)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("webhook-"))
        .collect();
    let answer = post(&listen.url, EVENT, &stripped).await;
    assert_eq!(answer.0, 403, "{}", answer.1);
    assert!(answer.1.contains("allow_untimestamped"), "{}", answer.1);
    let (_, report) = listen.json();
    assert_eq!(report["verdict"]["verified"], false);
    assert_eq!(report["verdict"]["code"], "missing_timestamped_signature");
    assert!(
        report["verdict"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("--allow-untimestamped")),
        "{report}"
    );

    let answer = post(&listen.url, EVENT, &borrowed(&captured)).await;
    assert_eq!(answer.0, 403, "{}", answer.1);
    let (_, report) = listen.json();
    assert_eq!(report["verdict"]["verified"], false);
    assert_eq!(report["verdict"]["code"], "replayed", "{report}");
}

/// The opt-out accepts a body-only sender, and says so in `--help`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_untimestamped_accepts_a_body_only_sender() {
    let listen = Listen::start(&["--allow-untimestamped", "--secret-env", "OLD"]);
    let answer = post(
        &listen.url,
        EVENT,
        &[("fullup-signature", &signature(OLD_SECRET, EVENT))],
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert!(listen.block().contains("verdict: verified with secret #1"));
}

#[test]
fn missing_secret_is_a_one_line_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_fullup"))
        .args([
            "listen",
            "--port",
            "0",
            "--secret-env",
            "FULLUP_TEST_UNSET_VARIABLE",
        ])
        .env_remove("FULLUP_TEST_UNSET_VARIABLE")
        .output()
        .expect("the fullup binary runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).expect("UTF-8 stderr");
    assert!(stderr.contains("FULLUP_TEST_UNSET_VARIABLE"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(output.stdout.is_empty());
}
