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

    /// Who this session is, for audit lines.
    pub fn actor(&self) -> crate::service::Actor {
        match self.scope {
            Scope::Admin => crate::service::Actor::ConsoleAdmin,
            Scope::Portal { site } => crate::service::Actor::Portal(site),
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::http::HeaderValue;

    use super::*;
    use crate::console::ConsoleConfig;
    use crate::crypto::MainKey;

    const LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        8080,
    ));
    const NOW: Timestamp = Timestamp::from_unix_ms(1_800_000_000_000);

    fn console(key: &MainKey, admin_hash: [u8; 32]) -> Console {
        Console::new(&ConsoleConfig::default(), key, &admin_hash, LISTEN)
    }

    /// The request headers a browser sends back for `set_cookie`.
    fn sent(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap_or_default();
        let mut headers = HeaderMap::new();
        let value = format!("other=1; {pair}");
        headers.insert(COOKIE, HeaderValue::from_str(&value).expect("ASCII"));
        headers
    }

    #[test]
    fn a_session_opens_on_every_node_with_the_same_keys_until_it_expires() {
        let key = MainKey::generate();
        let one = console(&key, [1; 32]);
        let session = Session::new(
            Scope::Portal {
                site: crate::domain::ids::SiteId::new(NOW),
            },
            NOW,
        );
        let cookie = session.set_cookie(&one);
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        assert!(!cookie.contains("Secure"), "an http public URL: {cookie}");
        let other_node = console(&key, [1; 32]);
        assert_eq!(
            Session::from_headers(&other_node, &sent(&cookie), NOW),
            Some(session.clone())
        );
        let later = NOW + SESSION_TTL;
        assert_eq!(
            Session::from_headers(&other_node, &sent(&cookie), later),
            None,
            "expired"
        );
    }

    #[test]
    fn a_session_does_not_open_under_another_key_admin_token_or_purpose_or_altered() {
        let key = MainKey::generate();
        let console_a = console(&key, [1; 32]);
        let cookie = Session::new(Scope::Admin, NOW).set_cookie(&console_a);
        let headers = sent(&cookie);
        assert_eq!(
            Session::from_headers(&console(&key, [2; 32]), &headers, NOW),
            None,
            "another admin token"
        );
        assert_eq!(
            Session::from_headers(&console(&MainKey::generate(), [1; 32]), &headers, NOW),
            None,
            "another main key"
        );
        let value = cookie.split(';').next().expect("pair").to_owned();
        let flipped = value.replace('A', "B").replace('a', "A");
        assert_ne!(flipped, value);
        assert_eq!(
            Session::from_headers(&console_a, &sent(&flipped), NOW),
            None,
            "altered"
        );
        // A sign-in form's cookie is sealed for another purpose: it is no session.
        let form =
            SignIn::new(NOW)
                .set_cookie(&console_a)
                .replacen(SIGN_IN_COOKIE, SESSION_COOKIE, 1);
        assert_eq!(Session::from_headers(&console_a, &sent(&form), NOW), None);
    }

    #[test]
    fn an_https_public_url_makes_cookies_secure_and_a_framed_portal_partitioned() {
        let key = MainKey::generate();
        let config = ConsoleConfig {
            public_url: Some(url::Url::parse("https://hooks.example.com/").expect("url")),
            portal_frame_ancestors: vec!["https://app.example.com".to_owned()],
        };
        let console = Console::new(&config, &key, &[0; 32], LISTEN);
        assert_eq!(
            console.portal_url("fpl_x"),
            "https://hooks.example.com/console/portal/fpl_x"
        );
        let admin = Session::new(Scope::Admin, NOW).set_cookie(&console);
        assert!(admin.contains("SameSite=Strict; Secure"), "{admin}");
        let site = crate::domain::ids::SiteId::new(NOW);
        let portal = Session::new(Scope::Portal { site }, NOW).set_cookie(&console);
        assert!(
            portal.contains("SameSite=None; Secure; Partitioned"),
            "{portal}"
        );
    }
}
