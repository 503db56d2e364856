//! Who is calling: the admin (every site) or a site's API key (that site only, within
//! its scopes).
//!
//! Tokens are compared by their keyed hash ([`crate::tokens`]): the admin token's hash
//! lives in memory, API keys are looked up by hash, and no token is ever stored in
//! clear. A key used on another site's path gets 404, as if the site did not exist, so
//! keys cannot probe for other tenants; a key on its own site without the scope a route
//! needs gets 403 `insufficient_scope`. Failed authentications are throttled per client
//! address ([`super::throttle`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::domain::ids::{ApiKeyId, SiteId};
use crate::domain::models::{Scope, Scopes};
use crate::service::Actor;
use crate::service::sites::{API_KEY_PREFIX, KeyLookup};

/// Prefix of generated admin tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "fadm_";

/// The authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// The admin token: every route, every site.
    Admin,
    /// A site API key: only that site's routes its scopes allow.
    Site {
        /// The one site it may reach.
        site: SiteId,
        /// The key, named in audit lines.
        key: ApiKeyId,
        /// What it may do there.
        scopes: Scopes,
    },
}

impl Caller {
    /// Allows the admin, and the site's own keys holding `needed` (or `manage`).
    /// Another site's key gets 404, whatever its scopes; the site's own key without
    /// the scope gets 403 `insufficient_scope`.
    pub fn require_site(self, site: SiteId, needed: Scope) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::Site { site: own, .. } if own != site => {
                Err(ApiError::not_found(format!("site {site}")))
            }
            Self::Site { scopes, .. } if scopes.allow(needed) => Ok(()),
            Self::Site { scopes, .. } => Err(insufficient_scope(needed, scopes)),
        }
    }

    /// Allows only the admin (creating sites, API keys).
    pub fn require_admin(self) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::Site { .. } => Err(ApiError::forbidden(
                "this route needs the admin token; a site API key cannot use it",
            )),
        }
    }

    /// Who this is, for audit lines.
    pub fn actor(self) -> Actor {
        match self {
            Self::Admin => Actor::Admin,
            Self::Site { key, .. } => Actor::ApiKey(key),
        }
    }
}

/// 403 `insufficient_scope`, naming the scope needed and the key's.
fn insufficient_scope(needed: Scope, has: Scopes) -> ApiError {
    let has = has.iter().map(Scope::as_str).collect::<Vec<_>>().join(", ");
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "insufficient_scope",
        format!(
            "this route needs an API key with the `{}` scope; this key has `{has}` \
             (the admin creates keys with \"scopes\": [\"manage\"])",
            needed.as_str()
        ),
    )
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
/// sent to the wrong place. A client address that failed too often gets 429 before its
/// token is even looked at.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Authenticated, ApiError> {
    let client = client_address(parts);
    let now = tokio::time::Instant::now();
    if let Some(wait) = state.throttle.blocked(client, now) {
        return Err(ApiError::too_many_failures(wait));
    }
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
    let hash = state.service.token_hash(token);
    if bool::from(hash.ct_eq(&state.admin_token_hash)) {
        return Ok(Authenticated {
            caller: Caller::Admin,
            credential: Credential::Admin,
        });
    }
    let lookup = match token.starts_with(API_KEY_PREFIX) {
        true => state.service.find_api_key(token).await?,
        false => KeyLookup::Unknown,
    };
    let message = match lookup {
        KeyLookup::Found(key) => {
            return Ok(Authenticated {
                caller: Caller::Site {
                    site: key.site_id,
                    key: key.id,
                    scopes: key.scopes,
                },
                credential: Credential::ApiKey(key.id),
            });
        }
        KeyLookup::Legacy => {
            "this API key was created before tokens were kept as keyed hashes and no longer \
             authenticates: ask the admin to revoke it and create a new one"
        }
        KeyLookup::Unknown => "the token is not valid",
    };
    state.throttle.failed(client, now);
    Err(ApiError::unauthorized(message))
}

/// The client's address; requests that did not come through [`super::server::serve`]
/// (tests calling the router directly) count as one unspecified address.
pub fn client_address(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip())
}

/// The client's address as an extractor (see [`client_address`]); never fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(parts)))
    }
}
