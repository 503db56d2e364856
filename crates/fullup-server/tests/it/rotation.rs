//! Webhook secret rotation: receivers that hold both secrets never see a failure across
//! the cut-over, and seed-style receivers (one secret, `fullup-signature` only) switch
//! at the announced time.

use std::time::Duration;

use fullup_server::domain::clock::ManualClock;
use fullup_signature::standard::StandardVerifier;
use fullup_signature::{Secret, Verifier, sign};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::manual_clock;
use crate::support::time::{AdvanceMs as _, NowMs as _, format_rfc3339};
use crate::support::{Backend, Received, TestReceiver, TestServer, store_test};

const WAIT: Duration = Duration::from_secs(10);
const GRACE_SECS: i64 = 3600;

async fn rotate(server: &TestServer, site: &str, webhook: &str, body: Value) -> (u16, Value) {
    server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks/{webhook}/rotate-secret"),
            Some(body),
        )
        .await
}

/// Sends an event and returns its delivery as the receiver saw it, once its success
/// is recorded: the test then moves the clock by up to a day, and on PostgreSQL, whose
/// leases run on the service's clock, an attempt still in flight would lose its lease
/// and be made again, arriving as a later phase's delivery.
async fn deliver(
    server: &TestServer,
    receiver: &mut TestReceiver,
    site: &str,
    phase: &str,
) -> Received {
    let event = server
        .send_event(site, "form.submitted", json!({ "phase": phase }))
        .await;
    let got = receiver.next(WAIT).await;
    server.wait_for_state(site, &event, "succeeded").await;
    assert!(
        got.fullup_ok,
        "{phase}: fullup-signature failed for a receiver holding both secrets"
    );
    assert!(
        got.standard_ok,
        "{phase}: webhook-signature failed for a receiver holding both secrets"
    );
    got
}

/// Whether `webhook-signature` verifies under `secrets` as of the delivery's own time.
fn standard_ok(got: &Received, secrets: &[&Secret]) -> bool {
    let now_secs = got.header("webhook-timestamp").parse().expect("timestamp");
    StandardVerifier::new(secrets.iter().map(|s| (*s).clone()))
        .expect("secrets")
        .verify_at(
            Some(got.header("webhook-id")),
            Some(got.header("webhook-timestamp")),
            Some(got.header("webhook-signature")),
            &got.body,
            now_secs,
        )
        .is_ok()
}

fn fullup_ok(got: &Received, secret: &Secret) -> bool {
    Verifier::new([secret.clone()])
        .expect("secret")
        .verify(Some(got.header("fullup-signature")), &got.body)
        .is_ok()
}

fn entries(got: &Received) -> usize {
    got.header("webhook-signature").split(' ').count()
}

store_test!(receivers_holding_both_secrets_never_fail_across_the_cut_over);
async fn receivers_holding_both_secrets_never_fail_across_the_cut_over(backend: Backend) {
    let clock: std::sync::Arc<ManualClock> = manual_clock();
    let server = backend.start_with(|c| c.clock = clock.clone()).await;
    let mut receiver = TestReceiver::start().await;
    receiver.set_clock(clock.clone());
    let site = server.create_site().await;
    let (webhook, old) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    receiver.expect_secret(old.clone());

    let before = deliver(&server, &mut receiver, &site, "before rotation").await;
    assert_eq!(
        before.header("fullup-signature"),
        sign(&old, &before.body).to_hex()
    );
    assert_eq!(entries(&before), 1);

    let rotated_at = clock.now_ms();
    let (status, body) = rotate(
        &server,
        &site,
        &webhook,
        json!({"grace_period_secs": GRACE_SECS}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let new = Secret::parse(body["secret"].as_str().expect("secret")).expect("valid secret");
    assert_ne!(new, old);
    let grace_end = rotated_at + GRACE_SECS * 1000;
    assert_eq!(
        body["previous_secret_valid_until"],
        format_rfc3339(grace_end)
    );
    assert_eq!(
        body["fullup_signature_switches_at"],
        format_rfc3339(grace_end)
    );
    receiver.expect_secret(new.clone());

    clock.advance_ms(1000);
    let during = deliver(&server, &mut receiver, &site, "during grace").await;
    clock.advance_ms(grace_end - 1 - clock.now_ms());
    let last_old = deliver(&server, &mut receiver, &site, "1 ms before the grace ends").await;
    for got in [&during, &last_old] {
        assert!(
            fullup_ok(got, &old),
            "fullup-signature keeps the old secret during grace"
        );
        assert!(!fullup_ok(got, &new));
        assert_eq!(
            entries(got),
            2,
            "one webhook-signature entry per valid secret"
        );
        assert!(
            got.header("webhook-signature")
                .starts_with(&fullup_signature::sign_standard(
                    &new,
                    got.header("webhook-id"),
                    got.header("webhook-timestamp").parse().expect("timestamp"),
                    &got.body,
                )),
            "the new secret's signature comes first"
        );
        assert!(
            standard_ok(got, &[&new]),
            "a receiver holding only the new secret verifies"
        );
        assert!(
            standard_ok(got, &[&old]),
            "a receiver still holding only the old secret verifies"
        );
    }

    clock.advance_ms(1);
    assert_eq!(clock.now_ms(), grace_end);
    let after = deliver(&server, &mut receiver, &site, "at the grace end").await;
    clock.advance_ms(24 * 3600 * 1000);
    let later = deliver(&server, &mut receiver, &site, "a day later").await;
    for got in [&after, &later] {
        assert!(
            fullup_ok(got, &new),
            "fullup-signature uses the new secret once the grace ended"
        );
        assert!(!fullup_ok(got, &old));
        assert_eq!(entries(got), 1, "the expired secret no longer signs");
        assert!(standard_ok(got, &[&new]));
        assert!(!standard_ok(got, &[&old]));
    }
}

store_test!(an_eleventh_rotation_in_grace_is_refused_and_a_chosen_secret_accepted);
/// Issue 18: an eleventh rotation within the grace periods dropped the oldest secret,
/// the one `fullup-signature` carries, before its announced end.
async fn an_eleventh_rotation_in_grace_is_refused_and_a_chosen_secret_accepted(backend: Backend) {
    let clock = manual_clock();
    let server = backend.start_with(|c| c.clock = clock.clone()).await;
    let mut receiver = TestReceiver::start().await;
    receiver.set_clock(clock.clone());
    let site = server.create_site().await;
    let (webhook, first) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    let mut secrets = vec![first];
    for _ in 0..10 {
        let (status, body) = rotate(&server, &site, &webhook, json!({})).await;
        assert_eq!(status, 200, "{body}");
        secrets.push(Secret::parse(body["secret"].as_str().expect("secret")).expect("secret"));
        clock.advance_ms(1000);
    }
    let (status, body) = rotate(&server, &site, &webhook, json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("too_many_rotations")),
        "{body}"
    );
    let chosen = "my-own-rotated-secret-0123456789";
    let (status, body) = rotate(
        &server,
        &site,
        &webhook,
        json!({"secret": chosen, "grace_period_secs": 0}),
    )
    .await;
    assert_eq!(
        status, 200,
        "a rotation without grace adds no old secret: {body}"
    );
    assert_eq!(body["secret"], chosen);
    // The chosen secret and the 10 old ones in their grace sign; the secret it replaced
    // without grace is gone, and the oldest still carries fullup-signature.
    for secret in &secrets[..10] {
        receiver.expect_secret(secret.clone());
    }
    receiver.expect_secret(Secret::parse(chosen).expect("secret"));
    let got = deliver(&server, &mut receiver, &site, "after 11 rotations").await;
    assert_eq!(entries(&got), 11);
    for (i, secret) in secrets.iter().enumerate() {
        assert_eq!(standard_ok(&got, &[secret]), i < 10, "secret {i}");
    }
    assert!(
        fullup_ok(&got, &secrets[0]),
        "fullup-signature uses the oldest secret, valid as announced"
    );
    let switches = body["fullup_signature_switches_at"].as_str().expect("time");
    assert!(
        switches > body["previous_secret_valid_until"].as_str().expect("time"),
        "{body}"
    );
}

store_test!(rotation_requests_are_validated);
async fn rotation_requests_are_validated(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let other = server.create_site().await;
    let receiver = TestReceiver::start().await;
    let (webhook, current) = server.create_webhook(&site, &receiver.url(), &["*"]).await;

    let (status, body) = rotate(
        &server,
        &site,
        &webhook,
        json!({"grace_period_secs": 604_801}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_grace_period")),
        "{body}"
    );
    let (status, body) = rotate(&server, &site, &webhook, json!({"secret": "short"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_secret")),
        "{body}"
    );
    let (status, body) = rotate(
        &server,
        &site,
        &webhook,
        json!({"secret": current.expose()}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_secret")),
        "{body}"
    );
    let (status, body) = rotate(&server, &site, &webhook, json!({"grace": 1})).await;
    assert_eq!(status, 422, "unknown fields are refused: {body}");
    let (status, _) = rotate(&server, &other, &webhook, json!({})).await;
    assert_eq!(status, 404, "another site's webhook");

    let (status, body) = rotate(
        &server,
        &site,
        &webhook,
        json!({"grace_period_secs": 604_800}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, secret) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{site}/webhooks/{webhook}/secret"),
            None,
        )
        .await;
    assert_eq!(
        secret["secret"], body["secret"],
        "GET …/secret shows the new secret"
    );
}
