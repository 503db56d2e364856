//! Who is calling: the admin (every site) or a site's API key (that site only).
//!
//! Tokens are compared by their SHA-256: the admin token's hash lives in memory, API
//! keys are looked up by hash, and no token is ever stored in clear. A key used on
//! another site's path gets 404, as if the site did not exist, so keys cannot probe
//! for other tenants.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::crypto::hash_token;
use crate::domain::ids::{ApiKeyId, SiteId};
use crate::service::sites::API_KEY_PREFIX;

/// Prefix of generated admin tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "fadm_";

/// The authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The admin token: every route, every site.
    Admin,
    /// A site API key: only that site's routes.
    Site(SiteId),
}

impl Caller {
    /// Allows the admin and the site's own keys; another site's key gets 404.
    pub fn require_site(self, site: SiteId) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::Site(own) if own == site => Ok(()),
            Self::Site(_) => Err(ApiError::not_found(format!("site {site}"))),
        }
    }

    /// Allows only the admin (creating sites, API keys).
    pub fn require_admin(self) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::Site(_) => Err(ApiError::forbidden(
                "this route needs the admin token; a site API key cannot use it",
            )),
        }
    }
}

/// Which credential a request used: what the ingest rate limit counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// The admin token.
    Admin,
    /// A site API key.
    ApiKey(ApiKeyId),
}

/// The outcome of authentication, kept in the request's extensions so that a layer
/// (the rate limiter) and the handler check the token once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    /// What the caller may reach.
    pub caller: Caller,
    /// The credential it presented.
    pub credential: Credential,
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(known) = parts.extensions.get::<Self>() {
            return Ok(*known);
        }
        let auth = authenticate(parts, state).await?;
        parts.extensions.insert(auth);
        Ok(auth)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Authenticated::from_request_parts(parts, state)
            .await?
            .caller)
    }
}

/// Checks the bearer token. Messages never repeat the token: it may be a real secret
/// sent to the wrong place.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Authenticated, ApiError> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>` header"))?;
    // The scheme is case-insensitive (RFC 7235 §2.1): `bearer x` is as good as `Bearer x`.
    let token = header
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("`Authorization` must be `Bearer <token>`"))?;
    let hash = hash_token(token);
    if bool::from(hash.ct_eq(&state.admin_token_hash)) {
        return Ok(Authenticated {
            caller: Caller::Admin,
            credential: Credential::Admin,
        });
    }
    if token.starts_with(API_KEY_PREFIX)
        && let Some(key) = state.service.store().find_api_key(&hash).await?
    {
        return Ok(Authenticated {
            caller: Caller::Site(key.site_id),
            credential: Credential::ApiKey(key.id),
        });
    }
    Err(ApiError::unauthorized("the token is not valid"))
}
