//! A webhook's page (its settings, health and actions), its create and edit forms, and
//! the actions: pause and resume, enable and disable, delete, reveal and rotate the
//! secret, send a test event, recover failed deliveries.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::csrf::Posted;
use super::super::error::{ConsoleError, ConsoleResult};
use super::super::layout::{Chrome, badge, csrf_field, page, time};
use super::super::session::Session;
use super::auth::Empty;
use super::deliveries::parse_form_time;
use super::{Signed, non_empty, path_id, site_of, site_path};
use crate::api::AppState;
use crate::domain::ids::WebhookId;
use crate::domain::models::Site;
use crate::domain::ordering::Ordering;
use crate::domain::throttle::RateLimit;
use crate::domain::webhook::{DEFAULT_GRACE, Webhook};
use crate::service::ServiceError;
use crate::service::webhooks::{
    NewWebhook, WebhookChanges, parse_description, parse_filters, parse_rate_limit, parse_secret,
    parse_url,
};
use crate::store::AttemptStats;

/// A webhook's health as the console shows it: its switches, streak and last 24 h.
#[derive(Debug, Clone)]
pub struct Health {
    enabled: bool,
    paused: bool,
    failing_since: Option<crate::domain::time::Timestamp>,
    recent: AttemptStats,
}

impl Health {
    /// The state in a word, with a symbol and colour.
    pub fn badge(&self) -> Markup {
        if !self.enabled {
            badge("disabled", "✗", "disabled")
        } else if self.paused {
            badge("paused", "‖", "paused")
        } else if self.failing_since.is_some() {
            badge("failing", "!", "failing")
        } else if self.recent.attempts == 0 {
            badge("idle", "–", "no recent attempts")
        } else {
            badge("healthy", "✓", "healthy")
        }
    }

    /// "97% of 120 attempts", or "no attempts".
    pub fn ratio_text(&self) -> String {
        let AttemptStats {
            attempts,
            succeeded,
        } = self.recent;
        if attempts == 0 {
            return "no attempts".to_owned();
        }
        let percent = succeeded.saturating_mul(100) / attempts;
        format!("{percent}% of {attempts} attempts")
    }

    /// When its failing streak started, or "not failing".
    pub fn since_text(&self) -> String {
        self.failing_since
            .map_or_else(|| "not failing".to_owned(), |t| t.to_rfc3339_secs())
    }
}

/// The health of `webhook`, its last 24 h read from the store.
pub async fn health_of(state: &AppState, webhook: &Webhook) -> ConsoleResult<Health> {
    Ok(Health {
        enabled: webhook.health.enabled,
        paused: webhook.paused,
        failing_since: webhook.health.failing_since,
        recent: state.service.recent_attempts(webhook).await?,
    })
}

/// The site and webhook a path names, if the session may see them.
async fn load(
    state: &AppState,
    session: &Session,
    site: &str,
    webhook: &str,
) -> ConsoleResult<(Site, Webhook)> {
    let site = site_of(state, session, site).await?;
    let id = path_id(webhook, "webhook", WebhookId::parse)?;
    let webhook = state.service.webhook(&site, id).await?;
    Ok((site, webhook))
}

/// The path of a webhook's page.
pub fn webhook_path(webhook: &Webhook) -> String {
    format!("{}/webhooks/{}", site_path(webhook.site_id), webhook.id)
}

/// The create and edit forms' fields.
#[derive(Debug, Default, Deserialize)]
pub struct WebhookForm {
    /// The receiver URL.
    #[serde(default)]
    pub url: String,
    /// Filters, separated by commas or spaces.
    #[serde(default)]
    pub event_types: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// A chosen secret (create only); empty: generated.
    #[serde(default)]
    pub secret: String,
    /// "on" to start paused (create only).
    #[serde(default)]
    pub paused: Option<String>,
    /// Requests per second at most; empty: no limit.
    #[serde(default)]
    pub rate_limit: String,
    /// "on" for ordered (FIFO) deliveries.
    #[serde(default)]
    pub ordered: Option<String>,
}

impl WebhookForm {
    /// The ordering the checkbox asks for.
    fn ordering(&self) -> Ordering {
        match self.ordered {
            Some(_) => Ordering::Fifo,
            None => Ordering::None,
        }
    }

    fn filters(&self) -> Result<Vec<crate::domain::event_type::EventFilter>, ServiceError> {
        let raw: Vec<String> = self
            .event_types
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect();
        parse_filters((!raw.is_empty()).then_some(raw))
    }

    fn rate_limit(&self) -> Result<Option<RateLimit>, ServiceError> {
        let raw = self.rate_limit.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        let n = raw.parse::<i64>().map_err(|_| {
            ServiceError::invalid(
                "invalid_rate_limit",
                "the rate limit must be a whole number of requests per second, or empty for none",
            )
        })?;
        parse_rate_limit(Some(n))
    }
}

/// The create or edit form, with `values` and the `error` of a refused post.
fn form(
    session: &Session,
    site: &Site,
    editing: Option<&Webhook>,
    values: &WebhookForm,
    error: Option<&str>,
) -> Markup {
    let action = match editing {
        Some(w) => format!("{}/edit", webhook_path(w)),
        None => format!("{}/webhooks", site_path(site.id)),
    };
    html! {
        @if let Some(error) = error { p class="notice error" role="alert" { (error) } }
        form method="post" action=(action) {
            (csrf_field(session))
            label for="url" { "Receiver URL" span class="hint" { "Where events are posted, such as https://example.com/webhooks." } }
            input id="url" type="url" name="url" value=(values.url) required;
            label for="event_types" { "Event types" span class="hint" { "Comma-separated: * for every event, a prefix such as form.*, or exact types." } }
            input id="event_types" type="text" name="event_types" value=(values.event_types);
            label for="description" { "Description" }
            textarea id="description" name="description" rows="3" { (values.description) }
            label for="rate_limit" { "Rate limit" span class="hint" { "Requests per second at most, 1 to 10000; deliveries beyond it wait. Empty: no limit." } }
            input id="rate_limit" type="number" name="rate_limit" min="1" max="10000" value=(values.rate_limit);
            @if editing.is_none() {
                label for="secret" { "Secret" span class="hint" { "Leave empty to get a generated whsec_ secret." } }
                input id="secret" type="text" name="secret" value=(values.secret) autocomplete="off";
                label { input type="checkbox" name="paused" checked[values.paused.is_some()]; " Start paused" }
            }
            label { input type="checkbox" name="ordered" checked[values.ordered.is_some()]; " Ordered (FIFO)" span class="hint" { "Deliveries leave in ingest order, one request at a time; a failing one holds back the rest until it succeeds or is given up." } }
            p { button type="submit" { @if editing.is_some() { "Save" } @else { "Create the webhook" } } }
        }
    }
}

/// `GET …/webhooks/new`: the create form.
pub async fn new_page(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(site_id): Path<String>,
) -> ConsoleResult<Response> {
    let site = site_of(&state, &session, &site_id).await?;
    let values = WebhookForm {
        event_types: "*".to_owned(),
        ..WebhookForm::default()
    };
    let body = html! {
        h1 { "Add a webhook to " (site.name) }
        (form(&session, &site, None, &values, None))
    };
    Ok(page(&Chrome::of(&session), "Add a webhook", body).into_response())
}

/// `POST …/webhooks`: creates the webhook, or shows the form again with why not.
pub async fn create(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    Posted {
        session,
        form: values,
    }: Posted<WebhookForm>,
) -> ConsoleResult<Response> {
    let site = site_of(&state, &session, &site_id).await?;
    let parsed = (|| {
        Ok::<_, ServiceError>(NewWebhook {
            url: parse_url(values.url.trim())?,
            event_types: values.filters()?,
            description: parse_description(Some(values.description.clone()))?,
            headers: Default::default(),
            secret: parse_secret(non_empty(Some(&values.secret)).map(str::to_owned))?,
            enabled: true,
            paused: values.paused.is_some(),
            rate_limit: values.rate_limit()?,
            ordering: values.ordering(),
        })
    })();
    let created = match parsed {
        Ok(new) => state.service.create_webhook(&site, new).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(webhook) => Ok(Redirect::to(&webhook_path(&webhook)).into_response()),
        Err(ServiceError::Invalid { message, .. } | ServiceError::Conflict { message, .. }) => {
            let body = html! {
                h1 { "Add a webhook to " (site.name) }
                (form(&session, &site, None, &values, Some(&message)))
            };
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page(&Chrome::of(&session), "Add a webhook", body),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET …/webhooks/{id}`: settings, health and actions.
pub async fn show(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path((site_id, webhook_id)): Path<(String, String)>,
) -> ConsoleResult<Response> {
    let (site, webhook) = load(&state, &session, &site_id, &webhook_id).await?;
    let health = health_of(&state, &webhook).await?;
    let path = webhook_path(&webhook);
    let switch = |action: &str, label: &str| {
        html! {
            form class="inline" method="post" action={ (path) "/switch" } {
                (csrf_field(&session))
                input type="hidden" name="action" value=(action);
                button type="submit" class="secondary" { (label) }
            }
        }
    };
    let post = |to: &str, label: &str| {
        html! {
            form class="inline" method="post" action={ (path) "/" (to) } {
                (csrf_field(&session))
                button type="submit" class="secondary" { (label) }
            }
        }
    };
    let body = html! {
        p class="crumbs" {
            @if session.portal_site().is_none() { a href="/console/" { "Sites" } " › " }
            a href=(site_path(site.id)) { (site.name) } " › webhook"
        }
        h1 class="wrap" { @if webhook.description.is_empty() { (webhook.url) } @else { (webhook.description) } }
        dl class="facts" {
            dt { "State" } dd { (health.badge()) }
            @if let Some(why) = &webhook.health.disabled_reason { dt { "Disabled because" } dd { (why) } }
            dt { "Success, last 24 h" } dd { (health.ratio_text()) }
            dt { "Failing since" } dd { (health.since_text()) }
            dt { "Receiver URL" } dd class="wrap" { code { (webhook.url) } }
            dt { "Event types" } dd { @for (i, f) in webhook.event_types.iter().enumerate() { @if i > 0 { ", " } code { (f) } } }
            dt { "Description" } dd { (webhook.description) }
            dt { "Attempts at once" } dd { (state.service.concurrency_limit(&webhook)) }
            dt { "Rate limit" } dd { @match webhook.rate_limit { Some(r) => { (r.per_second()) " per second" }, None => "none" } }
            dt { "Order" } dd { @if webhook.ordering.is_fifo() { "ingest order (FIFO), one at a time" } @else { "none" } }
            dt { "Id" } dd { code { (webhook.id) } }
            dt { "Created" } dd { (time(webhook.created_at)) }
        }
        div class="actions" {
            a class="button" href={ (site_path(site.id)) "/deliveries?webhook=" (webhook.id) } { "Deliveries" }
            (post("test", "Send a test event"))
            a class="button secondary" href={ (path) "/edit" } { "Edit" }
            @if webhook.paused { (switch("resume", "Resume")) } @else { (switch("pause", "Pause")) }
            @if webhook.health.enabled { (switch("disable", "Disable")) } @else { (switch("enable", "Enable")) }
            a class="button secondary" href={ (path) "/delete" } { "Delete…" }
        }
        h2 { "Secret" }
        div class="actions" {
            (post("secret", "Reveal the secret"))
            (post("rotate", "Rotate the secret"))
        }
        h2 { "Recover failed deliveries" }
        form method="post" action={ (path) "/recover" } {
            (csrf_field(&session))
            label for="since" { "Failed since (UTC)" span class="hint" { "Every failed delivery created since then is attempted again now." } }
            input id="since" type="datetime-local" name="since" required;
            p { button type="submit" { "Recover" } }
        }
    };
    Ok(page(&Chrome::of(&session), "Webhook", body).into_response())
}

/// `GET …/edit`: the edit form.
pub async fn edit_page(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path((site_id, webhook_id)): Path<(String, String)>,
) -> ConsoleResult<Response> {
    let (site, webhook) = load(&state, &session, &site_id, &webhook_id).await?;
    let values = WebhookForm {
        url: webhook.url.to_string(),
        event_types: webhook
            .event_types
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        description: webhook.description.clone(),
        rate_limit: webhook
            .rate_limit
            .map(|r| r.per_second().to_string())
            .unwrap_or_default(),
        ordered: webhook.ordering.is_fifo().then(|| "on".to_owned()),
        ..WebhookForm::default()
    };
    let body = html! {
        h1 { "Edit the webhook" }
        (form(&session, &site, Some(&webhook), &values, None))
    };
    Ok(page(&Chrome::of(&session), "Edit the webhook", body).into_response())
}

/// `POST …/edit`: saves the URL, filters, description and rate limit.
pub async fn edit(
    State(state): State<AppState>,
    Path((site_id, webhook_id)): Path<(String, String)>,
    Posted {
        session,
        form: values,
    }: Posted<WebhookForm>,
) -> ConsoleResult<Response> {
    let (site, webhook) = load(&state, &session, &site_id, &webhook_id).await?;
    let changes = (|| {
        Ok::<_, ServiceError>(WebhookChanges {
            url: Some(parse_url(values.url.trim())?),
            event_types: Some(values.filters()?),
            description: Some(parse_description(Some(values.description.clone()))?),
            rate_limit: Some(values.rate_limit()?),
            ordering: Some(values.ordering()),
            ..WebhookChanges::default()
        })
    })();
    let updated = match changes {
        Ok(changes) => state.service.update_webhook(webhook.clone(), changes).await,
        Err(e) => Err(e),
    };
    match updated {
        Ok(webhook) => Ok(Redirect::to(&webhook_path(&webhook)).into_response()),
        Err(ServiceError::Invalid { message, .. }) => {
            let body = html! {
                h1 { "Edit the webhook" }
                (form(&session, &site, Some(&webhook), &values, Some(&message)))
            };
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page(&Chrome::of(&session), "Edit the webhook", body),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// The switch form: `action` is pause, resume, enable or disable.
#[derive(Debug, Deserialize)]
pub struct SwitchForm {
    /// What to do.
    pub action: String,
}

/// `POST …/switch`: pauses, resumes, enables or disables.
pub async fn switch(
    State(state): State<AppState>,
    Path((site_id, webhook_id)): Path<(String, String)>,
    Posted { session, form }: Posted<SwitchForm>,
) -> ConsoleResult<Response> {
    let (_, webhook) = load(&state, &session, &site_id, &webhook_id).await?;
    let mut changes = WebhookChanges::default();
    match form.action.as_str() {
        "pause" => changes.paused = Some(true),
        "resume" => changes.paused = Some(false),
        "enable" => changes.enabled = Some(true),
        "disable" => changes.enabled = Some(false),
        _ => {
            return Err(ConsoleError::BadRequest(
                "action must be pause, resume, enable or disable".to_owned(),
            ));
        }
    }
    let webhook = state.service.update_webhook(webhook, changes).await?;
    Ok(Redirect::to(&webhook_path(&webhook)).into_response())
}

/// `GET …/delete`: asks to confirm.
pub async fn delete_page(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path((site_id, webhook_id)): Path<(String, String)>,
) -> ConsoleResult<Response> {
    let (_, webhook) = load(&state, &session, &site_id, &webhook_id).await?;
    let path = webhook_path(&webhook);
    let body = html! {
        h1 { "Delete this webhook?" }
        p class="wrap" { "The webhook to " code { (webhook.url) } " will be deleted, and its pending deliveries cancelled. Its delivery history stays readable until retention prunes it. This cannot be undone." }
        form method="post" action={ (path) "/delete" } {
            (csrf_field(&session))
            div class="actions" {
                button type="submit" class="danger" { "Delete the webhook" }
                a class="button secondary" href=(path) { "Keep it" }
            }
        }
    };
    Ok(page(&Chrome::of(&session), "Delete the webhook", body).into_response())
}

/// `POST …/delete`: deletes the webhook, keeping its delivery history.
pub async fn delete(
    State(state): State<AppState>,
    Path((site_id, webhook_id)): Path<(String, String)>,
    posted: Posted<Empty>,
) -> ConsoleResult<Response> {
    let (site, webhook) = load(&state, &posted.session, &site_id, &webhook_id).await?;
    state.service.delete_webhook(&webhook).await?;
    Ok(Redirect::to(&site_path(site.id)).into_response())
}

/// A page showing a secret once (it is never put in a URL).
fn secret_page(session: &Session, webhook: &Webhook, title: &str, note: Markup) -> Response {
    let body = html! {
        h1 { (title) }
        (note)
        @match webhook.secrets() {
            Ok(secrets) => { code class="secret" id="secret" { (secrets.current.expose()) } }
            Err(unreadable) => { p class="error" { (unreadable.to_string()) "; ask the service's operator." } }
        }
        p { a href=(webhook_path(webhook)) { "Back to the webhook" } }
    };
    page(&Chrome::of(session), title, body).into_response()
}

/// `POST …/secret`: shows the secret.
pub async fn reveal_secret(
    State(state): State<AppState>,
    Path((site_id, webhook_id)): Path<(String, String)>,
    posted: Posted<Empty>,
) -> ConsoleResult<Response> {
    let (_, webhook) = load(&state, &posted.session, &site_id, &webhook_id).await?;
    state
        .service
        .reveal_secret(&webhook, posted.session.actor())?;
    Ok(secret_page(
        &posted.session,
        &webhook,
        "The webhook's secret",
        html! { p { "Receivers verify signatures with it. Keep it out of logs and tickets." } },
    ))
}

/// `POST …/rotate`: a new generated secret; the old one keeps signing for a day.
pub async fn rotate(
    State(state): State<AppState>,
    Path((site_id, webhook_id)): Path<(String, String)>,
    posted: Posted<Empty>,
) -> ConsoleResult<Response> {
    let (_, webhook) = load(&state, &posted.session, &site_id, &webhook_id).await?;
    let rotated = state
        .service
        .rotate_secret(
            &webhook,
            fullup_signature::Secret::generate(),
            DEFAULT_GRACE,
            posted.session.actor(),
        )
        .await?;
    Ok(secret_page(
        &posted.session,
        &rotated.webhook,
        "The new secret",
        html! { p { "The previous secret also signs until " (time(rotated.previous_valid_until)) ", so receivers can switch without a failed delivery." } },
    ))
}

/// `POST …/test`: sends a `ping` to this webhook alone and shows its delivery.
pub async fn test(
    State(state): State<AppState>,
    Path((site_id, webhook_id)): Path<(String, String)>,
    posted: Posted<Empty>,
) -> ConsoleResult<Response> {
    let (site, webhook) = load(&state, &posted.session, &site_id, &webhook_id).await?;
    let event = state.service.send_test(&webhook).await?;
    Ok(Redirect::to(&format!(
        "{}/deliveries?webhook={}&event={event}",
        site_path(site.id),
        webhook.id
    ))
    .into_response())
}

/// Deliveries counted for a recovery's progress, at most.
const PROGRESS_CAP: u32 = 10_000;

/// The webhook's pending and failed deliveries created since `since`, as text
/// (`10000+` past [`PROGRESS_CAP`]).
async fn progress(
    state: &AppState,
    site: &Site,
    webhook: &Webhook,
    since: crate::domain::time::Timestamp,
) -> ConsoleResult<(String, String)> {
    let count = |s| async move {
        let filter = crate::store::DeliveryFilter {
            webhook_id: Some(webhook.id),
            state: Some(s),
            since: Some(since),
            ..crate::store::DeliveryFilter::default()
        };
        let n = state
            .service
            .count_deliveries(site, &filter, PROGRESS_CAP)
            .await?;
        Ok::<_, ConsoleError>(if n >= u64::from(PROGRESS_CAP) {
            format!("{PROGRESS_CAP}+")
        } else {
            n.to_string()
        })
    };
    use crate::domain::models::DeliveryState;
    Ok((
        count(DeliveryState::Pending).await?,
        count(DeliveryState::Failed).await?,
    ))
}

/// `GET …/recover-progress?since=`: the counters of a recovery's page.
pub async fn recover_progress(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path((site_id, webhook_id)): Path<(String, String)>,
    axum::extract::Query(form): axum::extract::Query<RecoverForm>,
) -> ConsoleResult<axum::Json<serde_json::Value>> {
    let (site, webhook) = load(&state, &session, &site_id, &webhook_id).await?;
    let since = parse_form_time("since", &form.since)?;
    let (pending, failed) = progress(&state, &site, &webhook, since).await?;
    Ok(axum::Json(
        serde_json::json!({ "pending": pending, "failed": failed }),
    ))
}

/// The recover form.
#[derive(Debug, Deserialize)]
pub struct RecoverForm {
    /// `YYYY-MM-DDTHH:MM` (UTC) or RFC 3339.
    pub since: String,
}

/// `POST …/recover`: makes the webhook's failed deliveries since a time due now.
pub async fn recover(
    State(state): State<AppState>,
    Path((site_id, webhook_id)): Path<(String, String)>,
    Posted { session, form }: Posted<RecoverForm>,
) -> ConsoleResult<Response> {
    let (site, webhook) = load(&state, &session, &site_id, &webhook_id).await?;
    let since = parse_form_time("since", &form.since)?;
    let recovered = state.service.recover(&webhook, since, None).await?;
    let list = format!(
        "{}/deliveries?webhook={}&state=pending",
        site_path(site.id),
        webhook.id
    );
    let since_query =
        serde_urlencoded::to_string([("since", since.to_rfc3339())]).unwrap_or_default();
    let live = format!("{}/recover-progress?{since_query}", webhook_path(&webhook));
    let progress = progress(&state, &site, &webhook, since).await?;
    let body = html! {
        h1 { "Recovering" }
        p role="status" { (recovered) " failed deliveries since " (time(since)) " are being attempted again." }
        section data-live=(live) aria-label="Progress" {
            h2 { "Progress" }
            dl class="facts" {
                dt { "Still pending" } dd data-counter="pending" { (progress.0) }
                dt { "Failed again" } dd data-counter="failed" { (progress.1) }
            }
            p class="live" aria-live="polite" data-live-stamp { "Counts of the webhook's deliveries since then; they refresh every few seconds." }
        }
        p { a href=(list) { "The webhook's pending deliveries" } }
        p { a href=(webhook_path(&webhook)) { "Back to the webhook" } }
    };
    Ok(page(&Chrome::of(&session), "Recovering", body).into_response())
}
