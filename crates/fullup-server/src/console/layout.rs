//! The frame every console page shares (header, navigation, sign-out form) and the small
//! pieces pages repeat: a state badge that says its state in words and a symbol as well
//! as colour, a hidden CSRF field, a time.
//!
//! Everything goes through maud, which escapes every value it prints; no page builds
//! markup from strings, and no value is ever used as a link target but ids the service
//! made.

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

use super::assets::{css_path, js_path};
use super::session::Session;
use crate::domain::models::DeliveryState;
use crate::domain::time::Timestamp;

/// What the header shows: the session's scope and its sign-out form, or nothing.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The session, when signed in.
    pub session: Option<Session>,
}

impl Chrome {
    /// The frame of a page without a session (sign-in, errors).
    pub fn bare() -> Self {
        Self::default()
    }

    /// The frame of a signed-in page.
    pub fn of(session: &Session) -> Self {
        Self {
            session: Some(session.clone()),
        }
    }
}

/// A whole page: `title` in the tab and `content` in `main`.
pub fn page(chrome: &Chrome, title: &str, content: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · fullup console" }
                link rel="stylesheet" href=(css_path());
                script src=(js_path()) defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/console/" { "fullup console" }
                    @if let Some(session) = &chrome.session {
                        nav aria-label="Main" {
                            ul {
                                @match session.portal_site() {
                                    None => li { a href="/console/" { "Sites" } },
                                    Some(site) => {
                                        li { a href={ "/console/sites/" (site) } { "Webhooks" } }
                                        li { a href={ "/console/sites/" (site) "/deliveries" } { "Deliveries" } }
                                    }
                                }
                            }
                        }
                        span class="who" {
                            @if session.portal_site().is_some() { "Portal" } @else { "Operator" }
                        }
                        form method="post" action="/console/sign-out" {
                            (csrf_field(session))
                            button type="submit" class="secondary" { "Sign out" }
                        }
                    }
                }
                main id="main" { (content) }
            }
        }
    };
    Html(markup.into_string())
}

/// The hidden field carrying the session's CSRF token.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A delivery state as a badge: a symbol and the word, coloured.
pub fn delivery_badge(state: DeliveryState) -> Markup {
    let symbol = match state {
        DeliveryState::Succeeded => "✓",
        DeliveryState::Failed => "✗",
        DeliveryState::Pending => "…",
        DeliveryState::Cancelled => "–",
    };
    badge(state.as_str(), symbol, state.as_str())
}

/// A badge of class `state-{class}` saying `symbol text`.
pub fn badge(class: &str, symbol: &str, text: &str) -> Markup {
    html! {
        span class={ "state state-" (class) } {
            span aria-hidden="true" { (symbol) " " }
            (text)
        }
    }
}

/// A time as RFC 3339 (UTC, seconds), in a `time` element.
pub fn time(at: Timestamp) -> Markup {
    let text = at.to_rfc3339_secs();
    html! { time datetime=(text) { (text) } }
}
