//! Bearer tokens (site API keys, portal links, the admin token) are kept only as
//! HMAC-SHA256 under the token-hash key, never in clear and never as a plain hash.
//!
//! A plain SHA-256 lets anyone who can write to the database plant a token of their
//! choosing (they hash it themselves). The token-hash key is 32 random bytes stored in
//! the `token_hash_key` setting sealed under the main key, so a writer without the main
//! key cannot compute a hash that authenticates. It is a stored key rather than one
//! derived from the main key each start so that rotating the main key (which re-seals
//! this setting with the secrets) keeps every API key and the admin token working:
//! tokens are unknown to the service, so their hashes could never be recomputed.
//!
//! Hashes from before this scheme (plain SHA-256) do not authenticate; [`legacy_hash`]
//! only recognises them to tell the caller the key must be re-issued.

use std::fmt;

use hmac::Mac as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::crypto::{CryptoError, MainKey};
use crate::store::Store;

/// Setting holding the token-hash key, sealed under the main key.
pub const TOKEN_HASH_KEY_SETTING: &str = "token_hash_key";
/// Length of the token-hash key: HMAC-SHA256's block of security.
const KEY_BYTES: usize = 32;

/// The key every token hash is computed under. Debug prints `[redacted]`; the bytes
/// are wiped on drop.
#[derive(Clone)]
pub struct TokenHasher(Zeroizing<[u8; KEY_BYTES]>);

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHasher([redacted])")
    }
}

impl TokenHasher {
    /// A new random key from the OS CSPRNG.
    pub fn generate() -> Self {
        Self(Zeroizing::new(rand::random()))
    }

    /// HMAC-SHA256 of `token`: the only form in which a token is kept or compared.
    pub fn hash(&self, token: &str) -> [u8; 32] {
        // HMAC takes keys of any length: this never fails.
        let mut mac = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(self.0.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts a key of any length"));
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The setting's value: this key sealed under `main`.
    pub fn seal(&self, main: &MainKey) -> Vec<u8> {
        main.seal(self.0.as_ref(), TOKEN_HASH_KEY_SETTING.as_bytes())
            .into_bytes()
    }

    /// Opens the setting's value sealed by [`TokenHasher::seal`] under `main`.
    pub fn open(main: &MainKey, stored: &[u8]) -> Result<Self, CryptoError> {
        let text = std::str::from_utf8(stored).map_err(|_| CryptoError::Malformed)?;
        let plain = main.open(text, TOKEN_HASH_KEY_SETTING.as_bytes())?;
        let bytes: [u8; KEY_BYTES] = plain
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Malformed)?;
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// The database's token-hash key, created on its first start. Of nodes starting
    /// together on an empty shared database, the first to store its key wins and the
    /// others read it back.
    pub async fn load_or_create(store: &dyn Store, main: &MainKey) -> anyhow::Result<Self> {
        if store.get_setting(TOKEN_HASH_KEY_SETTING).await?.is_none() {
            let created = Self::generate();
            store
                .add_setting(TOKEN_HASH_KEY_SETTING, &created.seal(main))
                .await?;
        }
        let stored = store
            .get_setting(TOKEN_HASH_KEY_SETTING)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the stored token-hash key vanished"))?;
        Ok(Self::open(main, &stored)?)
    }
}

/// Plain SHA-256 of `token`, how tokens were kept before [`TokenHasher`]: used only to
/// recognise a key that must be re-issued, never to authenticate.
pub fn legacy_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_depend_on_the_key_and_differ_from_plain_sha256() {
        let hasher = TokenHasher::generate();
        let token = "fk_example";
        assert_eq!(hasher.hash(token), hasher.hash(token));
        assert_ne!(hasher.hash(token), hasher.hash("fk_other"));
        assert_ne!(hasher.hash(token), TokenHasher::generate().hash(token));
        assert_ne!(hasher.hash(token), legacy_hash(token));
        assert_eq!(format!("{hasher:?}"), "TokenHasher([redacted])");
    }

    #[test]
    fn the_sealed_key_opens_only_under_its_main_key() {
        let main = MainKey::generate();
        let hasher = TokenHasher::generate();
        let sealed = hasher.seal(&main);
        let opened = TokenHasher::open(&main, &sealed).expect("opens");
        assert_eq!(opened.hash("x"), hasher.hash("x"));
        assert!(TokenHasher::open(&MainKey::generate(), &sealed).is_err());
        assert!(TokenHasher::open(&main, b"v1:not sealed").is_err());
    }
}
