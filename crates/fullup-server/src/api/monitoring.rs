//! The routes an operator's tools call: liveness (`/healthz`, and `/health`, its
//! documented older name), readiness (`/readyz`) and the metrics (`/metrics`). None
//! needs a token: they show nothing of any site, and probes and scrapers carry none.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// The body of `/readyz`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    /// Why it is unavailable: `database_timeout` or `database_error`; absent when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// What is wrong, for a person; absent when ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Liveness: answers `ok` while the process serves requests; it does not touch the
/// database (see `/readyz`).
#[utoipa::path(get, operation_id = "getLiveness", path = "/healthz", tag = "monitoring",
    responses((status = 200, description = "The process is up", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: 200 when the database answers a query within 2 s (on PostgreSQL, the
/// pool gets a connection); 503 with the reason otherwise, and 200 again by itself once
/// the database is back. For load balancers: send traffic only to ready nodes.
#[utoipa::path(get, operation_id = "getReadiness", path = "/readyz", tag = "monitoring",
    responses((status = 200, description = "The database answers", body = Readiness),
        (status = 503, description = "The database does not answer", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    match state.service.ready().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Readiness {
                status: "ready",
                reason: None,
                message: None,
            }),
        ),
        Err(err) => {
            let chain = crate::error_chain(&err);
            tracing::warn!(reason = %err.code(), error = %chain, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Readiness {
                    status: "unavailable",
                    reason: Some(err.code()),
                    message: Some(err.to_string()),
                }),
            )
        }
    }
}

/// The metrics in Prometheus' text format (see `docs/operations.md`, "Monitoring").
#[utoipa::path(get, operation_id = "getMetrics", path = "/metrics", tag = "monitoring",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.service.metrics().render();
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}
