//! A site's event-type catalog, read only: each type's description, whether events of
//! it are checked against a schema, and the schema and example themselves, so the people
//! writing a receiver see what they will get. The catalog is managed through the API
//! (`…/event-types`).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::super::error::ConsoleResult;
use super::super::layout::{Chrome, badge, page, time};
use super::{Signed, site_of, site_path};
use crate::api::AppState;

/// `GET /console/sites/{site}/event-types`: the site's catalog by name.
pub async fn list(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(site_id): Path<String>,
) -> ConsoleResult<Response> {
    let site = site_of(&state, &session, &site_id).await?;
    let entries = state.service.event_types(&site).await?;
    let base = site_path(site.id);
    let body = html! {
        p class="crumbs" {
            @if session.portal_site().is_none() { a href="/console/" { "Sites" } " › " }
            a href=(base) { (site.name) } " › Event types"
        }
        h1 { "Event types of " (site.name) }
        p {
            @if site.strict_event_types {
                (badge("healthy", "✓", "strict")) " Webhooks may only subscribe to, and events only use, these types."
            } @else {
                "Not strict: events of other types are accepted too. Types with a schema are checked at ingest."
            }
        }
        @if entries.is_empty() {
            p { "No event type catalogued yet (PUT /v1/sites/" (site.id) "/event-types/{name})." }
        } @else {
            div class="table-wrap" {
                table {
                    caption class="skip" { "Catalogued event types" }
                    thead {
                        tr {
                            th scope="col" { "Type" }
                            th scope="col" { "Description" }
                            th scope="col" { "Schema" }
                            th scope="col" { "Updated" }
                        }
                    }
                    tbody {
                        @for entry in &entries {
                            tr {
                                td { code { (entry.name) } }
                                td class="wrap" { (entry.description) }
                                td class="wrap" {
                                    @match &entry.schema {
                                        Some(schema) => details {
                                            summary { "checked" }
                                            pre { code { (pretty(schema.as_str())) } }
                                        },
                                        None => span class="hint" { "none" },
                                    }
                                    @if let Some(example) = &entry.example {
                                        details {
                                            summary { "example" }
                                            pre { code { (pretty(example)) } }
                                        }
                                    }
                                }
                                td { (time(entry.updated_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&Chrome::of(&session), &site.name, body).into_response())
}

/// Stored compact JSON, indented for reading.
fn pretty(compact: &str) -> String {
    serde_json::from_str::<serde_json::Value>(compact)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| compact.to_owned())
}
