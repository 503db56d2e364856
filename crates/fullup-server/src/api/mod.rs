//! The management API under `/v1`: sites, API keys, webhooks, events, the event-type
//! catalog, deliveries and attempts, plus `/openapi.json` and the operator's routes (`/healthz`, `/health`,
//! `/readyz`, `/metrics`).

use crate::config::ApiLimits;
use crate::domain::time::Timestamp;
use crate::service::Service;
use crate::store::PageRequest;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

pub mod access_log;
pub mod auth;
pub mod catalog;
pub mod deliveries;
pub mod error;
pub mod events;
pub mod extract;
pub mod monitoring;
pub mod openapi;
pub mod ratelimit;
pub mod server;
pub mod sites;
pub mod throttle;
pub mod webhooks;

use error::ApiError;

/// Default page size of list routes.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page a client may ask for; bigger pages cost the server memory per request.
pub const MAX_PAGE_SIZE: u32 = 250;
/// Body limit of every route but ingest: management requests are small.
pub const MANAGEMENT_BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The use cases every route calls.
    pub service: Service,
    /// The console's settings and session key.
    pub console: crate::console::Console,
    /// Keyed hash of the admin token ([`crate::tokens`]).
    pub admin_token_hash: [u8; 32],
    /// Failed authentications per client address, API and console sign-in alike.
    pub throttle: throttle::AuthThrottle,
    /// Largest accepted event request body.
    pub max_event_bytes: usize,
    /// Rate limits and timeouts of the API.
    pub limits: ApiLimits,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("service", &self.service)
            .field("console", &self.console)
            .field("admin_token_hash", &"[redacted]")
            .field("max_event_bytes", &self.max_event_bytes)
            .field("limits", &self.limits)
            .field("throttle", &self.throttle)
            .finish_non_exhaustive()
    }
}

/// The API router.
pub fn router(state: AppState) -> Router {
    let ingest_limit = state.max_event_bytes;
    let ingest_rate = (state.clone(), ratelimit::IngestLimiter::new(&state.limits));
    let api_timeout = state.limits.request_timeout;
    Router::new()
        .route("/health", get(health))
        .route("/healthz", get(monitoring::healthz))
        .route("/readyz", get(monitoring::readyz))
        .route("/metrics", get(monitoring::metrics))
        .route("/openapi.json", get(openapi::serve))
        .route("/v1/sites", post(sites::create).get(sites::list))
        .route(
            "/v1/sites/{site_id}",
            get(sites::get).patch(sites::update).delete(sites::delete),
        )
        .route(
            "/v1/sites/{site_id}/api-keys",
            post(sites::create_key).get(sites::list_keys),
        )
        .route(
            "/v1/sites/{site_id}/api-keys/{key_id}",
            axum::routing::delete(sites::delete_key),
        )
        .route(
            "/v1/sites/{site_id}/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/v1/sites/{site_id}/webhooks/{webhook_id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/v1/sites/{site_id}/webhooks/{webhook_id}/secret",
            get(webhooks::secret),
        )
        .route(
            "/v1/sites/{site_id}/webhooks/{webhook_id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route(
            "/v1/sites/{site_id}/webhooks/{webhook_id}/recover",
            post(webhooks::recover),
        )
        .route(
            "/v1/sites/{site_id}/webhooks/{webhook_id}/test",
            post(webhooks::test),
        )
        .route(
            "/v1/sites/{site_id}/events",
            post(events::create)
                .layer(DefaultBodyLimit::max(ingest_limit))
                .layer(from_fn_with_state(ingest_rate, ratelimit::limit_ingest))
                .get(events::list),
        )
        .route("/v1/sites/{site_id}/events/{event_id}", get(events::get))
        .route("/v1/sites/{site_id}/event-types", get(catalog::list))
        .route(
            "/v1/sites/{site_id}/event-types/{name}",
            get(catalog::get).put(catalog::put).delete(catalog::delete),
        )
        .route("/v1/sites/{site_id}/deliveries", get(deliveries::list))
        .route(
            "/v1/sites/{site_id}/deliveries/{delivery_id}",
            get(deliveries::get),
        )
        .route(
            "/v1/sites/{site_id}/deliveries/{delivery_id}/retry",
            post(deliveries::retry),
        )
        .route(
            "/v1/sites/{site_id}/deliveries/{delivery_id}/attempts",
            get(deliveries::attempts),
        )
        .route(
            "/v1/sites/{site_id}/portal-links",
            post(sites::create_portal_link),
        )
        .merge(crate::console::router(state.clone()))
        .layer(DefaultBodyLimit::max(MANAGEMENT_BODY_LIMIT))
        .fallback(fallback)
        .method_not_allowed_fallback(|method: Method| async move {
            ApiError::method_not_allowed(&method)
        })
        .layer(from_fn_with_state(api_timeout, time_limit))
        .layer(axum::middleware::from_fn(access_log::log_request))
        .with_state(state)
}

/// Unknown routes: the API's JSON 404, or the console's HTML one under `/console/`.
async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path();
    if crate::console::is_console_path(path) {
        return crate::console::not_found(state, request).await;
    }
    ApiError::not_found("this route").into_response()
}

/// The router of `--metrics-listen`: `/metrics` alone (and the liveness and readiness
/// probes, which a monitoring network may want too), logged like the API's.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(monitoring::metrics))
        .route("/healthz", get(monitoring::healthz))
        .route("/readyz", get(monitoring::readyz))
        .fallback(|| async { ApiError::not_found("this route") })
        .layer(axum::middleware::from_fn(access_log::log_request))
        .with_state(state)
}

/// Answers 503 `timeout` when a request takes longer than `limit`, reading its body
/// included, so a client trickling a body cannot hold a connection and a task forever.
/// (tower-http's `TimeoutLayer` answers with an empty body; this keeps the API's error
/// shape.) Dropping the handler rolls back any transaction it had open.
async fn time_limit(
    State(limit): State<std::time::Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request did not complete within {} s; retry it (ingest: with the same Idempotency-Key)",
                limit.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// Liveness, the older name of `/healthz`: answers `ok` while the process serves requests.
#[utoipa::path(get, operation_id = "getHealth", path = "/health", tag = "monitoring",
    responses((status = 200, description = "The service is up", body = String, content_type = "text/plain")))]
pub async fn health() -> &'static str {
    "ok"
}

/// `?limit=&cursor=` of list routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (400 `invalid_cursor` for anything else).
    #[param(pattern = "^[a-z]+_[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub cursor: Option<String>,
}

impl PageParams {
    /// Validates into a store page request. `cursor` must be what `next_cursor` holds:
    /// an id of the listed kind, which `parse` reads; anything else is 400
    /// `invalid_cursor` rather than a silent first page.
    pub fn to_request<T, E>(
        &self,
        parse: fn(&str) -> Result<T, E>,
    ) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        if let Some(cursor) = &self.cursor
            && parse(cursor).is_err()
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "cursor must be the `next_cursor` of a previous page of this list; omit it for the first page",
            ));
        }
        Ok(PageRequest {
            limit,
            before: self.cursor.clone(),
        })
    }
}

fn time_message(field: &str) -> String {
    format!("{field} must be an RFC 3339 time such as 2026-01-31T12:00:00Z")
}

/// Parses an RFC 3339 time from a query parameter: 400 when it is not one.
pub fn query_time(field: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(value).map_err(|_| ApiError::bad_request(time_message(field)))
}

/// Parses an RFC 3339 time from a body field: 422 `invalid_time` when it is not one.
pub fn body_time(field: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(value)
        .map_err(|_| ApiError::invalid("invalid_time", time_message(field)))
}

/// Parses an id from a path segment, answering 404 (ids that cannot exist do not exist).
pub fn path_id<T, E>(
    raw: &str,
    what: &str,
    parse: fn(&str) -> Result<T, E>,
) -> Result<T, ApiError> {
    parse(raw).map_err(|_| ApiError::not_found(format!("{what} {raw}")))
}

/// A list response: `{"data": [...], "next_cursor": ...}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ListResponse<T> {
    /// This page's items, newest first.
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> ListResponse<T> {
    /// Maps a store page.
    pub fn from_page<U>(page: crate::store::Page<U>, f: impl FnMut(U) -> T) -> Self {
        Self {
            data: page.items.into_iter().map(f).collect(),
            next_cursor: page.next_cursor,
        }
    }
}
