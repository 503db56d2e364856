//! Integration tests of fullup-axum: every answer the extractor and the layer can give.

mod extract;
mod layer;
mod logs;
mod replay;
mod timestamped;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use fullup_axum::VerifyConfig;
use fullup_signature::{Secret, sign, sign_standard};
use http_body_util::BodyExt as _;

/// The seed document's example secret: what a user copying it would configure.
pub const SECRET: &str = "your_shared_secret_key";
/// A second secret, as during a rotation.
pub const NEW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Parses a test secret.
pub fn secret(text: &str) -> Secret {
    Secret::parse(text).expect("test secrets are valid")
}

/// A config accepting only [`SECRET`], with defaults (timestamped signatures required).
pub fn config() -> VerifyConfig {
    VerifyConfig::new([secret(SECRET)]).expect("one secret is enough")
}

/// [`config`] opted out of timestamps, for a sender that signs only the body: what the
/// tests of body handling use, as [`signed`] requests carry only `fullup-signature`.
pub fn body_only() -> VerifyConfig {
    config().allow_untimestamped()
}

/// The fullup-signature header value for `body` under `secret_text`.
pub fn signature(secret_text: &str, body: &[u8]) -> String {
    sign(&secret(secret_text), body).to_hex()
}

/// A POST to /hook carrying `body` and the given headers.
pub fn post(body: impl Into<Body>, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::post("/hook");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.into()).expect("valid request")
}

/// A POST of `body` signed with `secret_text`.
pub fn signed(body: &'static [u8], secret_text: &str) -> Request<Body> {
    post(body, &[("fullup-signature", &signature(secret_text, body))])
}

/// A POST of `body` with both signatures, the timestamped one made at `timestamp`.
pub fn timestamped(body: &'static [u8], id: &str, timestamp: i64) -> Request<Body> {
    let standard = sign_standard(&secret(SECRET), id, timestamp, body);
    post(
        body,
        &[
            ("fullup-signature", &signature(SECRET, body)),
            ("webhook-id", id),
            ("webhook-timestamp", &timestamp.to_string()),
            ("webhook-signature", &standard),
        ],
    )
}

/// The system clock in Unix seconds, as the extractor reads it.
pub fn now() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(elapsed.as_secs()).expect("seconds fit in i64")
}

/// The status and JSON body of a response.
pub async fn json(response: Response) -> (StatusCode, serde_json::Value) {
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("in-memory body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).expect("every answer is JSON");
    (status, value)
}

/// Asserts a rejection's status and its stable JSON shape.
pub fn assert_error(answer: &(StatusCode, serde_json::Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    let message = answer.1["error"]["message"]
        .as_str()
        .expect("message is a string");
    assert!(!message.is_empty());
}
