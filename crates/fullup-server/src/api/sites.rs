//! Sites (tenants) and their API keys.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::{AppState, ListResponse, PageParams, path_id};
use crate::domain::ids::{ApiKeyId, SiteId};
use crate::domain::models::{ApiKey, Scope, Site};
use crate::service::sites::{parse_name, parse_scopes};

/// `POST /v1/sites` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteRequest {
    /// A human name, 1 to 200 characters once surrounding spaces are trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Days its events, with their deliveries and attempts, are kept before they are
    /// pruned (1 to 3650); absent or null: the server's `--retention` (off by default:
    /// kept forever).
    #[schema(minimum = 1, maximum = 3650)]
    pub retention_days: Option<i64>,
}

/// `PATCH /v1/sites/{id}` body; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSite {
    /// A new name, 1 to 200 characters once surrounding spaces are trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Strict mode: webhooks may only subscribe to, and events only use, the types of
    /// the site's event-type catalog (`…/event-types`). Existing webhooks keep their
    /// filters.
    pub strict_event_types: Option<bool>,
    /// Days its events, with their deliveries and attempts, are kept (1 to 3650); null:
    /// back to the server's `--retention`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 3650)]
    pub retention_days: Option<Option<i64>>,
}

/// A field that may be sent as null to clear it: absent is `None` (the field's
/// `default`), null `Some(None)`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A site.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SiteResponse {
    /// Its id.
    pub id: SiteId,
    /// Its name.
    pub name: String,
    /// Whether webhooks may only subscribe to, and events only use, catalogued types.
    pub strict_event_types: bool,
    /// Days its events are kept before they are pruned; null: the server's
    /// `--retention` (off by default: kept forever).
    pub retention_days: Option<u32>,
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
            strict_event_types: s.strict_event_types,
            retention_days: s.retention_days,
            created_at: s.created_at.to_rfc3339(),
            updated_at: s.updated_at.to_rfc3339(),
        }
    }
}

/// `POST /v1/sites/{id}/api-keys` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRequest {
    /// A label, such as `production backend`: 1 to 200 characters once surrounding
    /// spaces are trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// What the key may do on its site: `ingest` (send events; read events,
    /// deliveries and attempts) and/or `manage` (everything on the site, webhook
    /// secrets included). Default `["ingest"]`.
    #[schema(value_type = Option<Vec<Scope>>, min_items = 1, example = json!(["ingest"]))]
    pub scopes: Option<Vec<String>>,
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
    /// What it may do on its site.
    pub scopes: Vec<Scope>,
    /// The bearer token: shown once, stored only as a keyed hash.
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
            scopes: k.scopes.iter().collect(),
            token: None,
            created_at: k.created_at.to_rfc3339(),
        }
    }
}

/// Resolves a site path segment for `caller`, which needs the `needed` scope there
/// (if an API key): 404 when absent or not the caller's, 403 without the scope. Every
/// site route goes through here, so none can forget to choose its scope.
pub async fn load_site(
    state: &AppState,
    caller: Caller,
    raw: &str,
    needed: Scope,
) -> Result<Site, ApiError> {
    let id = path_id(raw, "site", SiteId::parse)?;
    caller.require_site(id, needed)?;
    Ok(state.service.site(id).await?)
}

/// Creates a site (admin only).
#[utoipa::path(post, operation_id = "createSite", path = "/v1/sites", tag = "sites", request_body = SiteRequest,
    responses((status = 201, body = SiteResponse), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<SiteRequest>,
) -> Result<(StatusCode, Json<SiteResponse>), ApiError> {
    caller.require_admin()?;
    let site = state
        .service
        .create_site(parse_name(&req.name)?, req.retention_days)
        .await?;
    Ok((StatusCode::CREATED, Json(site.into())))
}

/// Lists sites (admin only).
#[utoipa::path(get, operation_id = "listSites", path = "/v1/sites", tag = "sites", params(PageParams),
    responses((status = 200, body = ListResponse<SiteResponse>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<SiteResponse>>, ApiError> {
    caller.require_admin()?;
    let page = state
        .service
        .sites(&page.to_request(SiteId::parse)?)
        .await?;
    Ok(Json(ListResponse::from_page(page, SiteResponse::from)))
}

/// Gets a site.
#[utoipa::path(get, operation_id = "getSite", path = "/v1/sites/{site_id}", tag = "sites",
    responses((status = 200, body = SiteResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
) -> Result<Json<SiteResponse>, ApiError> {
    Ok(Json(
        load_site(&state, caller, &site_id, Scope::Manage)
            .await?
            .into(),
    ))
}

/// Renames a site, turns its strict mode on or off, or sets its retention.
#[utoipa::path(patch, operation_id = "updateSite", path = "/v1/sites/{site_id}", tag = "sites", request_body = UpdateSite,
    responses((status = 200, body = SiteResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateSite>,
) -> Result<Json<SiteResponse>, ApiError> {
    let mut site = load_site(&state, caller, &site_id, Scope::Manage).await?;
    let name = req.name.as_deref().map(parse_name).transpose()?;
    if let Some(name) = name {
        site = state.service.rename_site(site, name).await?;
    }
    if let Some(strict) = req.strict_event_types {
        site = state.service.set_strict_event_types(site, strict).await?;
    }
    if let Some(days) = req.retention_days {
        site = state.service.set_site_retention(site, days).await?;
    }
    Ok(Json(site.into()))
}

/// Deletes a site with its webhooks, events, deliveries and keys (admin only).
#[utoipa::path(delete, operation_id = "deleteSite", path = "/v1/sites/{site_id}", tag = "sites",
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let site = load_site(&state, caller, &site_id, Scope::Manage).await?;
    state.service.delete_site(&site).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a site API key (admin only); the token is in this response only.
#[utoipa::path(post, operation_id = "createApiKey", path = "/v1/sites/{site_id}/api-keys", tag = "api-keys", request_body = ApiKeyRequest,
    responses((status = 201, body = ApiKeyResponse), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
    ApiJson(req): ApiJson<ApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyResponse>), ApiError> {
    caller.require_admin()?;
    let site = load_site(&state, caller, &site_id, Scope::Manage).await?;
    let name = parse_name(&req.name)?;
    let scopes = parse_scopes(req.scopes.as_deref())?;
    let (key, token) = state.service.create_api_key(&site, name, scopes).await?;
    let mut response = ApiKeyResponse::from(key);
    response.token = Some(token);
    Ok((StatusCode::CREATED, Json(response)))
}

/// Lists a site's API keys (without tokens).
#[utoipa::path(get, operation_id = "listApiKeys", path = "/v1/sites/{site_id}/api-keys", tag = "api-keys", params(PageParams),
    responses((status = 200, body = ListResponse<ApiKeyResponse>)), security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<ApiKeyResponse>>, ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Manage).await?;
    let page = state
        .service
        .api_keys(&site, &page.to_request(ApiKeyId::parse)?)
        .await?;
    Ok(Json(ListResponse::from_page(page, ApiKeyResponse::from)))
}

/// Revokes an API key.
#[utoipa::path(delete, operation_id = "deleteApiKey", path = "/v1/sites/{site_id}/api-keys/{key_id}", tag = "api-keys",
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, key_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Manage).await?;
    let id = path_id(&key_id, "API key", ApiKeyId::parse)?;
    state.service.delete_api_key(&site, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/sites/{site_id}/portal-links` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PortalLinkResponse {
    /// The link to hand to the site's owner: it opens the console scoped to this site,
    /// once, until `expires_at`. Built on `--public-url`.
    pub url: String,
    /// RFC 3339: after this the link no longer opens.
    pub expires_at: String,
}

/// Creates a portal link: a short-lived, one-time URL that opens the console for this
/// site only (admin, or the site's own API key with the `manage` scope: the console
/// reveals webhook secrets).
#[utoipa::path(post, operation_id = "createPortalLink", path = "/v1/sites/{site_id}/portal-links", tag = "sites",
    responses((status = 201, body = PortalLinkResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_portal_link(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
) -> Result<(StatusCode, Json<PortalLinkResponse>), ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Manage).await?;
    let link = state.service.create_portal_token(&site).await?;
    Ok((
        StatusCode::CREATED,
        Json(PortalLinkResponse {
            url: state.console.portal_url(&link.token),
            expires_at: link.expires_at.to_rfc3339(),
        }),
    ))
}
