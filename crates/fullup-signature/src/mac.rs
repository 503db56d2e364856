//! The one place that builds HMAC-SHA256 states.
//!
//! Keying HMAC costs two SHA-256 compressions; a [`HmacSha256`] built here holds the
//! resulting inner and outer states, and callers `clone()` it per message so that cost
//! is paid once per secret. sha2 picks its SHA-NI backend at run time, so no
//! `target-cpu` flag is needed for full speed.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// HMAC-SHA256, keyed and ready to clone per message.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 tag in bytes.
pub(crate) const TAG_LEN: usize = 32;

/// Precomputes the keyed state for `key`.
pub(crate) fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC hashes over-long keys and pads short ones, so every key length is valid;
    // `new_from_slice` only returns `Result` because it shares a trait with fixed-key MACs.
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}
