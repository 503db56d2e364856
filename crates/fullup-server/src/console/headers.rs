//! The layer around every console route: opens the session cookie once (handlers and
//! extractors read it from the request), and sets the security headers on every answer.
//!
//! The Content-Security-Policy allows only this origin's own script and style sheet
//! (no inline script, no `eval`), so an escaped value that somehow became markup still
//! could not run. Pages are never cached (they show secrets and customer data), never
//! leak a referrer, and are never framed, except portal pages by the sources of
//! `--portal-frame-ancestors`.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::middleware::Next;
use axum::response::Response;

use super::session::Session;
use crate::api::AppState;

/// The request's session, if its cookie opened: put in the request's extensions by
/// [`console_layer`].
#[derive(Debug, Clone)]
pub struct CurrentSession(pub Option<Session>);

/// Marks an answer as a portal page (framable by `--portal-frame-ancestors`) although
/// the request had no portal session yet: the portal link's landing page.
#[derive(Debug, Clone, Copy)]
pub struct PortalPage;

/// The policy of every console page but the `frame-ancestors` directive.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'";

/// Opens the session, runs the handler, and sets the security headers.
pub async fn console_layer(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let now = state.service.now();
    let session = Session::from_headers(&state.console, request.headers(), now);
    let portal = session.as_ref().is_some_and(|s| s.portal_site().is_some());
    request.extensions_mut().insert(CurrentSession(session));
    let is_asset = request.uri().path().starts_with("/console/assets/");
    let mut response = next.run(request).await;
    let portal = portal || response.extensions().get::<PortalPage>().is_some();
    let ancestors = if portal {
        state.console.portal_frame_ancestors.as_str()
    } else {
        "'none'"
    };
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&format!("{CSP}; frame-ancestors {ancestors}")) {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !portal {
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if !is_asset {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
