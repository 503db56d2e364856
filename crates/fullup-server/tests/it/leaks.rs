//! No leaks: webhook secrets, tokens and event or response bodies never reach the logs
//! (at any level) nor error messages, and `Debug` of every config and model type hides
//! them.
//!
//! The log test installs a global subscriber recording every event at TRACE (and `log`
//! records, as `fullup serve` does) into a buffer: global, because the store logs from
//! its own threads. Tests of this binary run in parallel, so the buffer also holds
//! other tests' logs; they use the same admin token, so that check covers them too.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fullup_server::config::Config;
use fullup_server::crypto::MainKey;
use fullup_server::domain::event_type::EventType;
use fullup_server::domain::health::{Health, HealthEffect, HealthPolicy};
use fullup_server::domain::ids::{ApiKeyId, AttemptId, DeliveryId, EventId, SiteId, WebhookId};
use fullup_server::domain::models::{ApiKey, Attempt, Event};
use fullup_server::domain::outcome::NextStep;
use fullup_server::domain::time::Timestamp;
use fullup_server::domain::webhook::{OldSecret, Secrets, Webhook};
use fullup_server::domain::webhook_url::WebhookUrl;
use fullup_server::store::{ClaimedDelivery, Completion, NewEvent};
use fullup_signature::Secret;
use reqwest::Method;
use serde_json::json;

use crate::support::server::{ADMIN_TOKEN, manual_clock, short_schedule};
use crate::support::time::AdvanceMs as _;
use crate::support::{Backend, TestReceiver, TestServer, store_test};

const WAIT: Duration = Duration::from_secs(10);

/// Everything logged in this process since the first call.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Starts recording (once per process) and returns the recording.
    pub(crate) fn capture() -> Self {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let writer = logs.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .try_init()
                .expect("no other global subscriber in this test binary");
            logs
        })
        .clone()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

/// A marker no other test sends.
fn marker(what: &str) -> String {
    format!("{what}-marker-{:016x}", rand::random::<u64>())
}

/// Asserts `haystack` contains none of `needles`, naming the line that does.
fn assert_absent(place: &str, haystack: &str, needles: &[(&str, &str)]) {
    for (what, needle) in needles {
        if let Some(line) = haystack.lines().find(|l| l.contains(needle)) {
            panic!("{what} leaked into {place}: {line}");
        }
    }
}

store_test!(a_full_delivery_cycle_logs_no_secret_token_or_body);
async fn a_full_delivery_cycle_logs_no_secret_token_or_body(backend: Backend) {
    let logs = Logs::capture();
    let clock = manual_clock();
    let server = backend
        .start_with(|c| {
            c.clock = clock.clone();
            c.delivery.retry = short_schedule();
        })
        .await;
    let mut receiver = TestReceiver::start().await;
    receiver.set_clock(clock.clone());
    let data_marker = marker("data");
    let answer_marker = marker("answer");
    let url_marker = marker("url-token");

    let site = server.create_site().await;
    let (status, key) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/api-keys"),
            Some(json!({"name": "leaks"})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let token = key["token"].as_str().expect("token").to_owned();
    // Receivers often authenticate senders with a token in the URL's query.
    let url = format!("{}?token={url_marker}", receiver.url());
    let (_, secret) = server.create_webhook(&site, &url, &["*"]).await;
    receiver.expect_secret(secret.clone());
    receiver.set_status(500);
    receiver.set_body(&format!("failure {answer_marker}"));

    let (status, body) = server
        .call_as(
            Some(&token),
            Method::POST,
            &format!("/v1/sites/{site}/events"),
            Some(json!({"type": "leak.test", "data": {"note": data_marker}})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let event = body["id"].as_str().expect("event id").to_owned();
    let first = receiver.next(WAIT).await;
    assert!(String::from_utf8_lossy(&first.body).contains(&data_marker));
    let failed = server
        .wait_for_delivery(&site, &event, |d| d["attempt_count"] == 1)
        .await;
    receiver.set_status(200);
    clock.advance_ms(5_000);
    receiver.next(WAIT).await;
    let delivered = server.wait_for_state(&site, &event, "succeeded").await;
    let attempts = server
        .attempts(&site, delivered["id"].as_str().expect("id"))
        .await;
    assert!(
        attempts.iter().any(|a| a["response_body"]
            .as_str()
            .is_some_and(|b| b.contains(&answer_marker))),
        "the receiver's answer is in the attempt log: {attempts:?}"
    );
    server.stop().await;

    let text = logs.text();
    let delivery = failed["id"].as_str().expect("delivery id");
    assert!(
        text.lines()
            .any(|l| l.contains(" INFO ") && l.contains(delivery)),
        "the failed attempt is logged at info, so the capture works"
    );
    let key = secret.expose();
    assert_absent(
        "the logs",
        &text,
        &[
            ("the webhook secret", key),
            ("the webhook secret's key", key.trim_start_matches("whsec_")),
            ("the admin token", ADMIN_TOKEN),
            ("the API key token", &token),
            ("event data", &data_marker),
            ("the receiver's answer", &answer_marker),
            ("the webhook URL's query", &url_marker),
        ],
    );
}

#[tokio::test]
async fn error_messages_do_not_repeat_secrets_or_tokens() {
    let server = TestServer::start().await;
    let receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    let webhooks = format!("/v1/sites/{site}/webhooks");
    let bad_token = format!("fk_{}", marker("token"));
    let (status, body) = server
        .call_as(Some(&bad_token), Method::GET, &webhooks, None)
        .await;
    assert_eq!(status, 401, "{body}");
    assert_absent("a 401", &body.to_string(), &[("the token", &bad_token)]);
    let (status, body) = server
        .call_as(Some(&marker("admin")), Method::GET, "/v1/sites", None)
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.to_string().contains("-marker-"), "{body}");

    let secrets = [
        marker("short")[..14].to_owned(),
        format!(" {}", marker("leading-space")),
        format!("{}\t", marker("trailing-tab")),
        format!("{}\u{7}bell", marker("control")),
    ];
    for secret in &secrets {
        let (status, body) = server
            .call(
                Method::POST,
                &webhooks,
                Some(json!({"url": receiver.url(), "event_types": ["*"], "secret": secret})),
            )
            .await;
        assert_eq!(status, 422, "{secret:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_secret", "{body}");
        assert_absent("a 422", &body.to_string(), &[("the secret", secret.trim())]);
    }

    let data = marker("data");
    let broken = format!(r#"{{"type": "a.b", "data": {{"note": "{data}""#);
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/sites/{site}/events", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(broken)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    let body = resp.text().await.expect("body");
    assert_absent("a 400", &body, &[("event data", &data)]);
    server.stop().await;
}

fn webhook(secret: &Secret, old: &Secret, header: &str) -> Webhook {
    Webhook {
        id: WebhookId::new(Timestamp::EPOCH),
        site_id: SiteId::new(Timestamp::EPOCH),
        url: WebhookUrl::parse("https://example.com/hook").expect("url"),
        event_types: Vec::new(),
        description: "debug".to_owned(),
        headers: fullup_server::domain::headers::CustomHeaders::parse([("authorization", header)])
            .expect("header"),
        health: Health::default(),
        secrets: Ok(Secrets {
            current: secret.clone(),
            old: vec![OldSecret {
                secret: old.clone(),
                valid_until: Timestamp::EPOCH,
            }],
        }),
        created_at: Timestamp::EPOCH,
        updated_at: Timestamp::EPOCH,
        paused: false,
        rate_limit: None,
        ordering: Default::default(),
    }
}

fn event(payload: &str) -> Event {
    Event {
        id: EventId::new(Timestamp::EPOCH),
        site_id: SiteId::new(Timestamp::EPOCH),
        event_type: EventType::parse("debug.test").expect("type"),
        payload: payload.to_owned(),
        created_at: Timestamp::EPOCH,
        idempotency_key: None,
    }
}

#[test]
fn debug_of_config_and_models_redacts_secrets_tokens_and_bodies() {
    let secret = Secret::parse(&marker("whsec")).expect("secret");
    let old = Secret::parse(&marker("old-secret")).expect("secret");
    let admin = Secret::parse(&marker("admin")).expect("token");
    let main_key = MainKey::generate();
    let payload = marker("payload");
    let answer = marker("answer");

    let config = Config {
        admin_token: Some(admin.clone()),
        main_key: Some(main_key.clone()),
        ..Config::default()
    };
    let header = marker("custom-header");
    let hook = webhook(&secret, &old, &header);
    let claimed = ClaimedDelivery {
        delivery_id: DeliveryId::new(Timestamp::EPOCH),
        attempt_count: 0,
        interrupted: None,
        event_id: EventId::new(Timestamp::EPOCH),
        event_type: EventType::parse("debug.test").expect("type"),
        payload: payload.clone(),
        webhook: hook.clone(),
    };
    let completion = Completion {
        attempt: Attempt {
            id: AttemptId::new(Timestamp::EPOCH),
            delivery_id: DeliveryId::new(Timestamp::EPOCH),
            webhook_id: WebhookId::new(Timestamp::EPOCH),
            attempt_number: 1,
            started_at: Timestamp::EPOCH,
            duration: std::time::Duration::from_millis(1),
            status_code: Some(500),
            error_kind: None,
            error_message: None,
            response_body: answer.clone(),
            request_headers: String::new(),
            response_headers: String::new(),
        },
        event_id: claimed.event_id,
        event_type: claimed.event_type.clone(),
        next: NextStep::Failed,
        health: HealthEffect::Healthy,
        policy: HealthPolicy {
            disable_after: Duration::from_secs(3600),
            max_concurrency: 16,
        },
    };
    let new_event = NewEvent {
        event: event(&payload),
        request_hash: [7; 32],
        only_webhook: None,
        hand_off: None,
    };
    let api_key = ApiKey {
        id: ApiKeyId::new(Timestamp::EPOCH),
        site_id: SiteId::new(Timestamp::EPOCH),
        name: "debug".to_owned(),
        scopes: fullup_server::domain::models::Scopes::default(),
        token_hash: [0xab; 32],
        created_at: Timestamp::EPOCH,
    };
    let printed = [
        format!("{config:?}"),
        format!("{hook:?}"),
        format!("{claimed:?}"),
        format!("{completion:?}"),
        format!("{new_event:?}"),
        format!("{api_key:?}"),
    ];
    let main_key_text = main_key.to_base64();
    for text in &printed {
        assert_absent(
            "Debug output",
            text,
            &[
                ("the webhook secret", secret.expose()),
                ("an old secret", old.expose()),
                ("the admin token", admin.expose()),
                ("the main key", main_key_text.as_str()),
                ("event data", &payload),
                ("the receiver's answer", &answer),
                ("a custom header's value", &header),
                ("a token hash", &"ab".repeat(32)),
                ("a token hash", "171, 171, 171"),
            ],
        );
    }
    assert!(printed[2].contains("[redacted, "), "{}", printed[2]);
}
