//! Webhook secrets at rest, whatever the database: what is sealed under the main key,
//! bound to which context, and the main key check. Each store only reads and writes
//! the sealed values; it never sees a secret's bytes in any other form.
//!
//! The current secret and the list of old ones are each bound to their webhook id, so
//! a sealed value moved to another row does not open. A `main_key_check` setting,
//! sealed under the same key, makes a wrong key fail at start with a clear message
//! instead of at the first delivery. The token-hash key ([`crate::tokens`]) is sealed
//! under the main key too, and re-sealed with the secrets when the main key rotates.

use fullup_signature::Secret;
use zeroize::Zeroizing;

use super::rows::corrupt;
use super::{StoreError, StoreResult};
use crate::crypto::MainKey;
use crate::domain::webhook::Webhook;
use crate::domain::webhook::{OldSecret, StoredOldSecret};

/// Setting holding a value sealed under the main key, to recognise the right key.
pub(crate) const KEY_CHECK_SETTING: &str = "main_key_check";
/// What the key check seals; its content does not matter, only that it opens.
const KEY_CHECK_PLAINTEXT: &[u8] = b"fullup main key check";

fn secret_context(id: &str) -> Vec<u8> {
    format!("webhook-secret:{id}").into_bytes()
}

fn old_secrets_context(id: &str) -> Vec<u8> {
    format!("webhook-old-secrets:{id}").into_bytes()
}

/// A webhook's secrets as stored: the current one and the old list (None when empty).
pub(crate) struct SealedSecrets {
    /// `secret_sealed`.
    pub current: String,
    /// `old_secrets_sealed`.
    pub old: Option<String>,
}

/// Seals a webhook's current and old secrets for its row.
pub(crate) fn seal_secrets(key: &MainKey, w: &Webhook) -> StoreResult<SealedSecrets> {
    let id = w.id.to_string();
    let current = key.seal(w.secret.as_bytes(), &secret_context(&id));
    if w.old_secrets.is_empty() {
        return Ok(SealedSecrets { current, old: None });
    }
    let stored: Vec<StoredOldSecret<'_>> = w
        .old_secrets
        .iter()
        .map(|old| StoredOldSecret {
            secret: old.secret.expose().into(),
            valid_until: old.valid_until,
        })
        .collect();
    let json = Zeroizing::new(serde_json::to_vec(&stored).map_err(corrupt)?);
    Ok(SealedSecrets {
        current,
        old: Some(key.seal(&json, &old_secrets_context(&id))),
    })
}

/// Opens the current secret of webhook `id`, sealed by [`seal_secrets`].
pub(crate) fn open_secret(key: &MainKey, id: &str, sealed: &str) -> StoreResult<Secret> {
    let plain = key.open(sealed, &secret_context(id))?;
    let text = std::str::from_utf8(&plain).map_err(corrupt)?;
    Secret::parse(text).map_err(corrupt)
}

/// Opens the old secrets of webhook `id` (none when `sealed` is None).
pub(crate) fn open_old_secrets(
    key: &MainKey,
    id: &str,
    sealed: Option<&str>,
) -> StoreResult<Vec<OldSecret>> {
    let Some(sealed) = sealed else {
        return Ok(Vec::new());
    };
    let json = key.open(sealed, &old_secrets_context(id))?;
    let stored: Vec<StoredOldSecret<'_>> = serde_json::from_slice(&json).map_err(corrupt)?;
    stored
        .into_iter()
        .map(|s| {
            Ok(OldSecret {
                secret: Secret::parse(&s.secret).map_err(corrupt)?,
                valid_until: s.valid_until,
            })
        })
        .collect()
}

/// The value of the [`KEY_CHECK_SETTING`] setting for `key`.
pub(crate) fn seal_key_check(key: &MainKey) -> Vec<u8> {
    key.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_SETTING.as_bytes())
        .into_bytes()
}

/// Fails with [`StoreError::WrongMainKey`] unless `stored` (the setting's value) was
/// sealed under `key`.
pub(crate) fn verify_key_check(key: &MainKey, stored: Vec<u8>) -> StoreResult<()> {
    let text = String::from_utf8(stored).map_err(corrupt)?;
    key.open(&text, KEY_CHECK_SETTING.as_bytes())
        .map(drop)
        .map_err(|_| StoreError::WrongMainKey)
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
