//! The axum extractor: a handler that takes `Verified<T>` only ever runs on verified bytes.

use axum::extract::{FromRef, FromRequest, Request};

use crate::body::{FromVerifiedBody, read_verified};
use crate::{DeliveryInfo, Rejection, VerifyConfig};

/// A request body whose signature verified, decoded as `T` afterwards.
///
/// `T` is [`Bytes`](bytes::Bytes), [`String`] or [`Json<U>`](axum::Json) (any
/// [`FromVerifiedBody`]). The [`VerifyConfig`] comes from the router state through
/// [`FromRef`]. As it consumes the body, it must be the handler's last argument.
///
/// ```no_run
/// use axum::Json;
/// use fullup_axum::Verified;
///
/// async fn webhook(verified: Verified<Json<serde_json::Value>>) -> &'static str {
///     let Json(event) = verified.body;
///     if let Some(id) = verified.delivery.event_id() {
///         println!("event {id}: {}", event["type"]);
///     }
///     "ok"
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Verified<T> {
    /// The decoded body.
    pub body: T,
    /// What verification established: the secret used, the event id and timestamp.
    pub delivery: DeliveryInfo,
}

impl<S, T> FromRequest<S> for Verified<T>
where
    VerifyConfig: FromRef<S>,
    S: Send + Sync,
    T: FromVerifiedBody,
{
    type Rejection = Rejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Rejection> {
        let config = VerifyConfig::from_ref(state);
        let (parts, body) = request.into_parts();
        let verified = async {
            let (bytes, delivery) = read_verified(&config, &parts.headers, body).await?;
            Ok(Verified {
                body: T::from_verified_body(bytes)?,
                delivery,
            })
        };
        verified.await.inspect_err(Rejection::log)
    }
}
