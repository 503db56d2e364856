//! Standard Webhooks headers: exposed when valid, and required by default.

use axum::http::StatusCode;
use serde_json::json;
use tower::ServiceExt as _;

use crate::extract::app;
use crate::{SECRET, assert_error, config, json, now, signed, timestamped};

async fn send(
    config: fullup_axum::VerifyConfig,
    request: axum::http::Request<axum::body::Body>,
) -> (StatusCode, serde_json::Value) {
    json(app(config).oneshot(request).await.expect("infallible")).await
}

#[tokio::test]
async fn valid_timestamped_delivery_exposes_id_and_timestamp() {
    let at = now();
    let (status, body) = send(
        config(),
        timestamped(b"{}", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", at),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["event_id"], json!("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"));
    assert_eq!(body["timestamp"], json!(at));
}

#[tokio::test]
async fn required_timestamp_passes_when_valid() {
    let config = config();
    let (status, _) = send(config, timestamped(b"{}", "msg_1", now())).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn required_timestamp_rejects_its_absence_with_400() {
    let answer = send(config(), signed(b"{}", SECRET)).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "missing_timestamped_signature",
    );
}

#[tokio::test]
async fn stale_timestamp_is_403() {
    let answer = send(config(), timestamped(b"{}", "msg_1", now() - 301)).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "stale_timestamp");
}

#[tokio::test]
async fn future_timestamp_is_403() {
    let answer = send(config(), timestamped(b"{}", "msg_1", now() + 600)).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "stale_timestamp");
}

/// A replay that keeps the body and fullup-signature but rewrites the timestamp.
#[tokio::test]
async fn rewritten_timestamp_is_403() {
    let mut request = timestamped(b"{}", "msg_1", now() - 30);
    let fresh = now()
        .to_string()
        .parse()
        .expect("digits are a valid header value");
    request.headers_mut().insert("webhook-timestamp", fresh);
    let answer = send(config(), request).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "signature_mismatch");
}

/// Headers that were sent are checked even when not required.
#[tokio::test]
async fn partial_standard_headers_are_400_even_when_not_required() {
    let mut request = timestamped(b"{}", "msg_1", now());
    request.headers_mut().remove("webhook-signature");
    let answer = send(config().allow_untimestamped(), request).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "missing_timestamped_signature",
    );
}

#[tokio::test]
async fn malformed_timestamp_is_400() {
    let mut request = timestamped(b"{}", "msg_1", now());
    request
        .headers_mut()
        .insert("webhook-timestamp", "yesterday".parse().expect("ascii"));
    let answer = send(config(), request).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_signature");
}

#[test]
fn verify_at_uses_the_given_clock() {
    let request = timestamped(b"{}", "msg_1", 1_700_000_000);
    let (parts, _) = request.into_parts();
    let config = config();
    let info = config
        .verify_at(&parts.headers, b"{}", 1_700_000_300)
        .expect("within tolerance");
    assert_eq!(info.timestamp(), Some(1_700_000_000));
    let late = config.verify_at(&parts.headers, b"{}", 1_700_000_301);
    assert!(
        matches!(late, Err(fullup_axum::Rejection::StaleTimestamp { .. })),
        "{late:?}"
    );
}
