//! One log line per API request: method, route template, status, duration and request
//! id, at info (at debug for the probes and scrapes that come every few seconds).
//!
//! The route is the template (`/v1/sites/{site_id}/events`), never the path or the
//! query: they are unbounded, and nothing a client sends is echoed into the log but a
//! well-formed `x-request-id`. Headers (the bearer token) are never logged.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The header carrying the request id, in the request (a proxy's, kept when well formed)
/// and in the answer.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest request id taken from a client: a UUID is 36 characters, a trace id 32.
const MAX_REQUEST_ID_LEN: usize = 64;
/// Routes called every few seconds by machines, logged at debug.
const QUIET_ROUTES: [&str; 4] = ["/health", "/healthz", "/readyz", "/metrics"];

/// Logs the request when its answer is ready, and sets `x-request-id` on the answer.
pub async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed(v))
        .map_or_else(|| ulid::Ulid::new().to_string(), str::to_owned);
    let mut response = next.run(request).await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let status = response.status().as_u16();
    if QUIET_ROUTES.contains(&route.as_str()) {
        tracing::debug!(method = %method, route = %route, status, duration_ms, request_id = %id, "request");
    } else {
        tracing::info!(method = %method, route = %route, status, duration_ms, request_id = %id, "request");
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// A request id worth keeping: short, of letters, digits, `-`, `_` and `.` only.
fn well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
