//! The `Verified<T>` extractor: one test per success path and per rejection.

use axum::body::Body;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use fullup_axum::{Verified, VerifyConfig};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::{NEW_SECRET, SECRET, assert_error, body_only, json, secret, signature, signed};

async fn bytes(verified: Verified<Bytes>) -> Json<Value> {
    Json(json!({
        "len": verified.body.len(),
        "secret": verified.delivery.secret_index,
        "event_id": verified.delivery.event_id(),
        "timestamp": verified.delivery.timestamp(),
    }))
}

async fn text(Verified { body, .. }: Verified<String>) -> Json<Value> {
    Json(json!({ "text": body }))
}

async fn event(
    Verified {
        body: Json(event), ..
    }: Verified<Json<Value>>,
) -> Json<Value> {
    Json(json!({ "type": event["type"] }))
}

#[derive(serde::Deserialize)]
struct Typed {
    amount: u32,
}

async fn typed(
    Verified {
        body: Json(typed), ..
    }: Verified<Json<Typed>>,
) -> Json<Value> {
    Json(json!({ "amount": typed.amount }))
}

/// A router with one route per body type, all verified with `config`.
pub fn app(config: VerifyConfig) -> Router {
    Router::new()
        .route("/hook", post(bytes))
        .route("/text", post(text))
        .route("/event", post(event))
        .route("/typed", post(typed))
        .with_state(config)
}

async fn send(app: Router, request: axum::http::Request<Body>) -> (StatusCode, Value) {
    json(app.oneshot(request).await.expect("infallible")).await
}

/// Re-targets `request` at `path`.
pub fn to(path: &str, mut request: axum::http::Request<Body>) -> axum::http::Request<Body> {
    *request.uri_mut() = path.parse().expect("valid path");
    request
}

#[tokio::test]
async fn verified_bytes_reach_the_handler() {
    let (status, body) = send(app(body_only()), signed(b"{\"type\":\"ping\"}", SECRET)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"len": 15, "secret": 0, "event_id": null, "timestamp": null})
    );
}

#[tokio::test]
async fn verified_string_reaches_the_handler() {
    let request = to("/text", signed("héllo".as_bytes(), SECRET));
    let (status, body) = send(app(body_only()), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["text"], "héllo");
}

#[tokio::test]
async fn verified_json_reaches_the_handler() {
    let request = to("/event", signed(b"{ \"type\" : \"order.paid\" }", SECRET));
    let (status, body) = send(app(body_only()), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["type"], "order.paid");
}

#[tokio::test]
async fn the_second_secret_of_a_rotation_verifies_and_is_named() {
    let config = VerifyConfig::new([secret(SECRET), secret(NEW_SECRET)])
        .expect("two secrets")
        .allow_untimestamped();
    let (status, body) = send(app(config), signed(b"{}", NEW_SECRET)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["secret"], 1);
}

#[tokio::test]
async fn missing_signature_is_400() {
    let answer = send(app(body_only()), crate::post(&b"{}"[..], &[])).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "missing_signature");
}

#[tokio::test]
async fn malformed_signature_is_400() {
    let request = crate::post(&b"{}"[..], &[("fullup-signature", "not-hex")]);
    let answer = send(app(body_only()), request).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_signature");
}

#[tokio::test]
async fn non_ascii_signature_header_is_400() {
    let mut request = crate::post(&b"{}"[..], &[]);
    let value =
        axum::http::HeaderValue::from_bytes(b"\xe9t\xe9").expect("opaque bytes are allowed");
    request.headers_mut().insert("fullup-signature", value);
    let answer = send(app(body_only()), request).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_signature");
}

#[tokio::test]
async fn wrong_secret_is_403() {
    let answer = send(app(body_only()), signed(b"{}", "another_secret")).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "signature_mismatch");
}

/// The seed's Express receiver verifies `JSON.stringify(req.body)`, not the bytes sent.
#[tokio::test]
async fn a_re_serialized_body_fails() {
    let sent: &[u8] = b"{\"amount\": 1.50, \"note\": \"caf\\u00e9\"}";
    let reserialized =
        serde_json::to_vec(&serde_json::from_slice::<Value>(sent).expect("valid JSON"))
            .expect("serializes");
    assert_ne!(reserialized, sent);
    let request = crate::post(
        reserialized,
        &[("fullup-signature", &signature(SECRET, sent))],
    );
    let answer = send(app(body_only()), to("/event", request)).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "signature_mismatch");
}

#[tokio::test]
async fn body_over_the_declared_limit_is_413() {
    let config = body_only().with_body_limit(8);
    let answer = send(app(config), signed(b"0123456789", SECRET)).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_413() {
    let chunks = ["01234", "56789"].map(|c| Ok::<_, std::io::Error>(Bytes::from(c)));
    let body = Body::from_stream(futures::stream::iter(chunks));
    let request = crate::post(
        body,
        &[("fullup-signature", &signature(SECRET, b"0123456789"))],
    );
    assert!(request.headers().get("content-length").is_none());
    let answer = send(app(body_only().with_body_limit(8)), request).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

#[tokio::test]
async fn default_limit_is_one_mebibyte() {
    assert_eq!(body_only().body_limit(), 1024 * 1024);
    let body: &'static [u8] = Box::leak(vec![b' '; 1024 * 1024 + 1].into_boxed_slice());
    let answer = send(app(body_only()), signed(body, SECRET)).await;
    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

#[tokio::test]
async fn failing_body_stream_is_400() {
    let chunks: [Result<Bytes, std::io::Error>; 2] = [
        Ok(Bytes::from("{")),
        Err(std::io::Error::other("connection reset")),
    ];
    let body = Body::from_stream(futures::stream::iter(chunks));
    let request = crate::post(body, &[("fullup-signature", &signature(SECRET, b"{"))]);
    let answer = send(app(body_only()), request).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "body_read_failed");
}

/// Sends a verified body that `path` cannot decode: 422, and the answer does not quote it.
async fn assert_invalid_json(path: &str, body: &'static [u8]) {
    let answer = send(app(body_only()), to(path, signed(body, SECRET))).await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_json");
    let answer = answer.1.to_string();
    assert!(!answer.contains("SECRET-PAYLOAD"), "{answer}");
}

#[tokio::test]
async fn verified_invalid_json_is_422_without_quoting_the_body() {
    assert_invalid_json("/event", b"{\"type\": SECRET-PAYLOAD").await;
}

#[tokio::test]
async fn verified_json_of_the_wrong_shape_is_422() {
    assert_invalid_json("/typed", b"{\"amount\": \"SECRET-PAYLOAD\"}").await;
}

#[tokio::test]
async fn verified_typed_json_reaches_the_handler() {
    let (status, body) = send(
        app(body_only()),
        to("/typed", signed(b"{\"amount\":7}", SECRET)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["amount"], 7);
}

#[tokio::test]
async fn verified_non_utf8_string_is_400() {
    let answer = send(app(body_only()), to("/text", signed(b"\xff\xfe", SECRET))).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "invalid_utf8");
}

/// Unverified bytes are never parsed: invalid JSON with a bad signature is a 403, not a 422.
#[tokio::test]
async fn verification_runs_before_parsing() {
    let request = to("/event", signed(b"not json", "another_secret"));
    let answer = send(app(body_only()), request).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "signature_mismatch");
}
