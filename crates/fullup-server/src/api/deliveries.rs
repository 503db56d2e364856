//! Deliveries (one per event and webhook), their attempt logs, and manual retry.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use super::sites::load_site;
use super::{AppState, ListResponse, PageParams, path_id, query_time};
use crate::domain::ids::{AttemptId, DeliveryId, EventId, WebhookId};
use crate::domain::models::Scope;
use crate::domain::models::{Attempt, Delivery, DeliveryState, ErrorKind};
use crate::store::DeliveryFilter;

/// A delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryResponse {
    /// Its id.
    pub id: DeliveryId,
    /// The event delivered.
    pub event_id: EventId,
    /// The webhook delivered to.
    pub webhook_id: WebhookId,
    /// True once that webhook was deleted: the delivery and its attempts stay readable
    /// until retention prunes them, and it is not attempted again (pending ones were
    /// `cancelled`).
    pub webhook_deleted: bool,
    /// `pending`, `succeeded`, `failed` or `cancelled` (its webhook was deleted before
    /// it finished).
    pub state: DeliveryState,
    /// Attempts made, as many as its attempt log holds: those whose outcome was lost
    /// included (logged as `interrupted`), the one in flight once it is recorded.
    pub attempt_count: u32,
    /// RFC 3339 time of the next attempt (pending only).
    pub next_attempt_at: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl From<Delivery> for DeliveryResponse {
    fn from(d: Delivery) -> Self {
        let pending = d.state == DeliveryState::Pending;
        Self {
            id: d.id,
            event_id: d.event_id,
            webhook_id: d.webhook_id,
            webhook_deleted: d.webhook_deleted,
            state: d.state,
            attempt_count: d.attempt_count,
            next_attempt_at: d
                .next_attempt_at
                .filter(|_| pending)
                .map(|t| t.to_rfc3339()),
            created_at: d.created_at.to_rfc3339(),
            updated_at: d.updated_at.to_rfc3339(),
        }
    }
}

/// One attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptResponse {
    /// Its id.
    pub id: AttemptId,
    /// Its delivery.
    pub delivery_id: DeliveryId,
    /// 1 for the first attempt.
    pub attempt_number: u32,
    /// RFC 3339 start time.
    pub created_at: String,
    /// How long it took.
    pub duration_ms: i64,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// How it failed: `timeout`, `connect`, `dns`, `tls`, `redirect`, `status`, `blocked`, `other`.
    pub error_kind: Option<ErrorKind>,
    /// Details of the failure.
    pub error_message: Option<String>,
    /// The first 4 KiB of the response body, as text: invalid UTF-8 and NUL bytes
    /// read as U+FFFD.
    pub response_body: String,
    /// The headers sent, as `name: value` lines (at most 4 KiB; empty when nothing was
    /// sent, or for attempts recorded before headers were kept).
    pub request_headers: String,
    /// The response's headers, as `name: value` lines (at most 4 KiB).
    pub response_headers: String,
}

impl From<Attempt> for AttemptResponse {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id,
            delivery_id: a.delivery_id,
            attempt_number: a.attempt_number,
            created_at: a.started_at.to_rfc3339(),
            duration_ms: i64::try_from(a.duration.as_millis()).unwrap_or(i64::MAX),
            status_code: a.status_code,
            error_kind: a.error_kind,
            error_message: a.error_message,
            response_body: a.response_body,
            request_headers: a.request_headers,
            response_headers: a.response_headers,
        }
    }
}

/// `GET …/deliveries` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListParams {
    /// Only this event's deliveries (`evt_` + ULID).
    #[param(pattern = "^evt_[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub event_id: Option<String>,
    /// Only this webhook's deliveries (`wh_` + ULID).
    #[param(pattern = "^wh_[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub webhook_id: Option<String>,
    /// Only deliveries in this state.
    #[param(value_type = Option<DeliveryState>)]
    pub state: Option<String>,
    /// Only deliveries of events of this exact type.
    pub event_type: Option<String>,
    /// RFC 3339: created at or after.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339: created before.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// Page size, 1 to 250 (default 50).
    #[param(minimum = 1, maximum = 250)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor` (400 `invalid_cursor` for anything else).
    #[param(pattern = "^[a-z]+_[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub cursor: Option<String>,
}

impl DeliveryListParams {
    fn filter(&self) -> Result<DeliveryFilter, ApiError> {
        let bad =
            |what: &str, e: &dyn std::fmt::Display| ApiError::bad_request(format!("{what}: {e}"));
        Ok(DeliveryFilter {
            event_id: self
                .event_id
                .as_deref()
                .map(EventId::parse)
                .transpose()
                .map_err(|e| bad("event_id", &e))?,
            webhook_id: self
                .webhook_id
                .as_deref()
                .map(WebhookId::parse)
                .transpose()
                .map_err(|e| bad("webhook_id", &e))?,
            state: self
                .state
                .as_deref()
                .map(|s| {
                    DeliveryState::parse(s).ok_or_else(|| {
                        ApiError::bad_request(
                            "state must be pending, succeeded, failed or cancelled",
                        )
                    })
                })
                .transpose()?,
            since: self
                .since
                .as_deref()
                .map(|t| query_time("since", t))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| query_time("until", t))
                .transpose()?,
            event_type: self.event_type.clone(),
            scan_window: None,
        })
    }
}

/// Lists a site's deliveries.
#[utoipa::path(get, operation_id = "listDeliveries", path = "/v1/sites/{site_id}/deliveries", tag = "deliveries", params(DeliveryListParams),
    responses((status = 200, body = ListResponse<DeliveryResponse>), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeliveryListParams>,
) -> Result<Json<ListResponse<DeliveryResponse>>, ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Ingest).await?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .to_request(DeliveryId::parse)?;
    let page = state.service.deliveries(&site, &q.filter()?, &page).await?;
    Ok(Json(ListResponse::from_page(page, DeliveryResponse::from)))
}

/// The delivery `id` of `site`, for a caller holding `needed` there.
async fn load_delivery(
    state: &AppState,
    caller: Caller,
    (site, id): (&str, &str),
    needed: Scope,
) -> Result<Delivery, ApiError> {
    let site = load_site(state, caller, site, needed).await?;
    let id = path_id(id, "delivery", DeliveryId::parse)?;
    Ok(state.service.delivery(&site, id).await?)
}

/// Gets a delivery.
#[utoipa::path(get, operation_id = "getDelivery", path = "/v1/sites/{site_id}/deliveries/{delivery_id}", tag = "deliveries",
    responses((status = 200, body = DeliveryResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, delivery_id)): ApiPath<(String, String)>,
) -> Result<Json<DeliveryResponse>, ApiError> {
    Ok(Json(
        load_delivery(&state, caller, (&site_id, &delivery_id), Scope::Ingest)
            .await?
            .into(),
    ))
}

/// Attempts a delivery again now, whatever its state (a replay when it had succeeded).
#[utoipa::path(post, operation_id = "retryDelivery", path = "/v1/sites/{site_id}/deliveries/{delivery_id}/retry", tag = "deliveries",
    responses((status = 202, body = DeliveryResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, delivery_id)): ApiPath<(String, String)>,
) -> Result<(StatusCode, Json<DeliveryResponse>), ApiError> {
    let delivery = load_delivery(&state, caller, (&site_id, &delivery_id), Scope::Manage).await?;
    let delivery = state.service.retry(&delivery).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}

/// Lists a delivery's attempts, newest first.
#[utoipa::path(get, operation_id = "listAttempts", path = "/v1/sites/{site_id}/deliveries/{delivery_id}/attempts", tag = "deliveries",
    params(PageParams),
    responses((status = 200, body = ListResponse<AttemptResponse>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn attempts(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, delivery_id)): ApiPath<(String, String)>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<AttemptResponse>>, ApiError> {
    let delivery = load_delivery(&state, caller, (&site_id, &delivery_id), Scope::Ingest).await?;
    let page = state
        .service
        .attempts(&delivery, &page.to_request(AttemptId::parse)?)
        .await?;
    Ok(Json(ListResponse::from_page(page, AttemptResponse::from)))
}
