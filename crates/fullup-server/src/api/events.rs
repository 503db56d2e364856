//! Event ingest and the event log.
//!
//! Ingest answers 202 only after the event and every delivery row it fans out to are
//! committed in one transaction: there is no second write a crash could lose.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery, check_media_type, parse_json};
use super::sites::load_site;
use super::{AppState, ListResponse, PageParams, path_id, query_time};
use crate::domain::canonical_json::canonicalize;
use crate::domain::event_type::EventType;
use crate::domain::ids::EventId;
use crate::domain::models::Scope;
use crate::domain::models::{self, Event};
use crate::service::events::{MAX_IDEMPOTENCY_KEY_LEN, NewEventRequest};
use crate::store::EventFilterQuery;

/// The header that makes retried ingest requests safe.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// `POST /v1/sites/{site_id}/events` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEvent {
    /// The event type, such as `form.submitted`: 1 to 128 characters.
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 128)]
    pub event_type: String,
    /// Any JSON value (object, array, string, number, boolean or null). Integers must
    /// stay within ±(2^53−1) (send larger ones as strings).
    #[schema(value_type = serde_json::Value)]
    pub data: Box<RawValue>,
}

/// `POST …/events` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedEvent {
    /// The event's id (the same on an idempotent retry).
    pub id: EventId,
}

/// An event as stored, with the payload its deliveries carry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventResponse {
    /// Its id.
    pub id: EventId,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339 time it was accepted.
    pub created_at: String,
    /// The idempotency key it was sent with.
    pub idempotency_key: Option<String>,
    /// The exact body its deliveries carry: `{"id","type","created_at","data"}`.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
}

/// An event in the list: what [`EventResponse`] holds but the payload, which can be
/// 256 KiB an event (`GET …/events/{event_id}` has it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventSummary {
    /// `evt_` + ULID, sorts by creation.
    pub id: EventId,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339 time it was accepted.
    pub created_at: String,
    /// The idempotency key it was sent with.
    pub idempotency_key: Option<String>,
    /// Size in bytes of its payload.
    pub payload_bytes: u64,
}

impl From<models::EventSummary> for EventSummary {
    fn from(e: models::EventSummary) -> Self {
        Self {
            id: e.id,
            event_type: e.event_type.to_string(),
            created_at: e.created_at.to_rfc3339(),
            idempotency_key: e.idempotency_key,
            payload_bytes: e.payload_bytes,
        }
    }
}

impl TryFrom<Event> for EventResponse {
    type Error = ApiError;

    fn try_from(e: Event) -> Result<Self, ApiError> {
        let payload = RawValue::from_string(e.payload).map_err(|err| ApiError::internal(&err))?;
        Ok(Self {
            id: e.id,
            event_type: e.event_type.to_string(),
            created_at: e.created_at.to_rfc3339(),
            idempotency_key: e.idempotency_key,
            payload,
        })
    }
}

/// `GET …/events` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventListParams {
    /// Only this exact type.
    #[serde(rename = "type")]
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

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
        )));
    }
    Ok(Some(key.to_owned()))
}

/// Accepts an event: 202 once it and its deliveries are durably stored.
#[utoipa::path(post, operation_id = "createEvent", path = "/v1/sites/{site_id}/events", tag = "events", request_body = CreateEvent,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
        description = "1 to 255 visible ASCII characters. Same key and body: same answer, no new event; same key, other body: 422")),
    responses((status = 202, body = CreatedEvent), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, headers(("Retry-After" = u64, description = "Whole seconds to wait, at least 1")))),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<CreatedEvent>), ApiError> {
    let received = std::time::Instant::now();
    let site = load_site(&state, caller, &site_id, Scope::Ingest).await?;
    check_media_type(&headers)?;
    let idempotency_key = idempotency_key(&headers)?;
    let body = body.map_err(|r| super::extract::body_rejection(&r, state.max_event_bytes))?;
    let req: CreateEvent = parse_json(&body)?;
    let event_type = EventType::parse(&req.event_type)
        .map_err(|e| ApiError::invalid("invalid_event_type", e.to_string()))?;
    let data = canonicalize(req.data.get().as_bytes())
        .map_err(|e| ApiError::invalid("invalid_data", e.with_path_prefix("data").to_string()))?;
    let req = NewEventRequest {
        event_type,
        data,
        idempotency_key,
        received,
    };
    let id = state.service.ingest(&site, req).await?;
    Ok((StatusCode::ACCEPTED, Json(CreatedEvent { id })))
}

/// Lists a site's events.
#[utoipa::path(get, operation_id = "listEvents", path = "/v1/sites/{site_id}/events", tag = "events", params(EventListParams),
    responses((status = 200, body = ListResponse<EventSummary>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EventListParams>,
) -> Result<Json<ListResponse<EventSummary>>, ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Ingest).await?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .to_request(EventId::parse)?;
    let filter = EventFilterQuery {
        event_type: q.event_type,
        since: q
            .since
            .as_deref()
            .map(|t| query_time("since", t))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|t| query_time("until", t))
            .transpose()?,
    };
    let page = state.service.events(&site, &filter, &page).await?;
    Ok(Json(ListResponse::from_page(page, EventSummary::from)))
}

/// Gets an event with its payload.
#[utoipa::path(get, operation_id = "getEvent", path = "/v1/sites/{site_id}/events/{event_id}", tag = "events",
    responses((status = 200, body = EventResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, event_id)): ApiPath<(String, String)>,
) -> Result<Json<EventResponse>, ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Ingest).await?;
    let id = path_id(&event_id, "event", EventId::parse)?;
    Ok(Json(state.service.event(&site, id).await?.try_into()?))
}
