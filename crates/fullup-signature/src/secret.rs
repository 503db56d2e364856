//! The webhook secret: parsed once, redacted in every log line, wiped from memory on drop.
//!
//! A [`Secret`] can only be built by [`Secret::parse`] or [`Secret::generate`], so code
//! that holds one never has to re-check it. Its `Debug` and `Display` print `[redacted]`,
//! which keeps it out of logs even when a caller formats a whole struct.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize as _, Zeroizing};

/// The prefix of generated secrets; the Standard Webhooks format (`whsec_` + base64 key).
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a generated secret: 256 bits, the HMAC-SHA256 output size.
const GENERATED_KEY_BYTES: usize = 32;

/// A webhook secret shared between the sender and one receiver.
///
/// In the fullup scheme its UTF-8 bytes are the HMAC key ([`Secret::as_bytes`]). Any
/// non-empty string without surrounding whitespace or control characters is accepted,
/// so secrets issued in older formats keep working.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Generates a new secret: `whsec_` + standard base64 (padded) of 32 OS-CSPRNG bytes.
    ///
    /// The format is Standard Webhooks', so the same secret keys both schemes.
    pub fn generate() -> Secret {
        let mut key = Zeroizing::new([0u8; GENERATED_KEY_BYTES]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        let mut text = Zeroizing::new(String::with_capacity(SECRET_PREFIX.len() + 44));
        text.push_str(SECRET_PREFIX);
        base64::engine::general_purpose::STANDARD.encode_string(key.as_ref(), &mut text);
        Secret(text)
    }

    /// Parses a secret, saying precisely what is wrong when it is not usable.
    ///
    /// Rejects the empty string, leading or trailing whitespace (almost always a copy
    /// or file-reading accident that would silently change the HMAC key) and control
    /// characters anywhere (they cannot travel through environment variables,
    /// configuration files or most dashboards intact).
    pub fn parse(s: &str) -> Result<Secret, SecretError> {
        if s.is_empty() {
            return Err(SecretError::Empty);
        }
        if s.starts_with(char::is_whitespace) {
            return Err(SecretError::LeadingWhitespace);
        }
        if s.ends_with(char::is_whitespace) {
            return Err(SecretError::TrailingWhitespace);
        }
        if let Some(position) = s.chars().position(char::is_control) {
            return Err(SecretError::ControlCharacter { position });
        }
        Ok(Secret(Zeroizing::new(s.to_owned())))
    }

    /// The secret string, for storage and transport only; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret's UTF-8 bytes: the HMAC key of the fullup scheme.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The HMAC key of the Standard Webhooks scheme.
    ///
    /// For `whsec_<base64>` it is the decoded base64 (padding optional, as in the
    /// Standard Webhooks libraries); for any other secret, or a `whsec_` secret whose
    /// remainder is not non-empty base64, it is the secret's UTF-8 bytes.
    pub fn standard_key(&self) -> Zeroizing<Vec<u8>> {
        self.whsec_key()
            .unwrap_or_else(|| Zeroizing::new(self.as_bytes().to_vec()))
    }

    /// The decoded key of a `whsec_<base64>` secret (padding optional); None when the
    /// secret is not `whsec_` followed by non-empty standard base64. A sender checks a
    /// chosen secret with it: a `whsec_` secret that does not decode would otherwise
    /// key the Standard Webhooks scheme with its UTF-8 bytes, unnoticed.
    pub fn whsec_key(&self) -> Option<Zeroizing<Vec<u8>>> {
        let encoded = self.expose().strip_prefix(SECRET_PREFIX)?;
        let mut key = Zeroizing::new(LENIENT_BASE64.decode(encoded).ok()?);
        if key.is_empty() {
            key.zeroize();
            return None;
        }
        Some(key)
    }
}

/// Standard base64 that accepts the key with or without `=` padding.
const LENIENT_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

impl FromStr for Secret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Secret::parse(s)
    }
}

/// Compares in constant time (for equal lengths), so comparing secrets leaks no prefix.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a string is not a usable secret, or why a set of secrets is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret is the empty string.
    #[error("the secret is empty; use the secret shown when the webhook was created")]
    Empty,
    /// The secret starts with whitespace.
    #[error("the secret starts with whitespace; remove it (it would change the HMAC key)")]
    LeadingWhitespace,
    /// The secret ends with whitespace, typically a newline read from a file.
    #[error("the secret ends with whitespace; remove it (it would change the HMAC key)")]
    TrailingWhitespace,
    /// The secret contains a control character.
    #[error("the secret contains a control character at character {position}; remove it")]
    ControlCharacter {
        /// 0-based index, in characters, of the first control character.
        position: usize,
    },
    /// A verifier was built from an empty list of secrets.
    #[error("no secrets given; a verifier needs at least one")]
    NoSecrets,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_has_standard_webhooks_format() {
        let secret = Secret::generate();
        let encoded = secret
            .expose()
            .strip_prefix(SECRET_PREFIX)
            .expect("generated secrets carry the whsec_ prefix");
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("the remainder is padded standard base64");
        assert_eq!(key.len(), GENERATED_KEY_BYTES);
        assert_eq!(*secret.standard_key(), key);
        assert_eq!(Secret::parse(secret.expose()), Ok(secret));
    }

    #[test]
    fn generated_secrets_differ() {
        assert_ne!(Secret::generate(), Secret::generate());
    }

    #[test]
    fn parse_accepts_other_formats() {
        let secret = Secret::parse("It's a Secret to Everybody").expect("plain text is fine");
        assert_eq!(secret.as_bytes(), b"It's a Secret to Everybody");
        assert_eq!(Secret::parse("ключ").map(|s| s.as_bytes().len()), Ok(8));
    }

    #[test]
    fn parse_says_what_is_wrong() {
        assert_eq!(Secret::parse(""), Err(SecretError::Empty));
        assert_eq!(Secret::parse(" abc"), Err(SecretError::LeadingWhitespace));
        assert_eq!(Secret::parse("abc\n"), Err(SecretError::TrailingWhitespace));
        assert_eq!(
            Secret::parse("abc\u{a0}"),
            Err(SecretError::TrailingWhitespace)
        );
        assert_eq!(
            Secret::parse("ab\u{0}c"),
            Err(SecretError::ControlCharacter { position: 2 })
        );
        assert_eq!(
            "a\tb".parse::<Secret>(),
            Err(SecretError::ControlCharacter { position: 1 })
        );
    }

    #[test]
    fn formatting_never_shows_the_secret() {
        let secret = Secret::parse("hunter2-very-secret").expect("valid secret");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert!(!format!("{:?}", Some(&secret)).contains("hunter2"));
    }

    #[test]
    fn standard_key_decodes_whsec_with_or_without_padding() {
        let padded = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        let unpadded = Secret::parse("whsec_AAEC").expect("valid");
        assert_eq!(padded.standard_key().len(), 24);
        assert_eq!(*unpadded.standard_key(), vec![0, 1, 2]);
        assert_eq!(
            *Secret::parse("whsec_AAE").expect("valid").standard_key(),
            vec![0, 1]
        );
    }

    #[test]
    fn whsec_key_is_the_decoded_base64_or_none() {
        let key = Secret::parse("whsec_AAEC").expect("valid").whsec_key();
        assert_eq!(key.as_deref().map(Vec::as_slice), Some(&[0u8, 1, 2][..]));
        for text in [
            "whsec_not base64!",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            let secret = Secret::parse(text).expect("valid");
            assert!(secret.whsec_key().is_none(), "{text}");
        }
    }

    #[test]
    fn standard_key_falls_back_to_utf8_bytes() {
        for text in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_not base64!",
            "whsec_",
        ] {
            let secret = Secret::parse(text).expect("valid");
            assert_eq!(*secret.standard_key(), text.as_bytes(), "{text}");
        }
    }
}
