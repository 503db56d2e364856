//! Cross-site request forgery: every form the console serves carries its session's
//! token in a hidden `csrf` field, and every post is refused unless that field matches
//! (compared in constant time) and the browser says the post came from this origin.
//!
//! Two checks, so that one failing is not enough: the token stops a forged form from
//! any origin that cannot read our pages; the origin check (`Sec-Fetch-Site`, else
//! `Origin`) stops a post from another site even if a token leaked. The session cookie
//! is `SameSite=Strict` besides. The sign-in form has the same protection with a token
//! bound to a short cookie of its own, so nobody can sign a browser into their session.

use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq as _;

use super::error::ConsoleError;
use super::headers::CurrentSession;
use super::session::Session;
use crate::api::AppState;

/// Name of the hidden field holding the token.
pub const CSRF_FIELD: &str = "csrf";

/// A posted form of a signed-in session whose token and origin were checked, with
/// the session it was posted in.
#[derive(Debug)]
pub struct Posted<T> {
    /// The session.
    pub session: Session,
    /// The form's other fields.
    pub form: T,
}

#[derive(Deserialize)]
struct TokenField {
    csrf: Option<String>,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Posted<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ConsoleError> {
        let session = request
            .extensions()
            .get::<CurrentSession>()
            .and_then(|s| s.0.clone())
            .ok_or(ConsoleError::SignIn)?;
        same_origin(request.headers(), &state.console.public_url)?;
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|_| ConsoleError::BadRequest("the form could not be read".to_owned()))?;
        let token: TokenField = serde_urlencoded::from_bytes(&body)
            .map_err(|_| ConsoleError::BadRequest("the form could not be read".to_owned()))?;
        check_token(token.csrf.as_deref(), &session.csrf)?;
        let form = serde_urlencoded::from_bytes(&body)
            .map_err(|e| ConsoleError::BadRequest(format!("the form is not valid: {e}")))?;
        Ok(Self { session, form })
    }
}

/// Refuses a form whose token is missing or differs from `expected`.
pub fn check_token(got: Option<&str>, expected: &str) -> Result<(), ConsoleError> {
    let got = got.unwrap_or_default();
    if !got.is_empty() && bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ConsoleError::Forbidden(
            "this form is out of date or was not sent from the console (its security token does not match); reload the page and try again",
        ))
    }
}

/// Refuses a post that the browser says came from another site: `Sec-Fetch-Site` other
/// than `same-origin`, else an `Origin` that is neither the public URL's nor the
/// request's own host. A client that sends neither (not a browser) still needs the token.
pub fn same_origin(headers: &HeaderMap, public_url: &str) -> Result<(), ConsoleError> {
    let refused = || {
        ConsoleError::Forbidden(
            "this form was posted from another site; open the console and post it from there",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        return if site.as_bytes() == b"same-origin" {
            Ok(())
        } else {
            Err(refused())
        };
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| refused())?;
    if origin == public_url {
        return Ok(());
    }
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (authority, host) {
        (Some(authority), Some(host)) if authority == host => Ok(()),
        _ => Err(refused()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const PUBLIC: &str = "https://hooks.example.com";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn posts_from_this_origin_pass_and_from_others_are_refused() {
        let ok = [
            headers(&[("sec-fetch-site", "same-origin")]),
            headers(&[("origin", PUBLIC)]),
            headers(&[
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080"),
            ]),
            headers(&[]),
        ];
        for h in ok {
            assert!(same_origin(&h, PUBLIC).is_ok(), "{h:?}");
        }
        let refused = [
            headers(&[("sec-fetch-site", "cross-site"), ("origin", PUBLIC)]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[
                ("origin", "https://evil.example"),
                ("host", "hooks.example.com"),
            ]),
            headers(&[("origin", "null"), ("host", "hooks.example.com")]),
        ];
        for h in refused {
            assert!(same_origin(&h, PUBLIC).is_err(), "{h:?}");
        }
    }

    #[test]
    fn a_form_token_must_be_present_and_equal() {
        assert!(check_token(Some("abc"), "abc").is_ok());
        assert!(check_token(Some("abd"), "abc").is_err());
        assert!(
            check_token(Some(""), "").is_err(),
            "an empty token never passes"
        );
        assert!(check_token(None, "abc").is_err());
    }
}
