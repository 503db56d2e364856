//! Extractors whose rejections use the API's error shape and statuses instead of
//! axum's plain text. The statuses follow one rule (`docs/api.md`, "Errors"):
//!
//! - 400 `invalid_request`: the request cannot be parsed: a body that is not JSON, a
//!   query parameter or header outside its documented format, a cursor that no page
//!   returned;
//! - 413 `payload_too_large`: the body is over the route's limit, which the message states;
//! - 415 `unsupported_media_type`: the body is not `application/json`, or is compressed;
//! - 422 (a code per rule): the body is JSON, but a field is missing, mistyped or refused.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::{DeserializeOwned, IgnoredAny};

use super::MANAGEMENT_BODY_LIMIT;
use super::error::ApiError;

/// A JSON request body; errors become 400/413/415/422 with the API's error shape.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state, MANAGEMENT_BODY_LIMIT).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON request body whose fields are all optional: an empty body (zero bytes) reads
/// as `{}`, so a client may POST nothing to take every default.
#[derive(Debug)]
pub struct ApiJsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for ApiJsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state, MANAGEMENT_BODY_LIMIT).await?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        parse_json(&bytes).map(ApiJsonOrEmpty)
    }
}

/// Checks the body's media type, then reads it whole (at most `limit` bytes, which the
/// route's `DefaultBodyLimit` enforces).
async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
    limit: usize,
) -> Result<Bytes, ApiError> {
    check_media_type(req.headers())?;
    Bytes::from_request(req, state)
        .await
        .map_err(|rejection| body_rejection(&rejection, limit))
}

/// 415 unless the body is uncompressed JSON: `Content-Encoding` absent or `identity`,
/// `Content-Type` absent (read as JSON) or `application/json` or `application/*+json`,
/// with any parameters (`; charset=utf-8`).
pub fn check_media_type(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(encoding) = headers.get(CONTENT_ENCODING) {
        let encoding = encoding.to_str().unwrap_or("unreadable").trim();
        if !encoding.eq_ignore_ascii_case("identity") {
            return Err(unsupported(format!(
                "Content-Encoding `{}` is not supported; send the body uncompressed",
                shorten(encoding)
            )));
        }
    }
    let Some(content_type) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let content_type = content_type.to_str().unwrap_or("unreadable");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(unsupported(format!(
            "Content-Type `{}` is not supported; send the body as `Content-Type: application/json`",
            shorten(content_type)
        )))
    }
}

fn unsupported(message: String) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        message,
    )
}

/// A header value as echoed in a message: at most 64 characters.
fn shorten(value: &str) -> String {
    value.chars().take(64).collect()
}

/// Maps a body read failure (mostly: over the route's size limit, `limit` bytes) to the
/// API shape.
pub fn body_rejection(rejection: &BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "request body is larger than the {limit} bytes this route accepts; send less data"
            ),
        )
    } else {
        ApiError::bad_request(format!("could not read the request body: {rejection}"))
    }
}

/// Parses a JSON body: syntax errors are 400, shape errors (missing or mistyped fields) 422.
///
/// serde stops at the first problem it meets, so a body that is both mistyped early and
/// malformed later would look like a shape error; such bodies are checked for syntax
/// first, so that the client fixes the JSON before the fields.
///
/// Every body of the API is an object. serde's derived structs also read a JSON array
/// (fields by position), so `[]` would pass as a body whose fields are all optional;
/// anything but an object is refused here instead (422 `invalid_body`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = serde_json::from_slice(bytes).map_err(|err| {
        let syntax = serde_json::from_slice::<IgnoredAny>(bytes)
            .err()
            .unwrap_or(err);
        if syntax.is_data() {
            ApiError::invalid("invalid_body", format!("request body: {syntax}"))
        } else {
            ApiError::bad_request(format!("request body is not valid JSON: {syntax}"))
        }
    })?;
    let first = bytes
        .iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'));
    if first == Some(&b'{') {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            "invalid_body",
            "request body must be a JSON object",
        ))
    }
}

/// Query-string parameters; errors become 400 with the API's error shape.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|err| ApiError::bad_request(format!("query string: {err}")))
    }
}

/// Path parameters; a path that does not decode (not UTF-8 once percent-decoded) names
/// nothing that exists, so it is 404 in the API's shape rather than axum's plain text.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|_| ApiError::not_found("this path"))
    }
}
