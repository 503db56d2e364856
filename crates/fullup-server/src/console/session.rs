//! Console sessions: a cookie sealed (AES-256-GCM) under a key derived from the main
//! key, holding who signed in (the admin, or a portal of one site), the session's CSRF
//! token and its expiry.
//!
//! Stateless on purpose: every node sharing the database has the main key, so every
//! node opens every node's cookies without a session table or a coordinator. The cost
//! is that signing out clears the cookie but cannot revoke a copy of it before it
//! expires; changing the admin token ends every session (the key is derived from its
//! hash too). The cookie is `HttpOnly` and `SameSite=Strict` (`Secure` under an https
//! public URL); a portal that may be framed by the platform's site gets
//! `SameSite=None; Secure; Partitioned` instead, since a strict cookie is never sent
//! inside another site's frame.

use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::Console;
use crate::domain::ids::SiteId;
use crate::domain::time::Timestamp;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "fullup_console";
/// Name of the short cookie that protects the sign-in form against login CSRF.
pub const SIGN_IN_COOKIE: &str = "fullup_console_sign_in";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// How long a sign-in form stays usable.
pub const SIGN_IN_TTL: Duration = Duration::from_secs(60 * 60);

/// Associated data of sealed session cookies, so no other sealed value opens as one.
const SESSION_CONTEXT: &[u8] = b"fullup console session";
/// Associated data of sealed sign-in cookies.
const SIGN_IN_CONTEXT: &[u8] = b"fullup console sign-in";

/// Who a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// Signed in with the admin token: every site.
    Admin,
    /// Opened from a portal link: this site only.
    Portal {
        /// The one site this session may see.
        site: SiteId,
    },
}

/// A signed-in session, as its cookie holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Who it is for.
    pub scope: Scope,
    /// The token every form of this session carries (URL-safe base64 of 32 bytes).
    pub csrf: String,
    /// Unix milliseconds after which the cookie is refused.
    pub expires_ms: i64,
}

/// The sign-in form's own CSRF token, bound to the browser by a cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    /// The token the sign-in form carries.
    pub csrf: String,
    /// Unix milliseconds after which the form is refused.
    pub expires_ms: i64,
}

/// A new random CSRF token.
pub fn new_csrf() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Session {
    /// A new session for `scope`, starting at `now`.
    pub fn new(scope: Scope, now: Timestamp) -> Self {
        Self {
            scope,
            csrf: new_csrf(),
            expires_ms: (now + SESSION_TTL).unix_ms(),
        }
    }

    /// The site a portal session is scoped to; None for the admin.
    pub fn portal_site(&self) -> Option<SiteId> {
        match self.scope {
            Scope::Admin => None,
            Scope::Portal { site } => Some(site),
        }
    }

    /// The `Set-Cookie` value that stores this session.
    pub fn set_cookie(&self, console: &Console) -> String {
        let sealed = seal(console, self, SESSION_CONTEXT);
        let framed = console.portal_framed && self.portal_site().is_some();
        cookie(console, SESSION_COOKIE, &sealed, SESSION_TTL, framed)
    }

    /// The session in `headers`' cookie, if one opens and has not expired at `now`.
    pub fn from_headers(console: &Console, headers: &HeaderMap, now: Timestamp) -> Option<Self> {
        let session: Self = open(
            console,
            cookie_value(headers, SESSION_COOKIE)?,
            SESSION_CONTEXT,
        )?;
        (session.expires_ms > now.unix_ms()).then_some(session)
    }
}

impl SignIn {
    /// A new sign-in form token, starting at `now`.
    pub fn new(now: Timestamp) -> Self {
        Self {
            csrf: new_csrf(),
            expires_ms: (now + SIGN_IN_TTL).unix_ms(),
        }
    }

    /// The `Set-Cookie` value binding this form to the browser.
    pub fn set_cookie(&self, console: &Console) -> String {
        let sealed = seal(console, self, SIGN_IN_CONTEXT);
        cookie(console, SIGN_IN_COOKIE, &sealed, SIGN_IN_TTL, false)
    }

    /// The sign-in cookie in `headers`, if it opens and has not expired at `now`.
    pub fn from_headers(console: &Console, headers: &HeaderMap, now: Timestamp) -> Option<Self> {
        let form: Self = open(
            console,
            cookie_value(headers, SIGN_IN_COOKIE)?,
            SIGN_IN_CONTEXT,
        )?;
        (form.expires_ms > now.unix_ms()).then_some(form)
    }
}

/// The `Set-Cookie` value that removes the session cookie (and the sign-in one).
pub fn clear_cookie(console: &Console, name: &str) -> String {
    cookie(console, name, "", Duration::ZERO, false)
}

fn seal<T: Serialize>(console: &Console, value: &T, context: &[u8]) -> String {
    // Serializing these plain structs cannot fail.
    let json = serde_json::to_vec(value).unwrap_or_default();
    console.key().seal(&json, context)
}

fn open<T: for<'de> Deserialize<'de>>(
    console: &Console,
    sealed: &str,
    context: &[u8],
) -> Option<T> {
    let json = console.key().open(sealed, context).ok()?;
    serde_json::from_slice(&json).ok()
}

fn cookie(console: &Console, name: &str, value: &str, max_age: Duration, framed: bool) -> String {
    let mut cookie = format!(
        "{name}={value}; Path=/console; HttpOnly; Max-Age={}",
        max_age.as_secs()
    );
    if framed {
        cookie.push_str("; SameSite=None; Secure; Partitioned");
    } else {
        cookie.push_str("; SameSite=Strict");
        if console.secure {
            cookie.push_str("; Secure");
        }
    }
    cookie
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
