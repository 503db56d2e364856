//! The console's pages, one module per family, each handler parsing its input, calling
//! the use cases of [`crate::service`] and rendering the answer.
//!
//! Scoping happens here, once: [`site_of`] resolves the site a URL names against the
//! session. A portal session reaches its own site only; any other site id answers 404,
//! exactly as an id that does not exist, and every webhook and delivery is then looked
//! up within the resolved site, so another site's webhook or delivery id is 404 too.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::{ConsoleError, ConsoleResult};
use super::headers::CurrentSession;
use super::session::Session;
use crate::api::AppState;
use crate::domain::ids::SiteId;
use crate::domain::models::Site;

pub mod auth;
pub mod deliveries;
pub mod event_types;
pub mod sites;
pub mod webhooks;

/// Page size of every console list.
pub const PAGE_SIZE: u32 = 25;

/// The signed-in session of a request; without one, the request is sent to sign in.
#[derive(Debug, Clone)]
pub struct Signed(pub Session);

impl FromRequestParts<AppState> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ConsoleError> {
        parts
            .extensions
            .get::<CurrentSession>()
            .and_then(|s| s.0.clone())
            .map(Self)
            .ok_or(ConsoleError::SignIn)
    }
}

/// The site `raw` names, if `session` may see it: the admin any site, a portal session
/// its own only (another is "does not exist").
pub async fn site_of(state: &AppState, session: &Session, raw: &str) -> ConsoleResult<Site> {
    let missing = || ConsoleError::NotFound(format!("site {raw}"));
    let id = SiteId::parse(raw).map_err(|_| missing())?;
    if session.portal_site().is_some_and(|own| own != id) {
        return Err(missing());
    }
    state.service.site(id).await.map_err(ConsoleError::from)
}

/// Parses an id from a path, answering 404 when it cannot be one.
pub fn path_id<T, E>(raw: &str, what: &str, parse: fn(&str) -> Result<T, E>) -> ConsoleResult<T> {
    parse(raw).map_err(|_| ConsoleError::NotFound(format!("{what} {raw}")))
}

/// The console's path of `site`.
pub fn site_path(site: SiteId) -> String {
    format!("/console/sites/{site}")
}

/// Empty form fields count as absent.
pub fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}
