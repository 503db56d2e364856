//! The sites (the operator's home page) and a site's page: its webhooks with their
//! health, refreshed live by the page's script from [`live`].

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::csrf::Posted;
use super::super::error::{ConsoleError, ConsoleResult};
use super::super::layout::{Chrome, csrf_field, page, time};
use super::webhooks::{Health, health_of};
use super::{PAGE_SIZE, Signed, site_of, site_path};
use crate::api::AppState;
use crate::domain::models::Site;
use crate::domain::webhook::Webhook;
use crate::store::{Page, PageRequest};

/// `?cursor=` of a paged list.
#[derive(Debug, Default, Deserialize)]
pub struct Cursor {
    /// The previous page's last id.
    pub cursor: Option<String>,
}

impl Cursor {
    /// The page request of a console list.
    pub fn page(&self) -> PageRequest {
        PageRequest {
            limit: PAGE_SIZE,
            before: super::non_empty(self.cursor.as_deref()).map(str::to_owned),
        }
    }
}

/// "Next page" (and "First page") links of a list at `base`.
pub fn pager(base: &str, next: Option<&str>, paged: bool) -> Markup {
    let join = if base.contains('?') { '&' } else { '?' };
    html! {
        nav class="pager" aria-label="Pages" {
            @if paged { a href=(base) { "First page" } }
            @if let Some(next) = next { a href={ (base) (join) "cursor=" (next) } { "Next page" } }
        }
    }
}

/// `GET /console/`: the operator's sites; a portal session goes to its site.
pub async fn home(
    State(state): State<AppState>,
    Signed(session): Signed,
    Query(cursor): Query<Cursor>,
) -> ConsoleResult<Response> {
    if let Some(site) = session.portal_site() {
        return Ok(Redirect::to(&site_path(site)).into_response());
    }
    let sites = state.service.sites(&cursor.page()).await?;
    let body = html! {
        h1 { "Sites" }
        @if sites.items.is_empty() {
            p { "No site yet. Create one with " code { "POST /v1/sites" } "." }
        } @else {
            div class="table-wrap" {
                table {
                    caption class="skip" { "Sites, newest first" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Created" } } }
                    tbody {
                        @for site in &sites.items {
                            tr {
                                td { a href=(site_path(site.id)) { (site.name) } }
                                td { code { (site.id) } }
                                td { (time(site.created_at)) }
                            }
                        }
                    }
                }
            }
        }
        (pager("/console/", sites.next_cursor.as_deref(), cursor.cursor.is_some()))
    };
    Ok(page(&super::super::layout::Chrome::of(&session), "Sites", body).into_response())
}

/// A page of `site`'s webhooks, each with its health.
async fn webhooks_with_health(
    state: &AppState,
    site: &Site,
    cursor: &Cursor,
) -> ConsoleResult<(Page<Webhook>, Vec<Health>)> {
    let webhooks = state.service.webhooks(site, &cursor.page()).await?;
    let mut health = Vec::with_capacity(webhooks.items.len());
    for webhook in &webhooks.items {
        health.push(health_of(state, webhook).await?);
    }
    Ok((webhooks, health))
}

/// `GET /console/sites/{site}`: the site's webhooks with their health.
pub async fn site(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(site_id): Path<String>,
    Query(cursor): Query<Cursor>,
) -> ConsoleResult<Response> {
    let site = site_of(&state, &session, &site_id).await?;
    let (webhooks, health) = webhooks_with_health(&state, &site, &cursor).await?;
    let base = site_path(site.id);
    let live = match &cursor.cursor {
        Some(c) => format!("{base}/live?cursor={c}"),
        None => format!("{base}/live"),
    };
    let body = html! {
        p class="crumbs" {
            @if session.portal_site().is_none() { a href="/console/" { "Sites" } " › " }
            (site.name)
        }
        h1 { "Webhooks of " (site.name) }
        div class="actions" {
            a class="button" href={ (base) "/webhooks/new" } { "Add a webhook" }
            a class="button secondary" href={ (base) "/deliveries" } { "Deliveries" }
            a class="button secondary" href={ (base) "/event-types" } { "Event types" }
        }
        @if webhooks.items.is_empty() {
            p { "No webhook yet." }
        } @else {
            div class="table-wrap" data-live=(live) {
                table {
                    caption class="skip" { "Webhooks and their health over the last 24 hours" }
                    thead {
                        tr {
                            th scope="col" { "Webhook" }
                            th scope="col" { "State" }
                            th scope="col" { "Success, last 24 h" }
                            th scope="col" { "Failing since" }
                        }
                    }
                    tbody {
                        @for (webhook, health) in webhooks.items.iter().zip(&health) {
                            tr {
                                td class="wrap" {
                                    a href={ (base) "/webhooks/" (webhook.id) } {
                                        @if webhook.description.is_empty() { (webhook.url) } @else { (webhook.description) }
                                    }
                                    br;
                                    code { (webhook.url) }
                                }
                                td { (health.badge()) @if let Some(why) = &webhook.health.disabled_reason { br; span class="hint" { (why) } } }
                                td data-counter={ (webhook.id) "-ratio" } { (health.ratio_text()) }
                                td data-counter={ (webhook.id) "-since" } { (health.since_text()) }
                            }
                        }
                    }
                }
                p class="live" aria-live="polite" data-live-stamp { "Counters refresh every few seconds." }
            }
        }
        (pager(&base, webhooks.next_cursor.as_deref(), cursor.cursor.is_some()))
        @if session.portal_site().is_none() {
            h2 { "Portal link" }
            p { "A link for this site's owner to manage its webhooks (and only them) for 10 minutes; it opens once." }
            form method="post" action={ (base) "/portal-link" } {
                (csrf_field(&session))
                button type="submit" class="secondary" { "Create a portal link" }
            }
        }
    };
    Ok(page(&Chrome::of(&session), &site.name, body).into_response())
}

/// `GET /console/sites/{site}/live`: the counters of a page of the site's webhooks, as
/// `{"<webhook id>-ratio": text, "<webhook id>-since": text}`.
pub async fn live(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(site_id): Path<String>,
    Query(cursor): Query<Cursor>,
) -> ConsoleResult<Json<serde_json::Map<String, serde_json::Value>>> {
    let site = site_of(&state, &session, &site_id).await?;
    let (webhooks, health) = webhooks_with_health(&state, &site, &cursor).await?;
    let mut counters = serde_json::Map::new();
    for (webhook, health) in webhooks.items.iter().zip(&health) {
        counters.insert(format!("{}-ratio", webhook.id), health.ratio_text().into());
        counters.insert(format!("{}-since", webhook.id), health.since_text().into());
    }
    Ok(Json(counters))
}

/// `POST /console/sites/{site}/portal-link` (operator only): a new portal link, shown once.
pub async fn portal_link(
    State(state): State<AppState>,
    Path(site_id): Path<String>,
    posted: Posted<super::auth::Empty>,
) -> ConsoleResult<Response> {
    let session = posted.session;
    if session.portal_site().is_some() {
        return Err(ConsoleError::NotFound("this page".to_owned()));
    }
    let site = site_of(&state, &session, &site_id).await?;
    let link = state.service.create_portal_token(&site).await?;
    let url = state.console.portal_url(&link.token);
    let body = html! {
        p class="crumbs" { a href="/console/" { "Sites" } " › " a href=(site_path(site.id)) { (site.name) } }
        h1 { "Portal link for " (site.name) }
        p { "Hand this link to the site's owner. It opens once, until " (time(link.expires_at)) "." }
        code class="secret" id="portal-url" { (url) }
    };
    Ok(page(&Chrome::of(&session), "Portal link", body).into_response())
}
