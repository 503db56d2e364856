//! Reading a body with a limit, and decoding it only once it is verified.

use axum::Json;
use axum::body::HttpBody as Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::{DeliveryInfo, Rejection, VerifyConfig};

/// A type a verified body can be decoded into: [`Bytes`], [`String`] or [`Json<U>`].
///
/// Decoding happens after verification, so an implementation never sees unverified
/// bytes. Implement it for your own wrapper types (e.g. a protobuf message) if needed.
pub trait FromVerifiedBody: Sized {
    /// Decodes the verified bytes, or says why they do not fit.
    fn from_verified_body(body: Bytes) -> Result<Self, Rejection>;
}

impl FromVerifiedBody for Bytes {
    fn from_verified_body(body: Bytes) -> Result<Self, Rejection> {
        Ok(body)
    }
}

/// Non-UTF-8 bodies are rejected with 400 [`Rejection::InvalidUtf8`].
impl FromVerifiedBody for String {
    fn from_verified_body(body: Bytes) -> Result<Self, Rejection> {
        String::from_utf8(body.into()).map_err(|_| Rejection::InvalidUtf8)
    }
}

/// Invalid JSON, or JSON of another shape, is rejected with 422 [`Rejection::InvalidJson`].
/// The `Content-Type` header is not checked: it is not covered by the signature.
impl<U: DeserializeOwned> FromVerifiedBody for Json<U> {
    fn from_verified_body(body: Bytes) -> Result<Self, Rejection> {
        serde_json::from_slice(&body)
            .map(Json)
            .map_err(|error| Rejection::from_json_error(&error))
    }
}

/// Reads the body within `config`'s limit and verifies it; the extractor and the layer
/// share this, so both refuse exactly the same requests.
pub(crate) async fn read_verified<B>(
    config: &VerifyConfig,
    headers: &HeaderMap,
    body: B,
) -> Result<(Bytes, DeliveryInfo), Rejection>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = read_body(headers, body, config.body_limit()).await?;
    let delivery = config.verify(headers, &bytes)?;
    tracing::debug!(secret_index = delivery.secret_index, "webhook verified");
    Ok((bytes, delivery))
}

/// Reads a whole body, refusing more than `limit` bytes before buffering them.
///
/// A `Content-Length` above the limit is refused without reading anything. This is the
/// read [`Verified`](crate::Verified) and [`VerifyLayer`](crate::VerifyLayer) perform,
/// for callers that verify with [`VerifyConfig::verify`] themselves (and, like
/// `fullup listen`, still want the bytes of a delivery that fails verification).
pub async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, Rejection>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Rejection::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if is_length_limit(error.as_ref()) => Err(Rejection::BodyTooLarge { limit }),
        Err(_) => Err(Rejection::BodyRead),
    }
}

/// True when the error, or one it wraps (an outer limit layer's), is a length limit.
fn is_length_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<LengthLimitError>() {
            return true;
        }
        current = error.source();
    }
    false
}
