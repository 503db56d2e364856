//! Issue 18: a captured delivery replayed without its `webhook-*` headers (body and
//! `fullup-signature` only, which never expire) is refused by default, by the extractor
//! and by the layer; receivers of a body-only sender opt out explicitly.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fullup_axum::{Seen, SeenIds, VerifyConfig, VerifyLayer};
use http_body_util::BodyExt as _;
use tower::{Layer as _, ServiceExt as _};

use crate::extract::app;
use crate::{assert_error, config, json, now, timestamped};

const EVENT: &[u8] = b"{\"type\":\"order.paid\",\"amount\":1.50}";

/// What an attacker keeps of a captured delivery: the body and `fullup-signature`.
fn stripped(captured: Request<Body>) -> Request<Body> {
    let (mut parts, body) = captured.into_parts();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(parts.headers.remove(name).is_some(), "{name} was captured");
    }
    assert!(parts.headers.contains_key("fullup-signature"));
    Request::from_parts(parts, body)
}

async fn send(config: VerifyConfig, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    json(app(config).oneshot(request).await.expect("infallible")).await
}

#[tokio::test]
async fn the_extractor_refuses_a_stripped_replay_by_default() {
    let captured = || timestamped(EVENT, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now());
    let (status, _) = send(config(), captured()).await;
    assert_eq!(status, StatusCode::OK, "the original delivery is accepted");

    let answer = send(config(), stripped(captured())).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "missing_timestamped_signature",
    );
    let message = answer.1["error"]["message"].as_str().expect("a message");
    assert!(message.contains("allow_untimestamped"), "{message}");
}

#[tokio::test]
async fn the_layer_refuses_a_stripped_replay_by_default() {
    let inner = tower::service_fn(|_: Request<http_body_util::Full<bytes::Bytes>>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
            bytes::Bytes::from("inner"),
        )))
    });
    let service = VerifyLayer::new(config()).layer(inner);
    let response = service
        .oneshot(stripped(timestamped(EVENT, "msg_1", now())))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.into_body().collect().await.expect("in memory");
    let json: serde_json::Value = serde_json::from_slice(&body.to_bytes()).expect("JSON error");
    assert_eq!(json["error"]["code"], "missing_timestamped_signature");
}

/// The explicit opt-out, for a sender that signs only the body, accepts it (and so the
/// stripped replay: the reason it is not the default).
#[tokio::test]
async fn allow_untimestamped_is_the_explicit_opt_out() {
    assert!(config().requires_timestamped());
    let lenient = config().allow_untimestamped();
    assert!(!lenient.requires_timestamped());
    let (status, _) = send(lenient, stripped(timestamped(EVENT, "msg_1", now()))).await;
    assert_eq!(status, StatusCode::OK);
}

/// Within the tolerance window a byte-for-byte copy still verifies; `SeenIds` refuses it
/// while accepting the sender's retry (same id, new timestamp).
#[test]
fn seen_ids_tell_a_copy_from_a_retry() {
    let config = config();
    let seen = SeenIds::new(SeenIds::DEFAULT_CAPACITY);
    let at = 1_700_000_000;
    let check = |request: Request<Body>, now: i64| {
        let (parts, _) = request.into_parts();
        let delivery = config
            .verify_at(&parts.headers, EVENT, now)
            .expect("a valid delivery");
        let stamped = delivery.timestamped.expect("timestamped");
        seen.check(&stamped.id, stamped.timestamp, now)
    };
    assert_eq!(check(timestamped(EVENT, "msg_1", at), at), Seen::First);
    assert_eq!(
        check(timestamped(EVENT, "msg_1", at), at + 60),
        Seen::Replay
    );
    assert_eq!(
        check(timestamped(EVENT, "msg_1", at + 5), at + 61),
        Seen::Retry {
            previous_timestamp: at
        }
    );
}
