//! Sites (tenants) and their API keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::{API_KEY_PREFIX, Caller, generate_token, hash_token};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::{AppState, ListResponse, PageParams, path_id};
use crate::domain::clock::format_rfc3339;
use crate::domain::ids::{ApiKeyId, SiteId};
use crate::domain::models::{ApiKey, Site};

/// Longest site or key name.
const MAX_NAME_LEN: usize = 200;

/// `POST /v1/sites` and `PATCH /v1/sites/{id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteRequest {
    /// A human name, 1 to 200 characters.
    pub name: String,
}

/// A site.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SiteResponse {
    /// Its id.
    pub id: SiteId,
    /// Its name.
    pub name: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl From<Site> for SiteResponse {
    fn from(s: Site) -> Self {
        Self {
            id: s.id,
            name: s.name,
            created_at: format_rfc3339(s.created_at),
            updated_at: format_rfc3339(s.updated_at),
        }
    }
}

/// `POST /v1/sites/{id}/api-keys` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRequest {
    /// A label, such as `production backend`.
    pub name: String,
}

/// An API key; `token` is present only in the creation response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyResponse {
    /// Its id.
    pub id: ApiKeyId,
    /// The site it may touch.
    pub site_id: SiteId,
    /// Its label.
    pub name: String,
    /// The bearer token: shown once, stored only as a hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

impl From<ApiKey> for ApiKeyResponse {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            site_id: k.site_id,
            name: k.name,
            token: None,
            created_at: format_rfc3339(k.created_at),
        }
    }
}

fn valid_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::invalid(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(name.to_owned())
}

/// Resolves a site path segment for `caller`: 404 when absent or not the caller's.
pub async fn load_site(state: &AppState, caller: Caller, raw: &str) -> Result<Site, ApiError> {
    let id = path_id(raw, "site", SiteId::parse)?;
    caller.require_site(id)?;
    state
        .store
        .get_site(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("site {id}")))
}

/// Creates a site (admin only).
#[utoipa::path(post, path = "/v1/sites", tag = "sites", request_body = SiteRequest,
    responses((status = 201, body = SiteResponse), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<SiteRequest>,
) -> Result<(StatusCode, Json<SiteResponse>), ApiError> {
    caller.require_admin()?;
    let now = state.clock.now_ms();
    let site = Site {
        id: SiteId::new(now),
        name: valid_name(&req.name)?,
        created_at: now,
        updated_at: now,
    };
    state.store.create_site(&site).await?;
    Ok((StatusCode::CREATED, Json(site.into())))
}

/// Lists sites (admin only).
#[utoipa::path(get, path = "/v1/sites", tag = "sites", params(PageParams),
    responses((status = 200, body = ListResponse<SiteResponse>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<SiteResponse>>, ApiError> {
    caller.require_admin()?;
    let page = state.store.list_sites(&page.to_request()?).await?;
    Ok(Json(ListResponse::from_page(page, SiteResponse::from)))
}

/// Gets a site.
#[utoipa::path(get, path = "/v1/sites/{site_id}", tag = "sites",
    responses((status = 200, body = SiteResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
) -> Result<Json<SiteResponse>, ApiError> {
    Ok(Json(load_site(&state, caller, &site_id).await?.into()))
}

/// Renames a site.
#[utoipa::path(patch, path = "/v1/sites/{site_id}", tag = "sites", request_body = SiteRequest,
    responses((status = 200, body = SiteResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
    ApiJson(req): ApiJson<SiteRequest>,
) -> Result<Json<SiteResponse>, ApiError> {
    let mut site = load_site(&state, caller, &site_id).await?;
    site.name = valid_name(&req.name)?;
    site.updated_at = state.clock.now_ms();
    state
        .store
        .rename_site(site.id, &site.name, site.updated_at)
        .await?;
    Ok(Json(site.into()))
}

/// Deletes a site with its webhooks, events, deliveries and keys (admin only).
#[utoipa::path(delete, path = "/v1/sites/{site_id}", tag = "sites",
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let site = load_site(&state, caller, &site_id).await?;
    state.store.delete_site(site.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a site API key (admin only); the token is in this response only.
#[utoipa::path(post, path = "/v1/sites/{site_id}/api-keys", tag = "api-keys", request_body = ApiKeyRequest,
    responses((status = 201, body = ApiKeyResponse), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
    ApiJson(req): ApiJson<ApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyResponse>), ApiError> {
    caller.require_admin()?;
    let site = load_site(&state, caller, &site_id).await?;
    let now = state.clock.now_ms();
    let token = generate_token(API_KEY_PREFIX);
    let key = ApiKey {
        id: ApiKeyId::new(now),
        site_id: site.id,
        name: valid_name(&req.name)?,
        token_hash: hash_token(&token),
        created_at: now,
    };
    state.store.create_api_key(&key).await?;
    let mut response = ApiKeyResponse::from(key);
    response.token = Some(token);
    Ok((StatusCode::CREATED, Json(response)))
}

/// Lists a site's API keys (without tokens).
#[utoipa::path(get, path = "/v1/sites/{site_id}/api-keys", tag = "api-keys", params(PageParams),
    responses((status = 200, body = ListResponse<ApiKeyResponse>)), security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<ApiKeyResponse>>, ApiError> {
    let site = load_site(&state, caller, &site_id).await?;
    let page = state
        .store
        .list_api_keys(site.id, &page.to_request()?)
        .await?;
    Ok(Json(ListResponse::from_page(page, ApiKeyResponse::from)))
}

/// Revokes an API key.
#[utoipa::path(delete, path = "/v1/sites/{site_id}/api-keys/{key_id}", tag = "api-keys",
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((site_id, key_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let site = load_site(&state, caller, &site_id).await?;
    let id = path_id(&key_id, "API key", ApiKeyId::parse)?;
    if state.store.delete_api_key(site.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("API key {id}")))
    }
}
