//! The console: an operator dashboard at `/console/` (signed in with the admin token)
//! and, through portal links, the same pages scoped to one site for a platform's
//! customer.
//!
//! Server-rendered HTML (maud: compile-time templates that escape every value they
//! print), one small script for what HTML cannot do (live counters), one style sheet;
//! both are embedded in the binary ([`assets`]), so `cargo build` makes the whole
//! console and it works offline. Every page calls the use cases of
//! [`crate::service`], as the API does; nothing here reads the store for what a use case
//! does.
//!
//! Security lives in three places: [`session`] (a sealed, expiring cookie that every
//! node sharing the main key can open, so nodes need no shared session table), [`csrf`]
//! (a per-session token in every form and an origin check on every post), and
//! [`headers`] (the Content-Security-Policy and friends). Portal sessions carry their
//! site, and [`pages`] resolve every site from the session: another site's ids answer
//! 404, as ids that do not exist do.

use std::net::SocketAddr;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::response::Redirect;
use axum::routing::{get, post};

use crate::api::AppState;
use crate::crypto::MainKey;

pub mod assets;
pub mod csrf;
pub mod error;
pub mod headers;
pub mod layout;
pub mod pages;
pub mod session;

/// The console's settings (`fullup serve --public-url`, `--portal-frame-ancestors`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// The URL people reach this service at, such as `https://hooks.example.com`:
    /// portal links are built on it, and when it is https the session cookie is
    /// `Secure`. Default: `http://` + the listen address.
    pub public_url: Option<url::Url>,
    /// The sources that may frame portal pages (the CSP `frame-ancestors` of portal
    /// pages), such as `https://app.example.com`; empty: none may. The operator
    /// dashboard is never framable.
    pub portal_frame_ancestors: Vec<String>,
}

/// Why a `--portal-frame-ancestors` value was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "portal frame ancestor {0:?} is not a CSP source: give an origin such as https://app.example.com, a host such as *.example.com, or 'self'"
)]
pub struct BadFrameAncestor(pub String);

/// Checks a `frame-ancestors` source: an origin, a host with an optional `*.`, or
/// `'self'`; nothing that could end the directive or add another.
pub fn parse_frame_ancestor(source: &str) -> Result<String, BadFrameAncestor> {
    let source = source.trim();
    let plain = source.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'.' | b'-' | b'*' | b'[' | b']')
    });
    if source == "'self'" || (!source.is_empty() && plain && !source.ends_with("//")) {
        Ok(source.to_owned())
    } else {
        Err(BadFrameAncestor(source.to_owned()))
    }
}

/// The console's state in [`AppState`]: its settings and the key its cookies are
/// sealed with.
#[derive(Clone)]
pub struct Console {
    /// The public URL (given, or `http://` + the listen address), without a trailing `/`.
    pub public_url: String,
    /// Whether cookies get `Secure` (the public URL is https).
    pub secure: bool,
    /// The CSP `frame-ancestors` value of portal pages (`'none'` by default).
    pub portal_frame_ancestors: String,
    /// Whether portal pages may be framed by another site (then the portal's cookie
    /// must be `SameSite=None; Partitioned`, which needs `Secure`).
    pub portal_framed: bool,
    /// Seals session cookies: derived from the main key and the admin token's hash,
    /// so every node opens every node's cookies, and changing the admin token ends
    /// every session.
    key: MainKey,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("public_url", &self.public_url)
            .field("secure", &self.secure)
            .field("portal_frame_ancestors", &self.portal_frame_ancestors)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// The console of a service with `config`, its main key and admin token hash,
    /// listening on `listen`.
    pub fn new(
        config: &ConsoleConfig,
        main_key: &MainKey,
        admin_token_hash: &[u8; 32],
        listen: SocketAddr,
    ) -> Self {
        let public_url = config.public_url.as_ref().map_or_else(
            || format!("http://{listen}"),
            |u| u.as_str().trim_end_matches('/').to_owned(),
        );
        let secure = public_url.starts_with("https://");
        let mut purpose = b"fullup console session v1\0".to_vec();
        purpose.extend_from_slice(admin_token_hash);
        let portal_framed = !config.portal_frame_ancestors.is_empty() && secure;
        Self {
            public_url,
            secure,
            portal_frame_ancestors: if config.portal_frame_ancestors.is_empty() {
                "'none'".to_owned()
            } else {
                config.portal_frame_ancestors.join(" ")
            },
            portal_framed,
            key: main_key.derive(&purpose),
        }
    }

    /// The key session cookies are sealed with.
    pub(crate) fn key(&self) -> &MainKey {
        &self.key
    }

    /// The URL of the portal link carrying `token`.
    pub fn portal_url(&self, token: &str) -> String {
        format!("{}/console/portal/{token}", self.public_url)
    }
}

/// The console's routes, to merge into the API's router: `/` leads to `/console/`.
pub fn router(state: AppState) -> Router<AppState> {
    use pages::{auth, deliveries, event_types, sites, webhooks};
    const WH: &str = "/console/sites/{site_id}/webhooks/{webhook_id}";
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(sites::home))
        .route(
            "/console/sign-in",
            get(auth::sign_in_page).post(auth::sign_in),
        )
        .route("/console/sign-out", post(auth::sign_out))
        .route(
            "/console/portal/{token}",
            get(auth::portal_landing).post(auth::portal_open),
        )
        .route("/console/assets/{name}", get(assets::serve))
        .route("/console/sites/{site_id}", get(sites::site))
        .route("/console/sites/{site_id}/live", get(sites::live))
        .route(
            "/console/sites/{site_id}/event-types",
            get(event_types::list),
        )
        .route(
            "/console/sites/{site_id}/portal-link",
            post(sites::portal_link),
        )
        .route("/console/sites/{site_id}/webhooks", post(webhooks::create))
        .route(
            "/console/sites/{site_id}/webhooks/new",
            get(webhooks::new_page),
        )
        .route(WH, get(webhooks::show))
        .route(
            &format!("{WH}/edit"),
            get(webhooks::edit_page).post(webhooks::edit),
        )
        .route(&format!("{WH}/switch"), post(webhooks::switch))
        .route(
            &format!("{WH}/delete"),
            get(webhooks::delete_page).post(webhooks::delete),
        )
        .route(&format!("{WH}/secret"), post(webhooks::reveal_secret))
        .route(&format!("{WH}/rotate"), post(webhooks::rotate))
        .route(&format!("{WH}/test"), post(webhooks::test))
        .route(&format!("{WH}/recover"), post(webhooks::recover))
        .route(
            &format!("{WH}/recover-progress"),
            get(webhooks::recover_progress),
        )
        .route("/console/sites/{site_id}/deliveries", get(deliveries::list))
        .route(
            "/console/sites/{site_id}/deliveries/{delivery_id}",
            get(deliveries::show),
        )
        .route(
            "/console/sites/{site_id}/deliveries/{delivery_id}/retry",
            post(deliveries::retry),
        )
        .layer(from_fn_with_state(state, headers::console_layer))
}

/// The console's 404 page for a path under `/console/` that no route serves, with the
/// console's headers.
pub async fn not_found(
    state: AppState,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let router: Router = Router::new()
        .fallback(|| async { error::ConsoleError::NotFound("this page".to_owned()) })
        .layer(from_fn_with_state(state.clone(), headers::console_layer))
        .with_state(state);
    match tower::ServiceExt::oneshot(router, request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
    .into_response()
}

/// Whether `path` is the console's, for the fallback to answer it with an HTML page.
pub fn is_console_path(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

#[cfg(test)]
mod tests {
    use super::parse_frame_ancestor;

    #[test]
    fn frame_ancestors_are_sources_and_nothing_that_adds_a_directive() {
        for ok in [
            "https://app.example.com",
            "*.example.com",
            "'self'",
            "https://a.example:8443",
        ] {
            assert_eq!(parse_frame_ancestor(ok).ok().as_deref(), Some(ok));
        }
        for bad in [
            "",
            "https://a.example; script-src *",
            "'unsafe-inline'",
            "a b",
            "https://",
        ] {
            assert!(parse_frame_ancestor(bad).is_err(), "{bad}");
        }
    }
}
