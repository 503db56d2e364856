//! What `fullup serve --log-format json` writes into a pipe at `RUST_LOG=trace`: one
//! JSON object per line with the documented fields, no terminal escape codes, and
//! never the admin token, a webhook secret or a site API key.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support_receiver::RecordingReceiver;
use crate::support_server::{ADMIN_TOKEN, Server, call};

/// Bound on waiting for the delivery to arrive.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The fields every line has.
const EVERY_LINE: [&str; 3] = ["timestamp", "level", "target"];
/// The fields of the line each API request gets.
const REQUEST_FIELDS: [&str; 5] = ["method", "route", "status", "duration_ms", "request_id"];
/// The fields of the line each attempt gets.
const ATTEMPT_FIELDS: [&str; 5] = ["delivery", "webhook", "attempt", "class", "duration_ms"];

/// Multi-threaded: `terminate` blocks its thread while the receiver, on this runtime,
/// may still be answering an attempt that shutdown waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_carry_their_fields_and_hold_no_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let (mut server, lines) =
        Server::start_capturing_logs(&database_url, &["--log-format", "json"], "trace").await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let receiver = RecordingReceiver::start().await;

    let site = call(
        &client,
        format!("{base}/v1/sites"),
        json!({"name": "logs"}),
        201,
    )
    .await;
    let site = site["id"].as_str().expect("site id").to_owned();
    let hooks = format!("{base}/v1/sites/{site}/webhooks");
    let webhook = json!({"url": receiver.url(), "event_types": ["*"], "description": "ok"});
    let webhook = call(&client, hooks.clone(), webhook, 201).await;
    let secret = webhook["secret"].as_str().expect("secret").to_owned();
    receiver.expect_secret(fullup_signature::Secret::parse(&secret).expect("secret"));
    // Port 9 (discard) is closed on loopback: every attempt there fails to connect.
    let closed =
        json!({"url": "http://127.0.0.1:9/hook", "event_types": ["*"], "description": "down"});
    let closed = call(&client, hooks, closed, 201).await;
    let closed_secret = closed["secret"].as_str().expect("secret").to_owned();
    let key = call(
        &client,
        format!("{base}/v1/sites/{site}/api-keys"),
        json!({"name": "logs"}),
        201,
    )
    .await;
    let api_key = key["token"].as_str().expect("token").to_owned();

    let sent = client
        .post(format!("{base}/v1/sites/{site}/events"))
        .bearer_auth(&api_key)
        .json(&json!({"type": "order.paid", "data": {"n": 1}}))
        .send()
        .await
        .expect("ingest");
    assert_eq!(sent.status(), 202);
    let refused = client
        .get(format!("{base}/v1/sites"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("a refused call");
    assert_eq!(refused.status(), 401);
    for path in ["/readyz", "/metrics", "/no/such/route"] {
        reqwest::get(format!("{base}{path}")).await.expect(path);
    }
    let deadline = std::time::Instant::now() + DELIVERY_TIMEOUT;
    while receiver.deliveries() == 0 {
        assert!(std::time::Instant::now() < deadline, "no delivery arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    let lines = lines.join().expect("the log reader");

    assert!(!lines.is_empty());
    // Every line: valid JSON with these fields. `message` too on ours (a dependency
    // such as sqlx may name its text otherwise).
    let secrets = [
        ADMIN_TOKEN,
        api_key.as_str(),
        secret.as_str(),
        secret.trim_start_matches("whsec_"),
        closed_secret.as_str(),
        closed_secret.trim_start_matches("whsec_"),
    ];
    let mut messages = HashSet::new();
    let mut requests = Vec::new();
    let mut attempts = Vec::new();
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "an escape code: {line}");
        for secret in secrets {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for field in EVERY_LINE {
            assert!(event.get(field).is_some(), "no {field}: {line}");
        }
        let ours = event["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("fullup"));
        assert!(
            !ours || event.get("message").is_some(),
            "no message: {line}"
        );
        assert!(
            !ours || !line.contains("Some("),
            "a field in debug form: {line}"
        );
        let message = event["message"].as_str().unwrap_or_default().to_owned();
        match message.as_str() {
            "request" => requests.push(event),
            "delivery attempt succeeded" | "delivery attempt failed" => attempts.push(event),
            _ => {}
        }
        messages.insert(message);
    }

    for event in requests.iter().chain(&attempts) {
        let fields: &[&str] = if event["message"] == "request" {
            &REQUEST_FIELDS
        } else {
            &ATTEMPT_FIELDS
        };
        for field in fields {
            assert!(event.get(*field).is_some(), "no {field}: {event}");
        }
    }
    let routes: HashSet<(&str, u64)> = requests
        .iter()
        .map(|e| {
            let route = e["route"].as_str().expect("route is a string");
            (route, e["status"].as_u64().expect("status is a number"))
        })
        .collect();
    for expected in [
        ("/v1/sites/{site_id}/events", 202),
        ("/v1/sites", 401),
        ("/readyz", 200),
        ("/metrics", 200),
        ("unmatched", 404),
    ] {
        assert!(
            routes.contains(&expected),
            "no request line {expected:?}: {routes:?}"
        );
    }
    let classes: HashSet<&str> = attempts
        .iter()
        .map(|e| e["class"].as_str().expect("class is a string"))
        .collect();
    assert!(classes.contains("2xx"), "{attempts:?}");
    assert!(classes.contains("connect_error"), "{attempts:?}");
    assert!(
        attempts
            .iter()
            .any(|e| e["class"] == "2xx" && e["status"].as_u64() == Some(200)),
        "an attempt's status is a plain number: {attempts:?}"
    );
}

/// Runs `fullup serve` with `args` until one API request is logged, then stops it;
/// returns what it logged.
async fn logged_lines(args: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let (mut server, lines) = Server::start_capturing_logs(&database_url, args, "info").await;
    let sites = reqwest::Client::new()
        .get(format!("{}/v1/sites", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("list sites");
    assert_eq!(sites.status(), 200);
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    lines.join().expect("the log reader")
}

/// Into a pipe, the default is JSON; `--log-format pretty` writes plain text with no
/// colour codes (stderr is not a terminal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_gets_json_by_default_and_pretty_lines_without_colour() {
    let default = logged_lines(&[]).await;
    assert!(
        default.iter().any(|l| l.contains(r#""route":"/v1/sites""#)),
        "{default:?}"
    );
    for line in &default {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }

    let pretty = logged_lines(&["--log-format", "pretty"]).await;
    let request = pretty
        .iter()
        .find(|l| l.contains("route=/v1/sites"))
        .unwrap_or_else(|| panic!("no request line: {pretty:?}"));
    assert!(request.contains("status=200"), "{request}");
    for line in &pretty {
        assert!(!line.contains('\u{1b}'), "an escape code: {line:?}");
        assert!(serde_json::from_str::<Value>(line).is_err(), "JSON: {line}");
    }
}
