//! The event-type catalog: the types a site sends, with a description, an optional
//! JSON Schema of their `data`, and an example.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::sites::load_site;
use super::{AppState, ListResponse, path_id};
use crate::domain::catalog::EventTypeEntry;
use crate::domain::event_type::EventType;
use crate::domain::models::Scope;
use crate::service::catalog::{EventTypeInput, parse_schema};
use crate::service::webhooks::parse_description;

/// `PUT /v1/sites/{site_id}/event-types/{name}` body: the whole entry (absent fields
/// are cleared).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutEventType {
    /// Free text for the people writing receivers, at most 1000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// A JSON Schema (draft 2020-12 unless `$schema` names another) that the `data` of
    /// every event of this type must match: at most 16 KiB of compact JSON, nested at
    /// most 32 levels, without references (`$ref`, `$dynamicRef`, `$recursiveRef`);
    /// `pattern`s use a linear-time engine (no backreferences or lookaround); `format`
    /// is an annotation only.
    #[serde(default)]
    #[schema(value_type = serde_json::Value)]
    pub schema: Option<Value>,
    /// An example of `data`, at most 16 KiB, which must match the schema.
    #[serde(default)]
    #[schema(value_type = serde_json::Value)]
    pub example: Option<Value>,
}

/// A catalogued event type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventTypeResponse {
    /// Its name, such as `form.submitted`.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The JSON Schema events of this type must match; null when none.
    #[schema(value_type = serde_json::Value)]
    pub schema: Option<Value>,
    /// An example of `data`; null when none.
    #[schema(value_type = serde_json::Value)]
    pub example: Option<Value>,
    /// RFC 3339 time it was first catalogued.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl From<EventTypeEntry> for EventTypeResponse {
    fn from(e: EventTypeEntry) -> Self {
        let json = |text: &str| serde_json::from_str(text).unwrap_or(Value::Null);
        Self {
            name: e.name.to_string(),
            description: e.description,
            schema: e.schema.as_ref().map(|s| json(s.as_str())),
            example: e.example.as_deref().map(json),
            created_at: e.created_at.to_rfc3339(),
            updated_at: e.updated_at.to_rfc3339(),
        }
    }
}

/// Catalogues an event type, or replaces its entry.
#[utoipa::path(put, operation_id = "putEventType", path = "/v1/sites/{site_id}/event-types/{name}", tag = "event-types",
    request_body = PutEventType,
    responses((status = 201, body = EventTypeResponse), (status = 200, body = EventTypeResponse),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, name)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<PutEventType>,
) -> Result<(StatusCode, Json<EventTypeResponse>), ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Manage).await?;
    let name = EventType::parse(&name)
        .map_err(|e| ApiError::invalid("invalid_event_type", e.to_string()))?;
    let input = EventTypeInput {
        description: parse_description(req.description)?,
        schema: parse_schema(req.schema)?,
        example: req.example,
    };
    let (entry, created) = state.service.put_event_type(&site, name, input).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(entry.into())))
}

/// Lists a site's catalogued event types by name (all of them: at most 200).
#[utoipa::path(get, operation_id = "listEventTypes", path = "/v1/sites/{site_id}/event-types", tag = "event-types",
    responses((status = 200, body = ListResponse<EventTypeResponse>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
) -> Result<Json<ListResponse<EventTypeResponse>>, ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Ingest).await?;
    let entries = state.service.event_types(&site).await?;
    Ok(Json(ListResponse {
        data: entries.into_iter().map(Into::into).collect(),
        next_cursor: None,
    }))
}

/// Gets a catalogued event type.
#[utoipa::path(get, operation_id = "getEventType", path = "/v1/sites/{site_id}/event-types/{name}", tag = "event-types",
    responses((status = 200, body = EventTypeResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, name)): ApiPath<(String, String)>,
) -> Result<Json<EventTypeResponse>, ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Ingest).await?;
    let name = path_id(&name, "event type", EventType::parse)?;
    Ok(Json(
        state.service.event_type(&site, name.as_str()).await?.into(),
    ))
}

/// Removes an event type from the catalog. Webhooks subscribed to it keep their
/// filters; in strict mode its events are refused from now on.
#[utoipa::path(delete, operation_id = "deleteEventType", path = "/v1/sites/{site_id}/event-types/{name}", tag = "event-types",
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Manage).await?;
    let name = path_id(&name, "event type", EventType::parse)?;
    state
        .service
        .delete_event_type(&site, name.as_str())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
