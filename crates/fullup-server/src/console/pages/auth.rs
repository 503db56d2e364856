//! Signing in (with the admin token), signing out, and opening a portal link.
//!
//! A portal link's token is taken by a post from the link's own landing page, never by
//! the `GET` of the link: a link previewer or a mail scanner fetching the URL must not
//! use up the customer's one-time link.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::super::csrf::{Posted, check_token, same_origin};
use super::super::error::{ConsoleError, ConsoleResult};
use super::super::headers::{CurrentSession, PortalPage};
use super::super::layout::{Chrome, page};
use super::super::session::{SESSION_COOKIE, SIGN_IN_COOKIE, Scope, Session, SignIn, clear_cookie};
use super::site_path;
use crate::api::AppState;
use crate::api::auth::ClientAddress;
use crate::service::ServiceError;

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    /// The form's CSRF token.
    pub csrf: Option<String>,
    /// The admin token.
    pub token: String,
}

/// A form of nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// `GET /console/sign-in`: the form, bound to this browser by a short cookie.
pub async fn sign_in_page(
    State(state): State<AppState>,
    axum::Extension(current): axum::Extension<CurrentSession>,
) -> Response {
    if current.0.is_some_and(|s| s.scope == Scope::Admin) {
        return Redirect::to("/console/").into_response();
    }
    sign_in_form(&state, StatusCode::OK, None)
}

fn sign_in_form(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let form = SignIn::new(state.service.now());
    let body = page(
        &Chrome::bare(),
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(error) = error {
                p class="notice error" role="alert" { (error) }
            }
            form method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(form.csrf);
                label for="token" {
                    "Admin token"
                    span class="hint" { "The token fullup serve printed on its first start, or FULLUP_ADMIN_TOKEN." }
                }
                input id="token" type="password" name="token" autocomplete="current-password" required autofocus;
                p { button type="submit" { "Sign in" } }
            }
        },
    );
    (
        status,
        AppendHeaders([(SET_COOKIE, form.set_cookie(&state.console))]),
        body,
    )
        .into_response()
}

/// `POST /console/sign-in`: checks the form's origin and token, then the admin token;
/// failures count against the client address like the API's ([`crate::api::throttle`]).
pub async fn sign_in(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> ConsoleResult<Response> {
    same_origin(&headers, &state.console.public_url)?;
    let now = state.service.now();
    let instant = tokio::time::Instant::now();
    if state.throttle.blocked(client, instant).is_some() {
        return Ok(sign_in_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed sign-ins from this address; wait a minute and try again."),
        ));
    }
    let expected =
        SignIn::from_headers(&state.console, &headers, now).ok_or(ConsoleError::Forbidden(
            "the sign-in form expired or was not sent from the console; reload it and try again",
        ))?;
    check_token(form.csrf.as_deref(), &expected.csrf)?;
    let hash = state.service.token_hash(form.token.trim());
    if !bool::from(hash.ct_eq(&state.admin_token_hash)) {
        state.throttle.failed(client, instant);
        return Ok(sign_in_form(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token."),
        ));
    }
    let session = Session::new(Scope::Admin, now);
    Ok((
        AppendHeaders([
            (SET_COOKIE, session.set_cookie(&state.console)),
            (SET_COOKIE, clear_cookie(&state.console, SIGN_IN_COOKIE)),
        ]),
        Redirect::to("/console/"),
    )
        .into_response())
}

/// `POST /console/sign-out`: forgets the session cookie.
pub async fn sign_out(State(state): State<AppState>, posted: Posted<Empty>) -> Response {
    let cookie = clear_cookie(&state.console, SESSION_COOKIE);
    if posted.session.portal_site().is_some() {
        let body = page(
            &Chrome::bare(),
            "Signed out",
            html! {
                h1 { "Signed out" }
                p { "Open a new portal link from your platform to come back." }
            },
        );
        return (
            AppendHeaders([(SET_COOKIE, cookie)]),
            axum::Extension(PortalPage),
            body,
        )
            .into_response();
    }
    (
        AppendHeaders([(SET_COOKIE, cookie)]),
        Redirect::to("/console/sign-in"),
    )
        .into_response()
}

/// `GET /console/portal/{token}`: a page with one button that opens the portal. The
/// token is not taken here.
pub async fn portal_landing(Path(token): Path<String>) -> Response {
    let body = page(
        &Chrome::bare(),
        "Webhook portal",
        html! {
            h1 { "Webhook portal" }
            p { "This link opens your webhooks and deliveries. It works once and for a few minutes." }
            form method="post" action={ "/console/portal/" (token) } {
                button type="submit" { "Open the portal" }
            }
        },
    );
    (axum::Extension(PortalPage), body).into_response()
}

/// `POST /console/portal/{token}`: takes the one-time token and starts a session
/// scoped to its site.
pub async fn portal_open(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> ConsoleResult<Response> {
    same_origin(&headers, &state.console.public_url)?;
    let site = state
        .service
        .take_portal_token(&token)
        .await
        .map_err(|e| match e {
            ServiceError::NotFound(_) => ConsoleError::NotFound(
                "this portal link (it expired or was already used; ask for a new one)".to_owned(),
            ),
            other => other.into(),
        })?;
    let session = Session::new(Scope::Portal { site: site.id }, state.service.now());
    Ok((
        AppendHeaders([(SET_COOKIE, session.set_cookie(&state.console))]),
        axum::Extension(PortalPage),
        Redirect::to(&site_path(site.id)),
    )
        .into_response())
}
