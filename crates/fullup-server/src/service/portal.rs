//! Portal links: a short-lived, one-time URL token that a platform hands to its
//! customer, which the console turns into a session scoped to one site.
//!
//! Only the token's keyed hash ([`crate::tokens`]) is stored, so a database dump opens
//! no portal and a database writer cannot plant one. Taking a
//! token deletes it in the same statement that checks it (see
//! [`crate::store::Store::take_portal_token`]), so a token opens one session however
//! many nodes share the database.

use std::time::Duration;

use super::{Service, ServiceError, ServiceResult};
use crate::crypto::generate_token;
use crate::domain::models::Site;
use crate::domain::time::Timestamp;
use crate::metrics::StoreOp;

/// How long a portal link may be opened after it is created.
pub const PORTAL_LINK_TTL: Duration = Duration::from_secs(10 * 60);
/// Prefix of portal link tokens, so a leaked one is recognisable in a scan.
pub const PORTAL_TOKEN_PREFIX: &str = "fpl_";

/// A new portal link's token, shown once.
#[derive(Clone)]
pub struct PortalToken {
    /// The token (`fpl_` + 43 URL-safe characters), to put in the link.
    pub token: String,
    /// After this the link no longer opens.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for PortalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalToken")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Service {
    /// Creates a one-time portal token of `site`, valid for [`PORTAL_LINK_TTL`].
    pub async fn create_portal_token(&self, site: &Site) -> ServiceResult<PortalToken> {
        let now = self.clock.now();
        let token = generate_token(PORTAL_TOKEN_PREFIX);
        let expires_at = now + PORTAL_LINK_TTL;
        self.counted(
            StoreOp::Write,
            self.store
                .create_portal_token(&self.token_hash(&token), site.id, expires_at, now)
                .await,
        )?;
        Ok(PortalToken { token, expires_at })
    }

    /// Takes the portal token `token`: the site it opens. An unknown, expired or
    /// already used token is [`ServiceError::NotFound`], all alike.
    pub async fn take_portal_token(&self, token: &str) -> ServiceResult<Site> {
        let gone = || ServiceError::NotFound("portal link (expired or already used)".to_owned());
        if !token.starts_with(PORTAL_TOKEN_PREFIX) {
            return Err(gone());
        }
        let site = self
            .counted(
                StoreOp::Write,
                self.store
                    .take_portal_token(&self.token_hash(token), self.clock.now())
                    .await,
            )?
            .ok_or_else(gone)?;
        self.site(site).await.map_err(|_| gone())
    }
}
