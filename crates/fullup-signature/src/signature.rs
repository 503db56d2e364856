//! The fullup scheme's signing side: `fullup-signature` = lowercase hex HMAC-SHA256 of
//! the exact body bytes, keyed with the secret string's UTF-8 bytes.
//!
//! [`sign`] is the one-shot form; a [`Signer`] keeps the keyed state so a sender that
//! signs many bodies with one secret pays the keying cost once.

use std::fmt;

use hmac::Mac as _;
use subtle::ConstantTimeEq as _;

use crate::mac::{HmacSha256, TAG_LEN, keyed};
use crate::secret::Secret;
use crate::standard;

/// An HMAC-SHA256 tag. `Display` and [`Signature::to_hex`] give the header value.
///
/// Equality is constant-time, so comparing a computed signature with a received one
/// via `==` leaks nothing about where they differ.
#[derive(Clone, Copy)]
pub struct Signature([u8; TAG_LEN]);

impl Signature {
    /// The raw 32 tag bytes.
    pub fn as_bytes(&self) -> &[u8; TAG_LEN] {
        &self.0
    }

    /// The header value: 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl PartialEq for Signature {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Signature {}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 2 * TAG_LEN];
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// Signs `body` with `secret` in the fullup scheme.
///
/// Keys a fresh HMAC state on every call; use a [`Signer`] to sign many bodies.
pub fn sign(secret: &Secret, body: &[u8]) -> Signature {
    finish(keyed(secret.as_bytes()), body)
}

/// Precomputed keyed HMAC states for one secret, for both schemes.
///
/// Building one costs four SHA-256 compressions; each signature afterwards only hashes
/// the message. Cheap to clone and safe to share between threads.
#[derive(Clone)]
pub struct Signer {
    fullup: HmacSha256,
    standard: HmacSha256,
}

impl Signer {
    /// Keys the states for `secret`.
    pub fn new(secret: &Secret) -> Signer {
        Signer {
            fullup: keyed(secret.as_bytes()),
            standard: keyed(&secret.standard_key()),
        }
    }

    /// Signs `body` in the fullup scheme; same result as [`sign`].
    pub fn sign(&self, body: &[u8]) -> Signature {
        finish(self.fullup.clone(), body)
    }

    /// Signs in the Standard Webhooks scheme; returns the `webhook-signature` entry
    /// `v1,<base64>`. Same result as [`standard::sign_standard`].
    pub fn sign_standard(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        standard::encode_v1(&standard::tag(&self.standard, msg_id, timestamp, body))
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

fn finish(mut mac: HmacSha256, body: &[u8]) -> Signature {
    mac.update(body);
    Signature(mac.finalize().into_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::parse(s).expect("valid test secret")
    }

    /// GitHub's published example for the same construction ("Validating webhook
    /// deliveries", docs.github.com), minus their `sha256=` prefix.
    #[test]
    fn github_known_answer() {
        let signature = sign(&secret("It's a Secret to Everybody"), b"Hello, World!");
        let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(signature.to_string(), expected);
        assert_eq!(signature.to_hex(), expected);
        assert_eq!(format!("{signature:?}"), format!("Signature({expected})"));
    }

    #[test]
    fn signer_matches_one_shot_sign_and_is_reusable() {
        let secret = secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let signer = Signer::new(&secret);
        for body in [&b""[..], b"a", &[0xff; 1000]] {
            assert_eq!(signer.sign(body), sign(&secret, body));
        }
    }

    #[test]
    fn different_bodies_and_secrets_give_different_signatures() {
        let a = secret("a");
        assert_ne!(sign(&a, b"x"), sign(&a, b"y"));
        assert_ne!(sign(&a, b"x"), sign(&secret("b"), b"x"));
    }

    #[test]
    fn signer_debug_is_redacted() {
        let signer = Signer::new(&secret("hunter2"));
        assert_eq!(format!("{signer:?}"), "Signer([redacted])");
    }
}
