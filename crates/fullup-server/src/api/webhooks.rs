//! Webhooks: where a site's events go, with what filter, signed with which secret.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use fullup_signature::Secret;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::events::{IngestRequest, ingest};
use super::extract::{ApiJson, ApiQuery};
use super::sites::load_site;
use super::{AppState, ListResponse, PageParams, parse_time, path_id};
use crate::delivery::guard::GuardError;
use crate::domain::canonical_json::canonicalize;
use crate::domain::clock::format_rfc3339;
use crate::domain::event_type::EventFilter;
use crate::domain::ids::{EventId, WebhookId};
use crate::domain::models::{Site, Webhook};
use crate::domain::rotation::{DEFAULT_GRACE_SECS, MAX_GRACE_SECS};
use crate::domain::webhook_url::WebhookUrl;

/// A site may hold at most this many webhooks; fan-out cost grows with each.
pub const MAX_WEBHOOKS_PER_SITE: u64 = 100;
/// Longest description.
const MAX_DESCRIPTION_LEN: usize = 1000;
/// Shortest secret a client may choose; generated ones are 32 random bytes.
pub const MIN_CHOSEN_SECRET_LEN: usize = 16;
/// The event type of test deliveries.
pub const PING_EVENT_TYPE: &str = "ping";

/// `POST /v1/sites/{site_id}/webhooks` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// The receiver's http(s) URL.
    pub url: String,
    /// Filters: `*`, prefixes such as `form.*`, or exact types. Default `["*"]`.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Bring your own secret (at least 16 characters, for receivers that already hold
    /// one); by default a `whsec_` secret is generated.
    #[serde(default)]
    pub secret: Option<String>,
    /// Whether it receives deliveries (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Start paused: deliveries queue, unattempted, until it is resumed (default false).
    #[serde(default)]
    pub paused: Option<bool>,
}

/// `PATCH /v1/sites/{site_id}/webhooks/{id}` body; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// New receiver URL.
    pub url: Option<String>,
    /// New filters.
    pub event_types: Option<Vec<String>>,
    /// New description.
    pub description: Option<String>,
    /// Enable (clears the disabled reason) or disable.
    pub enabled: Option<bool>,
    /// Pause (deliveries queue, unattempted) or resume (the queue drains).
    pub paused: Option<bool>,
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
    /// Whether it receives deliveries.
    pub enabled: bool,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Whether deliveries queue without being attempted.
    pub paused: bool,
    /// The signing secret (creation response only; later `GET …/secret`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl From<&Webhook> for WebhookResponse {
    fn from(w: &Webhook) -> Self {
        Self {
            id: w.id,
            site_id: w.site_id,
            url: w.url.clone(),
            event_types: w.event_types.iter().map(ToString::to_string).collect(),
            description: w.description.clone(),
            enabled: w.enabled,
            disabled_reason: w.disabled_reason.clone(),
            paused: w.paused,
            secret: None,
            created_at: format_rfc3339(w.created_at),
            updated_at: format_rfc3339(w.updated_at),
        }
    }
}

/// `GET …/secret` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretResponse {
    /// The secret that keys `fullup-signature` (its UTF-8 bytes) and `webhook-signature`.
    pub secret: String,
}

/// `POST …/rotate-secret` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// Seconds the replaced secret keeps signing: default 86400 (a day), at most
    /// 604800 (a week); 0 retires it at once.
    #[serde(default)]
    pub grace_period_secs: Option<u64>,
    /// Bring your own new secret (at least 16 characters); by default a `whsec_`
    /// secret is generated.
    #[serde(default)]
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
    pub since: String,
    /// RFC 3339: … and before this time (default now).
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

/// Parses and vets a receiver URL as a delivery would (the same guard, one lookup).
///
/// A name that does not resolve yet is accepted (its DNS may be set up after the
/// webhook): nothing is connected to here, and every delivery vets it again.
async fn parse_url(state: &AppState, url: &str) -> Result<String, ApiError> {
    let url =
        WebhookUrl::parse(url).map_err(|e| ApiError::invalid("invalid_url", e.to_string()))?;
    match state.guard.vet(url.as_url()).await {
        Ok(_) | Err(GuardError::Dns { .. }) => Ok(url.to_string()),
        Err(e) => Err(ApiError::invalid("invalid_url", e.to_string())),
    }
}

fn parse_filters(raw: Option<Vec<String>>) -> Result<Vec<EventFilter>, ApiError> {
    let raw = raw.unwrap_or_else(|| vec!["*".to_owned()]);
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "invalid_event_types",
            "event_types must list at least one filter; use [\"*\"] for every event",
        ));
    }
    raw.iter()
        .map(|f| {
            EventFilter::parse(f)
                .map_err(|e| ApiError::invalid("invalid_event_types", e.to_string()))
        })
        .collect()
}

fn parse_description(raw: Option<String>) -> Result<String, ApiError> {
    let d = raw.unwrap_or_default();
    if d.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::invalid(
            "invalid_description",
            format!("description must be at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    Ok(d)
}

fn parse_secret(raw: Option<String>) -> Result<Secret, ApiError> {
    let Some(raw) = raw else {
        return Ok(Secret::generate());
    };
    if raw.chars().count() < MIN_CHOSEN_SECRET_LEN {
        return Err(ApiError::invalid(
            "invalid_secret",
            format!(
                "secret must be at least {MIN_CHOSEN_SECRET_LEN} characters; omit it to get a generated one"
            ),
        ));
    }
    Secret::parse(&raw).map_err(|e| ApiError::invalid("invalid_secret", e.to_string()))
}

/// Refuses work that a disabled webhook would never carry out.
pub fn require_enabled(webhook: &Webhook) -> Result<(), ApiError> {
    if webhook.enabled {
        return Ok(());
    }
    Err(ApiError::conflict(
        "webhook_disabled",
        format!(
            "webhook {} is disabled; enable it (PATCH enabled=true) first",
            webhook.id
        ),
    ))
}

async fn load_webhook(
    state: &AppState,
    caller: Caller,
    site: &str,
    id: &str,
) -> Result<(Site, Webhook), ApiError> {
    let site = load_site(state, caller, site).await?;
    let id = path_id(id, "webhook", WebhookId::parse)?;
    let webhook = state
        .store
        .get_webhook(site.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook {id}")))?;
    Ok((site, webhook))
}

/// Creates a webhook; the response carries its secret.
#[utoipa::path(post, path = "/v1/sites/{site_id}/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = WebhookResponse), (status = 422, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookResponse>), ApiError> {
    let site = load_site(&state, caller, &site_id).await?;
    let url = parse_url(&state, &req.url).await?;
    let event_types = parse_filters(req.event_types)?;
    let description = parse_description(req.description)?;
    let secret = parse_secret(req.secret)?;
    if state.store.count_webhooks(site.id).await? >= MAX_WEBHOOKS_PER_SITE {
        return Err(ApiError::conflict(
            "limit_reached",
            format!("a site may hold at most {MAX_WEBHOOKS_PER_SITE} webhooks; delete one first"),
        ));
    }
    let now = state.clock.now_ms();
    let webhook = Webhook {
        id: WebhookId::new(now),
        site_id: site.id,
        url,
        event_types,
        description,
        enabled: req.enabled.unwrap_or(true),
        disabled_reason: None,
        secret,
        old_secrets: Vec::new(),
        created_at: now,
        updated_at: now,
        failing_since: None,
        paused: req.paused.unwrap_or(false),
    };
    state.store.create_webhook(&webhook).await?;
    let mut response = WebhookResponse::from(&webhook);
    response.secret = Some(webhook.secret.expose().to_owned());
    Ok((StatusCode::CREATED, Json(response)))
}

/// Lists a site's webhooks.
#[utoipa::path(get, path = "/v1/sites/{site_id}/webhooks", tag = "webhooks", params(PageParams),
    responses((status = 200, body = ListResponse<WebhookResponse>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(site_id): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<ListResponse<WebhookResponse>>, ApiError> {
    let site = load_site(&state, caller, &site_id).await?;
    let page = state
        .store
        .list_webhooks(site.id, &page.to_request()?)
        .await?;
    Ok(Json(ListResponse::from_page(page, |w| {
        WebhookResponse::from(&w)
    })))
}

/// Gets a webhook (without its secret).
#[utoipa::path(get, path = "/v1/sites/{site_id}/webhooks/{webhook_id}", tag = "webhooks",
    responses((status = 200, body = WebhookResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((site_id, webhook_id)): Path<(String, String)>,
) -> Result<Json<WebhookResponse>, ApiError> {
    let (_, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    Ok(Json(WebhookResponse::from(&webhook)))
}

/// Gets a webhook's secret.
#[utoipa::path(get, path = "/v1/sites/{site_id}/webhooks/{webhook_id}/secret", tag = "webhooks",
    responses((status = 200, body = SecretResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((site_id, webhook_id)): Path<(String, String)>,
) -> Result<Json<SecretResponse>, ApiError> {
    let (_, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    Ok(Json(SecretResponse {
        secret: webhook.secret.expose().to_owned(),
    }))
}

/// Changes a webhook's url, filters, description, enabled or paused flag.
#[utoipa::path(patch, path = "/v1/sites/{site_id}/webhooks/{webhook_id}", tag = "webhooks", request_body = UpdateWebhook,
    responses((status = 200, body = WebhookResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((site_id, webhook_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<UpdateWebhook>,
) -> Result<Json<WebhookResponse>, ApiError> {
    let (_, mut webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    if let Some(url) = req.url {
        webhook.url = parse_url(&state, &url).await?;
    }
    if req.event_types.is_some() {
        webhook.event_types = parse_filters(req.event_types)?;
    }
    if req.description.is_some() {
        webhook.description = parse_description(req.description)?;
    }
    match req.enabled {
        Some(true) => {
            webhook.enabled = true;
            webhook.disabled_reason = None;
            webhook.failing_since = None;
        }
        Some(false) => {
            webhook.enabled = false;
            webhook.disabled_reason = Some("disabled through the API".to_owned());
        }
        None => {}
    }
    if let Some(paused) = req.paused {
        webhook.paused = paused;
    }
    webhook.updated_at = state.clock.now_ms();
    state.store.update_webhook(&webhook).await?;
    state.wake.notify_one();
    Ok(Json(WebhookResponse::from(&webhook)))
}

/// Deletes a webhook and its deliveries.
#[utoipa::path(delete, path = "/v1/sites/{site_id}/webhooks/{webhook_id}", tag = "webhooks",
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((site_id, webhook_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (site, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    state.store.delete_webhook(site.id, webhook.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the webhook's secret; the replaced one keeps signing for a grace period so
/// receivers can switch without a failed delivery.
#[utoipa::path(post, path = "/v1/sites/{site_id}/webhooks/{webhook_id}/rotate-secret", tag = "webhooks",
    request_body = RotateSecretRequest,
    responses((status = 200, body = RotateSecretResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path((site_id, webhook_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<RotateSecretRequest>,
) -> Result<Json<RotateSecretResponse>, ApiError> {
    let (site, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    let grace_secs = req.grace_period_secs.unwrap_or(DEFAULT_GRACE_SECS);
    if grace_secs > MAX_GRACE_SECS {
        return Err(ApiError::invalid(
            "invalid_grace_period",
            format!("grace_period_secs must be at most {MAX_GRACE_SECS} (7 days)"),
        ));
    }
    let new = parse_secret(req.secret)?;
    let now = state.clock.now_ms();
    if webhook.standard_signing_secrets(now).contains(&&new) {
        return Err(ApiError::invalid(
            "invalid_secret",
            "the new secret is already in use by this webhook; choose another or omit it",
        ));
    }
    let grace_ms = i64::try_from(grace_secs * 1000).unwrap_or(i64::MAX);
    let rotated = state
        .store
        .rotate_webhook_secret(site.id, webhook.id, new, grace_ms, now)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("webhook {}", webhook.id)))?;
    Ok(Json(RotateSecretResponse {
        secret: rotated.secret.expose().to_owned(),
        previous_secret_valid_until: format_rfc3339(now.saturating_add(grace_ms)),
        fullup_signature_switches_at: format_rfc3339(rotated.fullup_signature_switches_at(now)),
    }))
}

/// Makes the webhook's failed deliveries created in a time range pending again.
#[utoipa::path(post, path = "/v1/sites/{site_id}/webhooks/{webhook_id}/recover", tag = "webhooks",
    request_body = RecoverRequest,
    responses((status = 202, body = RecoverResponse), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    Path((site_id, webhook_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<RecoverRequest>,
) -> Result<(StatusCode, Json<RecoverResponse>), ApiError> {
    let (site, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    let now = state.clock.now_ms();
    let since = parse_time("since", &req.since)?;
    let until = req
        .until
        .as_deref()
        .map(|u| parse_time("until", u))
        .transpose()?
        .unwrap_or(now + 1);
    if since >= until {
        return Err(ApiError::bad_request("since must be before until"));
    }
    let recovered = state
        .store
        .recover_deliveries(site.id, webhook.id, since, until, now)
        .await?;
    state.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(RecoverResponse { recovered })))
}

/// Sends a `ping` event to this webhook alone.
#[utoipa::path(post, path = "/v1/sites/{site_id}/webhooks/{webhook_id}/test", tag = "webhooks",
    responses((status = 202, body = TestResponse), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path((site_id, webhook_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<TestResponse>), ApiError> {
    let (site, webhook) = load_webhook(&state, caller, &site_id, &webhook_id).await?;
    require_enabled(&webhook)?;
    let data = serde_json::json!({ "webhook_id": webhook.id.to_string() }).to_string();
    let data = canonicalize(data.as_bytes())
        .map_err(|e| ApiError::invalid("invalid_data", e.to_string()))?;
    let event_id = ingest(
        &state,
        IngestRequest {
            site: site.id,
            event_type: PING_EVENT_TYPE,
            data: &data,
            idempotency_key: None,
            only_webhook: Some(webhook.id),
        },
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(TestResponse { event_id })))
}
