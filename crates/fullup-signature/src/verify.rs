//! The fullup scheme's receiving side: checks a `fullup-signature` header against the
//! exact body bytes, for one or more secrets.
//!
//! Promises: the header grammar is strict (optional surrounding ASCII whitespace, then
//! exactly 64 hex digits in either case); decoded tags are compared in constant time,
//! never as strings and never by prefix; every configured secret is tried on every
//! call, so the time taken does not reveal which one matched; nothing on the verify
//! path allocates or panics, whatever the input.

use std::fmt;

use hmac::Mac as _;

use crate::mac::{HmacSha256, TAG_LEN, keyed};
use crate::secret::{Secret, SecretError};

/// Verifies fullup signatures against one or more secrets.
///
/// During a secret rotation, list the old and the new secret: a delivery verifies if
/// it was signed with any of them, and [`Verified::secret_index`] says which.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<HmacSha256>,
}

/// A successful verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// 0-based index, into the secrets given to [`Verifier::new`], of the secret that
    /// signed the body (the first one, should two configured secrets be equal).
    pub secret_index: usize,
}

/// Why a `fullup-signature` header did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The request has no `fullup-signature` header.
    #[error("the fullup-signature header is missing; the request is unsigned")]
    Missing,
    /// The header is not 64 hex digits.
    #[error("the fullup-signature header is malformed: {reason}")]
    Malformed {
        /// What is wrong with the header, in a few words.
        reason: &'static str,
    },
    /// The header is well-formed but matches no configured secret.
    #[error(
        "the signature matches no configured secret; check the secret and that the exact \
         received body bytes were verified"
    )]
    Mismatch,
}

impl Verifier {
    /// Precomputes keyed states for `secrets`, in order; fails if there are none.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Result<Verifier, SecretError> {
        let keys: Vec<HmacSha256> = secrets.into_iter().map(|s| keyed(s.as_bytes())).collect();
        if keys.is_empty() {
            return Err(SecretError::NoSecrets);
        }
        Ok(Verifier { keys })
    }

    /// Checks the `fullup-signature` header value (`None` when absent) against `body`,
    /// the exact bytes received.
    pub fn verify(&self, header: Option<&str>, body: &[u8]) -> Result<Verified, VerifyError> {
        let expected = parse_header(header.ok_or(VerifyError::Missing)?)?;
        let mut matched = None;
        for (index, key) in self.keys.iter().enumerate() {
            let mut mac = key.clone();
            mac.update(body);
            let ok = mac.verify_slice(&expected).is_ok();
            if ok && matched.is_none() {
                matched = Some(index);
            }
        }
        matched
            .map(|secret_index| Verified { secret_index })
            .ok_or(VerifyError::Mismatch)
    }

    /// Number of configured secrets.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: a verifier holds at least one secret.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Verifier {{ secrets: {} × [redacted] }}",
            self.keys.len()
        )
    }
}

/// Decodes a header value into the 32 tag bytes, without allocating.
fn parse_header(header: &str) -> Result<[u8; TAG_LEN], VerifyError> {
    let digits = header.trim_ascii();
    let malformed = |reason| Err(VerifyError::Malformed { reason });
    if digits.is_empty() {
        return malformed("the header is empty");
    }
    if digits
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("sha256="))
    {
        return malformed("remove the `sha256=` prefix; the header is the bare 64 hex digits");
    }
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return malformed("it contains a character that is not a hex digit");
    }
    if digits.len() < 2 * TAG_LEN {
        return malformed("it has fewer than 64 hex digits");
    }
    if digits.len() > 2 * TAG_LEN {
        return malformed("it has more than 64 hex digits");
    }
    let mut tag = [0u8; TAG_LEN];
    match hex::decode_to_slice(digits, &mut tag) {
        Ok(()) => Ok(tag),
        Err(_) => malformed("it is not 64 hex digits"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign;

    const GITHUB_HEX: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn verifier(secrets: &[&str]) -> Verifier {
        let secrets = secrets
            .iter()
            .map(|s| Secret::parse(s).expect("valid test secret"));
        Verifier::new(secrets).expect("at least one secret")
    }

    fn reason(header: &str) -> &'static str {
        match verifier(&["k"]).verify(Some(header), b"") {
            Err(VerifyError::Malformed { reason }) => reason,
            other => panic!("{header:?} should be malformed, got {other:?}"),
        }
    }

    #[test]
    fn github_known_answer_verifies_in_either_case_with_whitespace() {
        let v = verifier(&["It's a Secret to Everybody"]);
        let upper = GITHUB_HEX.to_ascii_uppercase();
        for header in [GITHUB_HEX, &upper, &format!(" \t{GITHUB_HEX}\r\n")] {
            assert_eq!(
                v.verify(Some(header), b"Hello, World!"),
                Ok(Verified { secret_index: 0 })
            );
        }
        assert_eq!(
            v.verify(Some(GITHUB_HEX), b"Hello, World"),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn missing_header_is_missing() {
        assert_eq!(
            verifier(&["k"]).verify(None, b"x"),
            Err(VerifyError::Missing)
        );
    }

    #[test]
    fn malformed_headers_say_why() {
        assert_eq!(reason(""), "the header is empty");
        assert_eq!(reason("   "), "the header is empty");
        assert_eq!(reason(&GITHUB_HEX[..63]), "it has fewer than 64 hex digits");
        assert_eq!(
            reason(&format!("{GITHUB_HEX}0")),
            "it has more than 64 hex digits"
        );
        let not_hex = format!("{}g", &GITHUB_HEX[..63]);
        assert_eq!(
            reason(&not_hex),
            "it contains a character that is not a hex digit"
        );
        let inner_space = format!("{} {}", &GITHUB_HEX[..32], &GITHUB_HEX[32..]);
        assert_eq!(
            reason(&inner_space),
            "it contains a character that is not a hex digit"
        );
        let multibyte = format!("{}é", &GITHUB_HEX[..62]);
        assert_eq!(
            reason(&multibyte),
            "it contains a character that is not a hex digit"
        );
        assert!(reason(&format!("sha256={GITHUB_HEX}")).contains("sha256="));
    }

    /// Svix's CVE-2024-21491 accepted truncated signatures; a prefix must never verify.
    #[test]
    fn truncated_signature_never_verifies() {
        let v = verifier(&["It's a Secret to Everybody"]);
        for len in 0..GITHUB_HEX.len() {
            let result = v.verify(Some(&GITHUB_HEX[..len]), b"Hello, World!");
            assert!(
                matches!(result, Err(VerifyError::Malformed { .. })),
                "{len}: {result:?}"
            );
        }
    }

    #[test]
    fn rotation_reports_which_secret_matched() {
        let v = verifier(&["old", "new"]);
        let header = sign(&Secret::parse("new").expect("valid"), b"body").to_hex();
        assert_eq!(
            v.verify(Some(&header), b"body"),
            Ok(Verified { secret_index: 1 })
        );
        assert_eq!(v.len(), 2);
        assert!(!v.is_empty());
    }

    #[test]
    fn empty_secret_list_is_rejected() {
        assert!(matches!(
            Verifier::new(Vec::new()),
            Err(SecretError::NoSecrets)
        ));
    }

    #[test]
    fn shared_state_is_clone_send_and_sync() {
        fn shareable<T: Clone + Send + Sync>() {}
        shareable::<Verifier>();
        shareable::<crate::Signer>();
        shareable::<crate::Secret>();
        shareable::<crate::standard::StandardVerifier>();
    }

    #[test]
    fn debug_is_redacted() {
        let shown = format!("{:?}", verifier(&["hunter2", "hunter3"]));
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains('2'), "{shown}");
    }
}
