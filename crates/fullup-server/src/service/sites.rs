//! Sites (tenants) and their API keys.

use super::{Service, ServiceError, ServiceResult};
use crate::domain::ids::{ApiKeyId, SiteId};
use crate::domain::models::{ApiKey, Scope, Scopes, Site};
use crate::metrics::StoreOp;
use crate::store::{Page, PageRequest};

/// Longest site or key name.
pub const MAX_NAME_LEN: usize = 200;
/// Prefix of site API key tokens, so a leaked one is recognisable in a scan.
pub const API_KEY_PREFIX: &str = "fk_";

/// A site or key name: trimmed, 1 to [`MAX_NAME_LEN`] characters, none a control
/// character (a name is one line; PostgreSQL's text cannot even hold NUL).
pub fn parse_name(name: &str) -> ServiceResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ServiceError::invalid(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "invalid_name",
            "name must not contain control characters (such as NUL or a line break)",
        ));
    }
    Ok(name.to_owned())
}

/// Parses the `scopes` of a new API key: [`Scopes::default`] (`ingest`) when absent.
pub fn parse_scopes(raw: Option<&[String]>) -> ServiceResult<Scopes> {
    let Some(raw) = raw else {
        return Ok(Scopes::default());
    };
    let names = || Scope::ALL.map(|s| format!("`{}`", s.as_str())).join(", ");
    let scopes: Vec<Scope> = raw
        .iter()
        .map(|name| {
            Scope::parse(name).ok_or_else(|| {
                ServiceError::invalid(
                    "invalid_scopes",
                    format!("unknown scope `{name}`; scopes are {}", names()),
                )
            })
        })
        .collect::<ServiceResult<_>>()?;
    Scopes::new(scopes).ok_or_else(|| {
        ServiceError::invalid(
            "invalid_scopes",
            format!(
                "scopes must list at least one of {}; omit it for `ingest`",
                names()
            ),
        )
    })
}

/// A site's `retention_days` as sent: 1 to
/// [`crate::domain::retention::MAX_RETENTION_DAYS`].
fn parse_retention_days(days: i64) -> ServiceResult<u32> {
    crate::domain::retention::parse_days(days)
        .map_err(|e| ServiceError::invalid("invalid_retention", e.to_string()))
}

/// What a presented site API key token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// A live key.
    Found(ApiKey),
    /// A key stored before token hashes were keyed: it no longer authenticates and
    /// must be re-issued.
    Legacy,
    /// No key.
    Unknown,
}

impl Service {
    /// The API key whose token is `token`, by its keyed hash. A plain SHA-256 stored by
    /// an earlier version (or planted by a database writer) never matches; it is only
    /// recognised, to tell the caller to re-issue the key.
    pub async fn find_api_key(&self, token: &str) -> ServiceResult<KeyLookup> {
        let store = &self.store;
        if let Some(key) = self.counted(
            StoreOp::Read,
            store.find_api_key(&self.token_hash(token)).await,
        )? {
            return Ok(KeyLookup::Found(key));
        }
        let legacy = crate::tokens::legacy_hash(token);
        Ok(
            match self.counted(StoreOp::Read, store.find_api_key(&legacy).await)? {
                Some(_) => KeyLookup::Legacy,
                None => KeyLookup::Unknown,
            },
        )
    }

    /// Creates a site named `name` (already parsed by [`parse_name`]), keeping its
    /// events `retention_days` (checked here; None: the server's `--retention`).
    pub async fn create_site(
        &self,
        name: String,
        retention_days: Option<i64>,
    ) -> ServiceResult<Site> {
        let now = self.clock.now();
        let site = Site {
            id: SiteId::new(now),
            name,
            strict_event_types: false,
            retention_days: retention_days.map(parse_retention_days).transpose()?,
            created_at: now,
            updated_at: now,
        };
        self.counted(StoreOp::Write, self.store.create_site(&site).await)?;
        Ok(site)
    }

    /// The site `id`.
    pub async fn site(&self, id: SiteId) -> ServiceResult<Site> {
        self.counted(StoreOp::Read, self.store.get_site(id).await)?
            .ok_or_else(|| ServiceError::NotFound(format!("site {id}")))
    }

    /// Sites, newest first.
    pub async fn sites(&self, page: &PageRequest) -> ServiceResult<Page<Site>> {
        Ok(self.counted(StoreOp::Read, self.store.list_sites(page).await)?)
    }

    /// Renames `site`.
    pub async fn rename_site(&self, mut site: Site, name: String) -> ServiceResult<Site> {
        site.name = name;
        site.updated_at = self.clock.now();
        self.counted(
            StoreOp::Write,
            self.store
                .rename_site(site.id, &site.name, site.updated_at)
                .await,
        )?;
        Ok(site)
    }

    /// Sets how many days the events of `site` are kept (None: the server's
    /// `--retention`); `days` as the caller sent it, checked here.
    pub async fn set_site_retention(
        &self,
        mut site: Site,
        days: Option<i64>,
    ) -> ServiceResult<Site> {
        site.retention_days = days.map(parse_retention_days).transpose()?;
        site.updated_at = self.clock.now();
        self.counted(
            StoreOp::Write,
            self.store
                .set_site_retention(site.id, site.retention_days, site.updated_at)
                .await,
        )?;
        Ok(site)
    }

    /// Deletes `site` with its webhooks, events, deliveries and keys.
    pub async fn delete_site(&self, site: &Site) -> ServiceResult<()> {
        self.counted(StoreOp::Write, self.store.delete_site(site.id).await)?;
        Ok(())
    }

    /// Creates an API key of `site` allowed `scopes`; the token is returned this once,
    /// and only its keyed hash is stored.
    pub async fn create_api_key(
        &self,
        site: &Site,
        name: String,
        scopes: Scopes,
    ) -> ServiceResult<(ApiKey, String)> {
        let now = self.clock.now();
        let token = crate::crypto::generate_token(API_KEY_PREFIX);
        let key = ApiKey {
            id: ApiKeyId::new(now),
            site_id: site.id,
            name,
            scopes,
            token_hash: self.token_hash(&token),
            created_at: now,
        };
        self.counted(StoreOp::Write, self.store.create_api_key(&key).await)?;
        Ok((key, token))
    }

    /// A site's API keys (without tokens), newest first.
    pub async fn api_keys(&self, site: &Site, page: &PageRequest) -> ServiceResult<Page<ApiKey>> {
        Ok(self.counted(StoreOp::Read, self.store.list_api_keys(site.id, page).await)?)
    }

    /// Revokes a key of `site`.
    pub async fn delete_api_key(&self, site: &Site, id: ApiKeyId) -> ServiceResult<()> {
        if self.counted(StoreOp::Write, self.store.delete_api_key(site.id, id).await)? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!("API key {id}")))
        }
    }
}
