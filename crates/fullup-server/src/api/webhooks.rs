//! Webhooks: where a site's events go, with what filter, signed with which secret.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiJsonOrEmpty, ApiPath, ApiQuery};
use super::sites::load_site;
use super::{AppState, ListResponse, PageParams, body_time, path_id};
use crate::domain::ids::{EventId, WebhookId};
use crate::domain::models::{Scope, Site};
use crate::domain::ordering::Ordering;
use crate::domain::throttle::RateLimit;
use crate::domain::webhook::{DEFAULT_GRACE, Webhook};
use crate::service::webhooks::{
    NewWebhook, WebhookChanges, parse_description, parse_filters, parse_grace, parse_headers,
    parse_ordering, parse_rate_limit, parse_secret, parse_url,
};
use crate::store::StoreError;

/// `POST /v1/sites/{site_id}/webhooks` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// The receiver's http(s) URL.
    #[schema(format = "uri")]
    pub url: String,
    /// Filters: `*`, prefixes such as `form.*`, or exact types; at least one. Default `["*"]`.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub event_types: Option<Vec<String>>,
    /// Free text, at most 1000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// Bring your own secret, for receivers that already hold one: `whsec_` + standard
    /// base64 of at least 24 random bytes, or another form of at least 16 characters.
    /// By default a `whsec_` secret is generated.
    #[serde(default)]
    #[schema(min_length = 16)]
    pub secret: Option<String>,
    /// Headers sent with every attempt, name to value (not signed): at most 20, each
    /// value at most 1024 bytes, 4096 bytes in all; no hop-by-hop header and none the
    /// service sets (`fullup-*`, `webhook-*`, `content-type`, `content-length`, `host`,
    /// `user-agent`). Default none.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Whether it receives deliveries (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Start paused: deliveries queue, unattempted, until it is resumed (default false).
    #[serde(default)]
    pub paused: Option<bool>,
    /// At most this many requests per second to the receiver, 1 to 10000, on all nodes
    /// together; deliveries beyond it wait (never failed, never counted as attempts).
    /// Default null: no limit.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub rate_limit_per_second: Option<i64>,
    /// `fifo`: deliveries leave in ingest order, one request at a time, a failing one
    /// holding back the rest until it succeeds or is given up; `none` (default): no
    /// order, several at once.
    #[serde(default)]
    #[schema(value_type = Option<Ordering>)]
    pub ordering: Option<String>,
}

/// `PATCH /v1/sites/{site_id}/webhooks/{id}` body; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// New receiver URL.
    #[schema(format = "uri")]
    pub url: Option<String>,
    /// New filters, at least one.
    #[schema(min_items = 1)]
    pub event_types: Option<Vec<String>>,
    /// New description, at most 1000 characters.
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// New custom headers, replacing all the old ones (`{}` removes them); the rules of
    /// `CreateWebhook.headers`.
    pub headers: Option<BTreeMap<String, String>>,
    /// Enable (clears the disabled reason) or disable.
    pub enabled: Option<bool>,
    /// Pause (deliveries queue, unattempted) or resume (the queue drains).
    pub paused: Option<bool>,
    /// `fifo` or `none` (see `CreateWebhook.ordering`); applies from the next delivery
    /// to leave.
    #[schema(value_type = Option<Ordering>)]
    pub ordering: Option<String>,
    /// A new rate limit (requests per second, 1 to 10000); null removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    pub rate_limit_per_second: Option<Option<i64>>,
}

/// A field that may be null: `Some(None)` when the body says null, None (by
/// `#[serde(default)]`) when it leaves the field out.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// A webhook. `secret` appears only when it is created.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookResponse {
    /// Its id.
    pub id: WebhookId,
    /// Its site.
    pub site_id: crate::domain::ids::SiteId,
    /// The receiver URL.
    pub url: String,
    /// Its filters.
    pub event_types: Vec<String>,
    /// Its description.
    pub description: String,
    /// Headers sent with every attempt besides the service's own, by lowercase name.
    pub headers: BTreeMap<String, String>,
    /// Whether it receives deliveries.
    pub enabled: bool,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Whether deliveries queue without being attempted.
    pub paused: bool,
    /// `fifo`: deliveries leave in ingest order, one at a time; `none`: no order.
    pub ordering: Ordering,
    /// Attempts it may have in flight now: the configured per-webhook limit, halved by
    /// each failed attempt (down to 1) and grown back one per success; always 1 when
    /// ordered.
    pub concurrency_limit: u32,
    /// At most this many requests per second to the receiver; null: no limit.
    pub rate_limit_per_second: Option<u32>,
    /// The signing secret (creation response only; later `GET …/secret`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl WebhookResponse {
    /// `w` as the API shows it, its concurrency limit under the service's policy.
    fn new(state: &AppState, w: &Webhook) -> Self {
        Self {
            id: w.id,
            site_id: w.site_id,
            url: w.url.to_string(),
            event_types: w.event_types.iter().map(ToString::to_string).collect(),
            description: w.description.clone(),
            headers: w
                .headers
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
            enabled: w.health.enabled,
            disabled_reason: w.health.disabled_reason.clone(),
            paused: w.paused,
            ordering: w.ordering,
            concurrency_limit: state.service.concurrency_limit(w),
            rate_limit_per_second: w.rate_limit.map(RateLimit::per_second),
            secret: None,
            created_at: w.created_at.to_rfc3339(),
            updated_at: w.updated_at.to_rfc3339(),
        }
    }
}

/// `GET …/secret` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretResponse {
    /// The secret that keys `fullup-signature` (its UTF-8 bytes) and `webhook-signature`.
    pub secret: String,
}

/// `POST …/rotate-secret` body; every field is optional, and an empty body is `{}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// Seconds the replaced secret keeps signing: default 86400 (a day), at most
    /// 604800 (a week); 0 retires it at once.
    #[serde(default)]
    #[schema(maximum = 604800)]
    pub grace_period_secs: Option<u64>,
    /// Bring your own new secret (as at creation: `whsec_` + base64 of at least 24
    /// bytes, or 16 characters or more in another form); by default a `whsec_`
    /// secret is generated.
    #[serde(default)]
    #[schema(min_length = 16)]
    pub secret: Option<String>,
}

/// `POST …/rotate-secret` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotateSecretResponse {
    /// The new secret; `webhook-signature` carries its signature from now on.
    pub secret: String,
    /// RFC 3339: until then the replaced secret also signs `webhook-signature`.
    pub previous_secret_valid_until: String,
    /// RFC 3339: `fullup-signature` is keyed with the replaced secret (the oldest one
    /// still valid, after several rotations) until this time, with the new one after.
    pub fullup_signature_switches_at: String,
}

/// `POST …/recover` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// RFC 3339: failed deliveries created at or after this time are retried.
    #[schema(format = DateTime)]
    pub since: String,
    /// RFC 3339: … and before this time (default now); after `since`.
    #[schema(format = DateTime)]
    pub until: Option<String>,
}

/// `POST …/recover` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecoverResponse {
    /// How many failed deliveries were made pending again.
    pub recovered: u64,
}

/// `POST …/test` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestResponse {
    /// The `ping` event created for this webhook alone.
    pub event_id: EventId,
}

async fn load_webhook(
    state: &AppState,
    caller: Caller,
    site: &str,
    id: &str,
) -> Result<(Site, Webhook), ApiError> {
    let site = load_site(state, caller, site, Scope::Manage).await?;
    let id = path_id(id, "webhook", WebhookId::parse)?;
    let webhook = state.service.webhook(&site, id).await?;
    Ok((site, webhook))
}

/// Creates a webhook; the response carries its secret.
#[utoipa::path(post, operation_id = "createWebhook", path = "/v1/sites/{site_id}/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = WebhookResponse), (status = 422, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookResponse>), ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Manage).await?;
    let new = NewWebhook {
        url: parse_url(&req.url)?,
        event_types: parse_filters(req.event_types)?,
        description: parse_description(req.description)?,
        headers: parse_headers(req.headers)?,
        secret: parse_secret(req.secret)?,
        enabled: req.enabled.unwrap_or(true),
        paused: req.paused.unwrap_or(false),
        rate_limit: parse_rate_limit(req.rate_limit_per_second)?,
        ordering: parse_ordering(req.ordering.as_deref())?,
    };
    let webhook = state.service.create_webhook(&site, new).await?;
    let mut response = WebhookResponse::new(&state, &webhook);
    response.secret = Some(secret_text(&webhook)?);
    Ok((StatusCode::CREATED, Json(response)))
}

/// Lists a site's webhooks.
#[utoipa::path(get, operation_id = "listWebhooks", path = "/v1/sites/{site_id}/webhooks", tag = "webhooks", params(PageParams),
    responses((status = 200, body = ListResponse<WebhookResponse>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(site_id): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<WebhookResponse>>, ApiError> {
    let site = load_site(&state, caller, &site_id, Scope::Manage).await?;
    let page = state
        .service
        .webhooks(&site, &page.to_request(WebhookId::parse)?)
        .await?;
    Ok(Json(ListResponse::from_page(page, |w| {
        WebhookResponse::new(&state, &w)
    })))
}

/// Gets a webhook (without its secret).
#[utoipa::path(get, operation_id = "getWebhook", path = "/v1/sites/{site_id}/webhooks/{webhook_id}", tag = "webhooks",
    responses((status = 200, body = WebhookResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, webhook_id)): ApiPath<(String, String)>,
) -> Result<Json<WebhookResponse>, ApiError> {
    let (_, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    Ok(Json(WebhookResponse::new(&state, &webhook)))
}

/// Gets a webhook's secret.
#[utoipa::path(get, operation_id = "getWebhookSecret", path = "/v1/sites/{site_id}/webhooks/{webhook_id}/secret", tag = "webhooks",
    responses((status = 200, body = SecretResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, webhook_id)): ApiPath<(String, String)>,
) -> Result<Json<SecretResponse>, ApiError> {
    let (_, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    let secret = state.service.reveal_secret(&webhook, caller.actor())?;
    Ok(Json(SecretResponse {
        secret: secret.expose().to_owned(),
    }))
}

/// The current secret of `webhook`, or 500 `secret_unreadable` when it does not open.
fn secret_text(webhook: &Webhook) -> Result<String, ApiError> {
    let secrets = webhook.secrets().map_err(StoreError::from)?;
    Ok(secrets.current.expose().to_owned())
}

/// Changes a webhook's url, filters, description, headers, switches, rate limit or ordering.
#[utoipa::path(patch, operation_id = "updateWebhook", path = "/v1/sites/{site_id}/webhooks/{webhook_id}", tag = "webhooks", request_body = UpdateWebhook,
    responses((status = 200, body = WebhookResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, webhook_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<UpdateWebhook>,
) -> Result<Json<WebhookResponse>, ApiError> {
    let (_, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    let changes = WebhookChanges {
        url: req.url.as_deref().map(parse_url).transpose()?,
        event_types: req
            .event_types
            .map(|f| parse_filters(Some(f)))
            .transpose()?,
        description: req
            .description
            .map(|d| parse_description(Some(d)))
            .transpose()?,
        headers: req.headers.map(|h| parse_headers(Some(h))).transpose()?,
        enabled: req.enabled,
        paused: req.paused,
        rate_limit: req
            .rate_limit_per_second
            .map(parse_rate_limit)
            .transpose()?,
        ordering: req
            .ordering
            .as_deref()
            .map(|o| parse_ordering(Some(o)))
            .transpose()?,
    };
    let webhook = state.service.update_webhook(webhook, changes).await?;
    Ok(Json(WebhookResponse::new(&state, &webhook)))
}

/// Deletes a webhook. Its pending deliveries are cancelled; its deliveries and attempts
/// stay readable (`webhook_deleted: true`) until retention prunes them.
#[utoipa::path(delete, operation_id = "deleteWebhook", path = "/v1/sites/{site_id}/webhooks/{webhook_id}", tag = "webhooks",
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, webhook_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (_, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    state.service.delete_webhook(&webhook).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the webhook's secret; the replaced one keeps signing for a grace period so
/// receivers can switch without a failed delivery.
#[utoipa::path(post, operation_id = "rotateWebhookSecret", path = "/v1/sites/{site_id}/webhooks/{webhook_id}/rotate-secret", tag = "webhooks",
    request_body = RotateSecretRequest,
    responses((status = 200, body = RotateSecretResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, webhook_id)): ApiPath<(String, String)>,
    ApiJsonOrEmpty(req): ApiJsonOrEmpty<RotateSecretRequest>,
) -> Result<Json<RotateSecretResponse>, ApiError> {
    let (_, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    let grace = match req.grace_period_secs {
        Some(secs) => parse_grace(secs)?,
        None => DEFAULT_GRACE,
    };
    let rotated = state
        .service
        .rotate_secret(&webhook, parse_secret(req.secret)?, grace, caller.actor())
        .await?;
    Ok(Json(RotateSecretResponse {
        secret: secret_text(&rotated.webhook)?,
        previous_secret_valid_until: rotated.previous_valid_until.to_rfc3339(),
        fullup_signature_switches_at: rotated.fullup_signature_switches_at.to_rfc3339(),
    }))
}

/// Makes the webhook's failed deliveries created in a time range pending again.
#[utoipa::path(post, operation_id = "recoverWebhook", path = "/v1/sites/{site_id}/webhooks/{webhook_id}/recover", tag = "webhooks",
    request_body = RecoverRequest,
    responses((status = 202, body = RecoverResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, webhook_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<RecoverRequest>,
) -> Result<(StatusCode, Json<RecoverResponse>), ApiError> {
    let (_, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    let since = body_time("since", &req.since)?;
    let until = req
        .until
        .as_deref()
        .map(|u| body_time("until", u))
        .transpose()?;
    let recovered = state.service.recover(&webhook, since, until).await?;
    Ok((StatusCode::ACCEPTED, Json(RecoverResponse { recovered })))
}

/// Sends a `ping` event to this webhook alone.
#[utoipa::path(post, operation_id = "sendTestEvent", path = "/v1/sites/{site_id}/webhooks/{webhook_id}/test", tag = "webhooks",
    responses((status = 202, body = TestResponse), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((site_id, webhook_id)): ApiPath<(String, String)>,
) -> Result<(StatusCode, Json<TestResponse>), ApiError> {
    let (_, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    let event_id = state.service.send_test(&webhook).await?;
    Ok((StatusCode::ACCEPTED, Json(TestResponse { event_id })))
}
