//! One error shape for every route: `{"error": {"code", "message"}}`.
//!
//! Client mistakes get a 4xx with a message that says what to fix; internal failures are
//! logged with their cause chain and shown as an opaque 500. A store that cannot be
//! used for now (unreachable, out of disk space) is a 503 `store_unavailable` with a
//! `Retry-After`, so clients and load balancers can tell an outage from a bug.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::service::ServiceError;
use crate::store::StoreError;

/// The code of the 503 answered while the store cannot be used (it carries a
/// `Retry-After`).
pub const STORE_UNAVAILABLE: &str = "store_unavailable";
/// Error code of a webhook secret that does not open on this server (500): sealed
/// under a main key it does not hold, or altered in the database.
pub const SECRET_UNREADABLE: &str = "secret_unreadable";
/// The `Retry-After` of a 503 [`STORE_UNAVAILABLE`], in seconds: long enough not to
/// hammer a database coming back, short enough that a client retrying by it loses
/// little once it is back.
pub const STORE_RETRY_AFTER_SECS: u64 = 5;

/// An API failure, ready to become a response.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, such as `not_found`.
    pub code: &'static str,
    /// A human sentence saying what went wrong and what to do.
    pub message: String,
    /// Seconds for the `Retry-After` header, when the client should wait.
    pub retry_after_secs: Option<u64>,
}

/// The JSON body of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`not_found`, `invalid_request`, `unauthorized`, …).
    pub code: String,
    /// What went wrong and how to fix it.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 429 `too_many_failures`: this client address failed authentication too often
    /// ([`super::throttle`]); `Retry-After` is `wait` in whole seconds, at least 1.
    pub fn too_many_failures(wait: std::time::Duration) -> Self {
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_failures",
            format!("too many failed authentications from this address; retry after {seconds} s"),
        );
        err.retry_after_secs = Some(seconds);
        err
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 422: well-formed, but a value is not acceptable.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 404 for `what` (such as "site site_01…").
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} does not exist"),
        )
    }

    /// 401: no usable credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 405: the path exists, but not with this method.
    pub fn method_not_allowed(method: &axum::http::Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{method} is not allowed on this path; GET /openapi.json lists each path's methods"
            ),
        )
    }

    /// 409: conflicts with the current state.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 500, after logging `cause` with its chain.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let chain = crate::error_chain(cause);
        tracing::error!(error = %chain, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }

    /// 503 [`STORE_UNAVAILABLE`], after logging `cause` with its chain.
    pub fn store_unavailable(cause: &(dyn std::error::Error + 'static)) -> Self {
        let chain = crate::error_chain(cause);
        tracing::warn!(error = %chain, "the store is unavailable");
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            STORE_UNAVAILABLE,
            format!(
                "the database is unavailable for now (unreachable or out of space): retry in \
                 {STORE_RETRY_AFTER_SECS} s (an event: with the same Idempotency-Key, so it is stored once)"
            ),
        );
        err.retry_after_secs = Some(STORE_RETRY_AFTER_SECS);
        err
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if let StoreError::SecretUnreadable(unreadable) = &err {
            tracing::error!(error = %unreadable, "a webhook's secret was asked for but does not open");
            return Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                SECRET_UNREADABLE,
                "this webhook's secret does not open on this server (it was sealed under a main \
                 key this server does not hold, or altered in the database); its deliveries fail \
                 until the operator fixes it. Other webhooks are not affected.",
            );
        }
        if err.is_unavailable() {
            Self::store_unavailable(&err)
        } else {
            Self::internal(&err)
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound(what) => Self::not_found(what),
            ServiceError::Invalid { code, message } => Self::invalid(code, message),
            ServiceError::Conflict { code, message } => Self::conflict(code, message),
            ServiceError::Store(err) => Self::from(err),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let retry_after = self.retry_after_secs;
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
