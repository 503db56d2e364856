//! Deliveries: the list (filtered by state, webhook, event type and time, paged by
//! cursor, each state shown in words and a symbol as well as colour), a delivery with
//! its event and every attempt (the headers sent, the answer's status, headers and body,
//! the duration and the error), and "retry now".
//!
//! The list is one index range of the store (`deliveries_site`, newest first from the
//! cursor, one page plus one row), whatever the backlog. A filter that has no index of
//! its own (state, event type, time) looks at most [`SCAN_WINDOW`] deliveries per page,
//! so a rare state costs no more than a common one; a page that found fewer matches says
//! so and its "Next page" searches on.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::super::csrf::Posted;
use super::super::error::{ConsoleError, ConsoleResult};
use super::super::layout::{Chrome, csrf_field, delivery_badge, page, time};
use super::auth::Empty;
use super::sites::{Cursor, pager};
use super::{Signed, non_empty, path_id, site_of, site_path};
use crate::api::AppState;
use crate::domain::ids::{DeliveryId, EventId, WebhookId};
use crate::domain::models::DeliveryState;
use crate::domain::time::Timestamp;
use crate::store::DeliveryFilter;

/// Deliveries a filtered page looks through at most.
pub const SCAN_WINDOW: u32 = 10_000;

/// Parses a form's time: `YYYY-MM-DDTHH:MM` (a `datetime-local` field, read as UTC),
/// with seconds or not, or RFC 3339.
pub fn parse_form_time(field: &str, value: &str) -> ConsoleResult<Timestamp> {
    let value = value.trim();
    let bad = || {
        ConsoleError::BadRequest(format!(
            "{field} must be a time such as 2026-01-31T12:00 (UTC) or 2026-01-31T12:00:00Z"
        ))
    };
    if let Ok(t) = Timestamp::parse_rfc3339(value) {
        return Ok(t);
    }
    let with_seconds = if value.len() == 16 {
        format!("{value}:00Z")
    } else {
        format!("{value}Z")
    };
    Timestamp::parse_rfc3339(&with_seconds).map_err(|_| bad())
}

/// The list's query: its filters and cursor.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// `pending`, `succeeded`, `failed` or `cancelled`.
    pub state: Option<String>,
    /// A webhook id.
    pub webhook: Option<String>,
    /// An exact event type.
    pub event_type: Option<String>,
    /// An event id.
    pub event: Option<String>,
    /// Created at or after (UTC).
    pub since: Option<String>,
    /// Created before (UTC).
    pub until: Option<String>,
    /// The previous page's last id.
    pub cursor: Option<String>,
}

impl ListQuery {
    fn filter(&self) -> ConsoleResult<DeliveryFilter> {
        let bad = |what: &str| ConsoleError::BadRequest(format!("{what} is not valid"));
        let get = |v: &Option<String>| non_empty(v.as_deref()).map(str::to_owned);
        let unindexed = [&self.state, &self.event_type, &self.since, &self.until]
            .iter()
            .any(|v| get(v).is_some());
        Ok(DeliveryFilter {
            scan_window: unindexed.then_some(SCAN_WINDOW),
            state: get(&self.state)
                .map(|s| DeliveryState::parse(&s).ok_or_else(|| bad("state")))
                .transpose()?,
            webhook_id: get(&self.webhook)
                .map(|w| WebhookId::parse(&w).map_err(|_| bad("webhook")))
                .transpose()?,
            event_id: get(&self.event)
                .map(|e| EventId::parse(&e).map_err(|_| bad("event")))
                .transpose()?,
            event_type: get(&self.event_type),
            since: get(&self.since)
                .map(|t| parse_form_time("since", &t))
                .transpose()?,
            until: get(&self.until)
                .map(|t| parse_form_time("until", &t))
                .transpose()?,
        })
    }

    /// The query string of these filters, without the cursor.
    fn query_string(&self) -> String {
        let pairs: Vec<(&str, &str)> = [
            ("state", &self.state),
            ("webhook", &self.webhook),
            ("event_type", &self.event_type),
            ("event", &self.event),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(k, v)| non_empty(v.as_deref()).map(|v| (k, v)))
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

/// `GET …/deliveries`: the filtered, paged list.
pub async fn list(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(site_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ConsoleResult<Response> {
    let site = site_of(&state, &session, &site_id).await?;
    let filter = query.filter()?;
    let cursor = Cursor {
        cursor: query.cursor.clone(),
    };
    let started = std::time::Instant::now();
    let deliveries = state
        .service
        .deliveries(&site, &filter, &cursor.page())
        .await?;
    tracing::debug!(
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "console deliveries page read"
    );
    let base = format!("{}/deliveries", site_path(site.id));
    let qs = query.query_string();
    let here = if qs.is_empty() {
        base.clone()
    } else {
        format!("{base}?{qs}")
    };
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let selected = value(&query.state);
    let body = html! {
        p class="crumbs" {
            @if session.portal_site().is_none() { a href="/console/" { "Sites" } " › " }
            a href=(site_path(site.id)) { (site.name) } " › deliveries"
        }
        h1 { "Deliveries of " (site.name) }
        form method="get" action=(base) class="filters" aria-label="Filters" {
            div {
                label for="state" { "State" }
                select id="state" name="state" {
                    option value="" selected[selected.is_empty()] { "any" }
                    @for s in ["pending", "succeeded", "failed", "cancelled"] {
                        option value=(s) selected[selected == s] { (s) }
                    }
                }
            }
            div { label for="webhook" { "Webhook id" } input id="webhook" type="text" name="webhook" value=(value(&query.webhook)); }
            div { label for="event_type" { "Event type" } input id="event_type" type="text" name="event_type" value=(value(&query.event_type)); }
            div { label for="since" { "Since (UTC)" } input id="since" type="datetime-local" name="since" value=(value(&query.since)); }
            div { label for="until" { "Until (UTC)" } input id="until" type="datetime-local" name="until" value=(value(&query.until)); }
            @if let Some(event) = non_empty(query.event.as_deref()) { input type="hidden" name="event" value=(event); }
            div { button type="submit" { "Filter" } " " a href=(base) { "Clear" } }
        }
        @if filter.scan_window.is_some() && deliveries.next_cursor.is_some()
            && deliveries.items.len() < usize::try_from(super::PAGE_SIZE).unwrap_or(usize::MAX) {
            p class="notice" role="status" {
                "Only these match among the next " (SCAN_WINDOW) " deliveries; “Next page” searches further back."
            }
        }
        @if deliveries.items.is_empty() {
            p { "No delivery matches." }
        } @else {
            div class="table-wrap" {
                table {
                    caption class="skip" { "Deliveries, newest first" }
                    thead {
                        tr {
                            th scope="col" { "State" }
                            th scope="col" { "Delivery" }
                            th scope="col" { "Webhook" }
                            th scope="col" { "Attempts" }
                            th scope="col" { "Created" }
                            th scope="col" { "Next attempt" }
                        }
                    }
                    tbody {
                        @for d in &deliveries.items {
                            tr {
                                td { (delivery_badge(d.state)) }
                                td { a href={ (base) "/" (d.id) } { code { (d.id) } } }
                                td {
                                    @if d.webhook_deleted {
                                        code { (d.webhook_id) } " (deleted)"
                                    } @else {
                                        a href={ (site_path(site.id)) "/webhooks/" (d.webhook_id) } { code { (d.webhook_id) } }
                                    }
                                }
                                td { (d.attempt_count) }
                                td { (time(d.created_at)) }
                                td {
                                    @match d.next_attempt_at.filter(|_| d.state == DeliveryState::Pending) {
                                        Some(at) => (time(at)),
                                        None => "—",
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (pager(&here, deliveries.next_cursor.as_deref(), cursor.cursor.is_some()))
    };
    Ok(page(&Chrome::of(&session), "Deliveries", body).into_response())
}

/// `GET …/deliveries/{id}`: the delivery, its event and its attempts (newest first,
/// paged).
pub async fn show(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path((site_id, delivery_id)): Path<(String, String)>,
    Query(cursor): Query<Cursor>,
) -> ConsoleResult<Response> {
    let site = site_of(&state, &session, &site_id).await?;
    let id = path_id(&delivery_id, "delivery", DeliveryId::parse)?;
    let delivery = state.service.delivery(&site, id).await?;
    let event = state.service.event(&site, delivery.event_id).await?;
    let attempts = state.service.attempts(&delivery, &cursor.page()).await?;
    let pretty = serde_json::from_str::<serde_json::Value>(&event.payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| event.payload.clone());
    let path = format!("{}/deliveries/{}", site_path(site.id), delivery.id);
    let body = html! {
        p class="crumbs" {
            @if session.portal_site().is_none() { a href="/console/" { "Sites" } " › " }
            a href=(site_path(site.id)) { (site.name) } " › "
            a href={ (site_path(site.id)) "/deliveries" } { "deliveries" } " › delivery"
        }
        h1 { "Delivery " code { (delivery.id) } }
        dl class="facts" {
            dt { "State" } dd { (delivery_badge(delivery.state)) }
            dt { "Attempts" } dd { (delivery.attempt_count) }
            dt { "Webhook" } dd {
                @if delivery.webhook_deleted {
                    code { (delivery.webhook_id) } " (deleted: this history is kept until retention prunes it)"
                } @else {
                    a href={ (site_path(site.id)) "/webhooks/" (delivery.webhook_id) } { code { (delivery.webhook_id) } }
                }
            }
            dt { "Event" } dd { code { (event.id) } " (" code { (event.event_type) } ")" }
            dt { "Created" } dd { (time(delivery.created_at)) }
            @if let Some(at) = delivery.next_attempt_at.filter(|_| delivery.state == DeliveryState::Pending) {
                dt { "Next attempt" } dd { (time(at)) }
            }
        }
        form method="post" action={ (path) "/retry" } {
            (csrf_field(&session))
            button type="submit" { "Retry now" }
        }
        h2 { "Event" }
        pre tabindex="0" aria-label="Event payload" { code { (pretty) } }
        h2 { "Attempts" }
        @if attempts.items.is_empty() { p { "No attempt yet." } }
        @for a in &attempts.items {
            section class="attempt" aria-label={ "Attempt " (a.attempt_number) } {
                h3 { "Attempt " (a.attempt_number) }
                dl class="facts" {
                    dt { "Started" } dd { (time(a.started_at)) }
                    dt { "Duration" } dd { (a.duration.as_millis()) " ms" }
                    dt { "Response status" } dd {
                        @match a.status_code { Some(code) => (code), None => "no answer" }
                    }
                    @if let Some(kind) = a.error_kind { dt { "Error" } dd { (kind.as_str()) @if let Some(m) = &a.error_message { ": " (m) } } }
                }
                @if !a.request_headers.is_empty() {
                    details {
                        summary { "Request headers sent" }
                        pre tabindex="0" aria-label={ "Request headers of attempt " (a.attempt_number) } { code { (a.request_headers) } }
                    }
                }
                @if !a.response_headers.is_empty() {
                    p { "Response headers:" }
                    pre tabindex="0" aria-label={ "Response headers of attempt " (a.attempt_number) } { code { (a.response_headers) } }
                }
                @if !a.response_body.is_empty() {
                    p { "Response body (first 4 KiB, as stored):" }
                    pre tabindex="0" aria-label={ "Response body of attempt " (a.attempt_number) } { code { (a.response_body) } }
                }
            }
        }
        (pager(&path, attempts.next_cursor.as_deref(), cursor.cursor.is_some()))
    };
    Ok(page(&Chrome::of(&session), "Delivery", body).into_response())
}

/// `POST …/deliveries/{id}/retry`: attempts it again now.
pub async fn retry(
    State(state): State<AppState>,
    Path((site_id, delivery_id)): Path<(String, String)>,
    posted: Posted<Empty>,
) -> ConsoleResult<Response> {
    let site = site_of(&state, &posted.session, &site_id).await?;
    let id = path_id(&delivery_id, "delivery", DeliveryId::parse)?;
    let delivery = state.service.delivery(&site, id).await?;
    let delivery = state.service.retry(&delivery).await?;
    Ok(Redirect::to(&format!(
        "{}/deliveries/{}",
        site_path(site.id),
        delivery.id
    ))
    .into_response())
}
