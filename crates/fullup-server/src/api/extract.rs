//! Extractors whose rejections use the API's error shape instead of axum's plain text.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::{DeserializeOwned, IgnoredAny};

use super::error::ApiError;

/// A JSON request body; errors become 400/413/422 with the API's error shape.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Maps a body read failure (mostly: over the route's size limit) to the API shape.
pub fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is larger than this route accepts; send less data",
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
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        let syntax = serde_json::from_slice::<IgnoredAny>(bytes)
            .err()
            .unwrap_or(err);
        if syntax.is_data() {
            ApiError::invalid("invalid_body", format!("request body: {syntax}"))
        } else {
            ApiError::bad_request(format!("request body is not valid JSON: {syntax}"))
        }
    })
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
