//! The tower layer: verification in front of any service, axum or not.
//!
//! The inner service receives the verified bytes as a [`Full<Bytes>`] body and the
//! [`DeliveryInfo`] in the request extensions; it never sees an unverified request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::HttpBody;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use tower::{Layer, Service};

use crate::VerifyConfig;
use crate::body::read_verified;

/// Wraps a service in [`VerifyService`]: verify first, then call it.
///
/// ```no_run
/// use fullup_axum::{DeliveryInfo, VerifyConfig, VerifyLayer};
/// use fullup_signature::Secret;
/// use tower::{ServiceBuilder, service_fn};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = VerifyConfig::new([Secret::parse("your_shared_secret_key")?])?;
/// let service = ServiceBuilder::new().layer(VerifyLayer::new(config)).service(service_fn(
///     |request: http::Request<http_body_util::Full<bytes::Bytes>>| async move {
///         let secret = request.extensions().get::<DeliveryInfo>().map(|d| d.secret_index);
///         Ok::<_, std::convert::Infallible>(http::Response::new(format!("{secret:?}")))
///     },
/// ));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct VerifyLayer {
    config: VerifyConfig,
}

impl VerifyLayer {
    /// A layer verifying every request with `config`.
    pub fn new(config: VerifyConfig) -> Self {
        VerifyLayer { config }
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// A service that buffers and verifies each request body before passing it on.
///
/// Rejected requests are answered by the service itself (see [`Rejection`]); the
/// response body is therefore an [`Either`] of the inner service's body and the
/// rejection's JSON.
#[derive(Debug, Clone)]
pub struct VerifyService<S> {
    inner: S,
    config: VerifyConfig,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResBody> Service<Request<B>> for VerifyService<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    B: HttpBody + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Either<ResBody, Full<Bytes>>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone is not ready; the original (polled ready) one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match read_verified(&config, &parts.headers, body).await {
                Ok((bytes, delivery)) => {
                    parts.extensions.insert(delivery);
                    let request = Request::from_parts(parts, Full::new(bytes));
                    Ok(inner.call(request).await?.map(Either::Left))
                }
                Err(rejection) => {
                    rejection.log();
                    Ok(rejection.to_http_response().map(Either::Right))
                }
            }
        })
    }
}
