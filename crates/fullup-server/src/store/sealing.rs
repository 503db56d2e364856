//! Webhook secrets and receiver URLs at rest, whatever the database: what is sealed
//! under the main key, bound to which context, and the main key check. Each store only
//! reads and writes the sealed values; it never sees a secret's bytes in any other form.
//!
//! A receiver URL is bound to its site and webhook (it changes without a secret
//! rotation); one in clear is read only from a row an earlier version wrote. A
//! webhook's custom headers (which often carry a receiver's credentials) are sealed the
//! same way; a webhook without any stores `{}`, and headers in clear are never read.
//!
//! The current secret and the list of old ones are each bound to their site, webhook
//! and secret version (raised by every secret rotation), so a sealed value moved to
//! another row, a row moved to another site, or a value written back from before a
//! rotation does not open. A value that does not open makes its webhook's secrets
//! [`Unreadable`], which fails that webhook's deliveries and secret reads only.
//!
//! Values of the first format (`v1:`, bound to the webhook id only) still open, until
//! [`needs_reseal`] has them re-sealed at start. A `main_key_check` setting, sealed
//! under the current key, makes a wrong key fail at start with a clear message instead
//! of at the first delivery.
//!
//! The token-hash key ([`crate::tokens`]) is sealed under the main key too, and
//! re-sealed with the secrets when the main key rotates.

use fullup_signature::Secret;
use zeroize::Zeroizing;

use super::rows::corrupt;
use super::{StoreError, StoreResult};
use crate::crypto::{LEGACY_PREFIX, MainKey};
use crate::domain::headers::CustomHeaders;
use crate::domain::ids::{SiteId, WebhookId};
use crate::domain::webhook::{OldSecret, Secrets, StoredOldSecret, Unreadable, Webhook};
use crate::domain::webhook_url::WebhookUrl;

/// Setting holding a value sealed under the main key, to recognise the right key.
pub(crate) const KEY_CHECK_SETTING: &str = "main_key_check";
/// What the key check seals; its content does not matter, only that it opens.
const KEY_CHECK_PLAINTEXT: &[u8] = b"fullup main key check";

/// What a webhook's sealed secrets are bound to: the row they belong to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binding {
    /// The webhook's site.
    pub site: SiteId,
    /// The webhook.
    pub webhook: WebhookId,
    /// `secret_version`: 1 at creation, raised by every secret rotation.
    pub version: i64,
}

impl Binding {
    fn context(&self, what: &str) -> Vec<u8> {
        format!("{what}:{}:{}:{}", self.site, self.webhook, self.version).into_bytes()
    }

    /// The context of `v1:` values: the webhook id only.
    fn legacy_context(&self, what: &str) -> Vec<u8> {
        format!("{what}:{}", self.webhook).into_bytes()
    }
}

const SECRET: &str = "webhook-secret";
const URL: &str = "webhook-url";
const HEADERS: &str = "webhook-headers";
/// The `headers` column of a webhook without custom headers.
const NO_HEADERS: &str = "{}";
const OLD_SECRETS: &str = "webhook-old-secrets";

/// The sealed receiver URL of `w` (`url_sealed`), bound to its site and webhook. Fails
/// with [`StoreError::SecretUnreadable`] for a webhook whose stored values did not
/// open: writing it back would store [`WebhookUrl::unreadable`].
pub(crate) fn seal_url(key: &MainKey, w: &Webhook) -> StoreResult<String> {
    w.secrets()?;
    Ok(seal_url_of(key, w.site_id, w.id, &w.url))
}

/// `url` sealed for webhook `webhook` of `site`.
pub(crate) fn seal_url_of(
    key: &MainKey,
    site: SiteId,
    webhook: WebhookId,
    url: &WebhookUrl,
) -> String {
    key.seal(url.as_str().as_bytes(), &url_context(site, webhook))
}

/// The URL's associated data: the site and webhook, not the secret version (a URL
/// changes without a secret rotation).
fn url_context(site: SiteId, webhook: WebhookId) -> Vec<u8> {
    format!("{URL}:{site}:{webhook}").into_bytes()
}

/// The custom headers' associated data: the site and webhook, as for the URL.
fn headers_context(site: SiteId, webhook: WebhookId) -> Vec<u8> {
    format!("{HEADERS}:{site}:{webhook}").into_bytes()
}

/// The `headers` column of `w`: `{}` without custom headers, otherwise their JSON
/// sealed and bound to its site and webhook.
pub(crate) fn seal_headers(key: &MainKey, w: &Webhook) -> String {
    if w.headers.is_empty() {
        return NO_HEADERS.to_owned();
    }
    key.seal(
        w.headers.to_json().as_bytes(),
        &headers_context(w.site_id, w.id),
    )
}

/// Opens the custom headers of the webhook `binding` names from its `headers` column.
/// Headers in clear are never read: only a database writer could have put them there.
pub(crate) fn open_headers(
    key: &MainKey,
    binding: Binding,
    stored: &str,
) -> Result<CustomHeaders, Unreadable> {
    if stored == NO_HEADERS {
        return Ok(CustomHeaders::default());
    }
    let unreadable = |reason: String| Unreadable {
        webhook: binding.webhook,
        reason: format!("its custom headers: {reason}"),
    };
    if MainKey::sealed_by(stored).is_none() {
        return Err(unreadable("they are not sealed".into()));
    }
    let opened = key
        .open(stored, &headers_context(binding.site, binding.webhook))
        .map_err(|e| unreadable(e.to_string()))?;
    let text = std::str::from_utf8(&opened).map_err(|e| unreadable(e.to_string()))?;
    CustomHeaders::from_json(text).map_err(unreadable)
}

/// Opens the URL of the webhook `binding` names: `sealed` (`url_sealed`) or, for a row
/// an earlier version wrote (no sealed URL, a `v1:` secret), `plain` (`url`). A URL in
/// clear beside a `v2:` secret is never read: a database writer could have put it
/// there to repoint the webhook.
pub(crate) fn open_url(
    key: &MainKey,
    binding: Binding,
    sealed: Option<&str>,
    plain: &str,
    secret: Option<&str>,
) -> Result<WebhookUrl, Unreadable> {
    let unreadable = |reason: String| Unreadable {
        webhook: binding.webhook,
        reason: format!("its URL: {reason}"),
    };
    let text = match sealed {
        Some(sealed) => {
            let opened = key
                .open(sealed, &url_context(binding.site, binding.webhook))
                .map_err(|e| unreadable(e.to_string()))?;
            String::from_utf8(opened.to_vec()).map_err(|e| unreadable(e.to_string()))?
        }
        None if secret.is_some_and(|s| s.starts_with(LEGACY_PREFIX)) => plain.to_owned(),
        None => return Err(unreadable("no sealed URL is stored".into())),
    };
    WebhookUrl::parse(&text).map_err(|e| unreadable(e.to_string()))
}

/// A webhook's secrets as stored: the current one and the old list (None when empty).
pub(crate) struct SealedSecrets {
    /// `secret_sealed`.
    pub current: String,
    /// `old_secrets_sealed`.
    pub old: Option<String>,
}

/// Seals `secrets` under the current key, bound to `binding`.
pub(crate) fn seal_secrets(
    key: &MainKey,
    binding: Binding,
    secrets: &Secrets,
) -> StoreResult<SealedSecrets> {
    let current = key.seal(secrets.current.as_bytes(), &binding.context(SECRET));
    if secrets.old.is_empty() {
        return Ok(SealedSecrets { current, old: None });
    }
    let stored: Vec<StoredOldSecret<'_>> = secrets
        .old
        .iter()
        .map(|old| StoredOldSecret {
            secret: old.secret.expose().into(),
            valid_until: old.valid_until,
        })
        .collect();
    let json = Zeroizing::new(serde_json::to_vec(&stored).map_err(corrupt)?);
    Ok(SealedSecrets {
        current,
        old: Some(key.seal(&json, &binding.context(OLD_SECRETS))),
    })
}

/// Opens a value sealed for `binding` (`what` names the column's purpose).
fn open_bound(
    key: &MainKey,
    binding: Binding,
    what: &str,
    sealed: &str,
) -> Result<Zeroizing<Vec<u8>>, crate::crypto::CryptoError> {
    if sealed.starts_with(LEGACY_PREFIX) {
        key.open_legacy(sealed, &binding.legacy_context(what))
    } else {
        key.open(sealed, &binding.context(what))
    }
}

/// Opens the secrets of the webhook `binding` names: `current` (None: a row with no
/// sealed secret, such as one planted in clear, which is never read) and `old`.
pub(crate) fn open_secrets(
    key: &MainKey,
    binding: Binding,
    current: Option<&str>,
    old: Option<&str>,
) -> Result<Secrets, Unreadable> {
    let unreadable = |reason: String| Unreadable {
        webhook: binding.webhook,
        reason,
    };
    let current = current.ok_or_else(|| unreadable("no sealed secret is stored".into()))?;
    let plain = open_bound(key, binding, SECRET, current).map_err(|e| unreadable(e.to_string()))?;
    let text = std::str::from_utf8(&plain).map_err(|e| unreadable(e.to_string()))?;
    let current = Secret::parse(text).map_err(|e| unreadable(e.to_string()))?;
    let Some(old) = old else {
        return Ok(Secrets::new(current));
    };
    let json = open_bound(key, binding, OLD_SECRETS, old).map_err(|e| unreadable(e.to_string()))?;
    let stored: Vec<StoredOldSecret<'_>> =
        serde_json::from_slice(&json).map_err(|e| unreadable(e.to_string()))?;
    let old = stored
        .into_iter()
        .map(|s| {
            Ok(OldSecret {
                secret: Secret::parse(&s.secret).map_err(|e| unreadable(e.to_string()))?,
                valid_until: s.valid_until,
            })
        })
        .collect::<Result<_, Unreadable>>()?;
    Ok(Secrets { current, old })
}

/// Whether a row's sealed values (`current`, `old`, `url`, `headers`) should be
/// sealed again under `key`: one is of the first format or under another key of the
/// ring, or the URL is not sealed yet.
pub(crate) fn needs_reseal(
    key: &MainKey,
    current: Option<&str>,
    old: Option<&str>,
    url: Option<&str>,
    headers: &str,
) -> bool {
    let headers = (headers != NO_HEADERS).then_some(headers);
    url.is_none()
        || [current, old, url, headers]
            .into_iter()
            .flatten()
            .any(|sealed| MainKey::sealed_by(sealed) != Some(key.key_id()))
}

/// The value of the [`KEY_CHECK_SETTING`] setting for `key`.
pub(crate) fn seal_key_check(key: &MainKey) -> Vec<u8> {
    key.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_SETTING.as_bytes())
        .into_bytes()
}

/// Fails with [`StoreError::WrongMainKey`] unless `stored` (the setting's value) was
/// sealed under a key of `key`'s ring; true when it was sealed under another key than
/// the current one (or in the first format), and should be sealed again.
pub(crate) fn verify_key_check(key: &MainKey, stored: Vec<u8>) -> StoreResult<bool> {
    let text = String::from_utf8(stored).map_err(corrupt)?;
    let context = KEY_CHECK_SETTING.as_bytes();
    let opened = if text.starts_with(LEGACY_PREFIX) {
        key.open_legacy(&text, context)
    } else {
        key.open(&text, context)
    };
    opened.map_err(|_| StoreError::WrongMainKey)?;
    Ok(MainKey::sealed_by(&text) != Some(key.key_id()))
}

/// `secret_version` of a new webhook.
pub(crate) const FIRST_VERSION: i64 = 1;

/// Seals the secrets of the new webhook `w` (version [`FIRST_VERSION`]).
pub(crate) fn seal_new(key: &MainKey, w: &Webhook) -> StoreResult<SealedSecrets> {
    let binding = Binding {
        site: w.site_id,
        webhook: w.id,
        version: FIRST_VERSION,
    };
    seal_secrets(key, binding, w.secrets()?)
}

/// A webhook row's sealed values, sealed again.
pub(crate) struct Resealed {
    /// `secret_sealed` and `old_secrets_sealed`.
    pub secrets: SealedSecrets,
    /// `url_sealed`.
    pub url: String,
    /// `headers`.
    pub headers: String,
}

/// A stored webhook's secrets, URL and custom headers (as read, under the old ring)
/// sealed again under `to` (a rotation of the main key, or values of an older key or
/// format); fails with [`StoreError::SecretUnreadable`] when they did not open.
pub(crate) fn reseal(to: &MainKey, binding: Binding, w: &Webhook) -> StoreResult<Resealed> {
    Ok(Resealed {
        secrets: seal_secrets(to, binding, w.secrets()?)?,
        url: seal_url(to, w)?,
        headers: seal_headers(to, w),
    })
}

/// The token-hash key setting ([`crate::tokens`]), sealed under `old`, re-sealed under
/// `new`: a main key rotation keeps every token hash, and so every API key, valid.
pub(crate) fn reseal_token_hash_key(
    old: &MainKey,
    new: &MainKey,
    stored: &[u8],
) -> StoreResult<Vec<u8>> {
    Ok(crate::tokens::TokenHasher::open(old, stored)?.seal(new))
}
