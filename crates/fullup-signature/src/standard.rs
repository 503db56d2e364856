//! The Standard Webhooks scheme (<https://www.standardwebhooks.com>), sent beside
//! `fullup-signature` so receivers get replay protection and can use that project's
//! libraries.
//!
//! Signed content: `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 keyed with
//! [`Secret::standard_key`]. The `webhook-signature` header holds space-separated
//! `v1,<base64>` entries; entries of other versions are ignored, so a sender can add new
//! schemes or sign with several keys during a rotation. Timestamps more than the
//! tolerance (default 300 s) away from now, in either direction, are rejected.

use std::fmt;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac as _;
use subtle::ConstantTimeEq as _;

use crate::mac::{HmacSha256, TAG_LEN, keyed};
use crate::secret::{Secret, SecretError};

/// Header carrying the message id, unique per event and stable across retries.
pub const ID_HEADER: &str = "webhook-id";
/// Header carrying the signing time in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Header carrying the space-separated `v1,<base64>` signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// Allowed clock difference between sender and receiver, either way; 5 minutes is
/// the Standard Webhooks libraries' default and bounds the replay window.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The only signature version this scheme defines for symmetric keys.
const VERSION_PREFIX: &str = "v1,";
/// Longest decimal rendering of an `i64` (`-9223372036854775808`).
const MAX_I64_DIGITS: usize = 20;

/// Signs in the Standard Webhooks scheme; returns the `webhook-signature` entry
/// `v1,<base64>`. Use [`crate::Signer::sign_standard`] to sign many messages.
pub fn sign_standard(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    encode_v1(&tag(
        &keyed(&secret.standard_key()),
        msg_id,
        timestamp,
        body,
    ))
}

/// HMAC of `{msg_id}.{timestamp}.{body}`, streamed without building the message.
pub(crate) fn tag(key: &HmacSha256, msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; TAG_LEN] {
    let mut digits = [0u8; MAX_I64_DIGITS];
    let mut mac = key.clone();
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(decimal(timestamp, &mut digits));
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// Formats `n` in decimal into `buf` without allocating.
fn decimal(n: i64, buf: &mut [u8; MAX_I64_DIGITS]) -> &[u8] {
    let unused = {
        let mut rest = &mut buf[..];
        // Cannot fail: every i64 fits in MAX_I64_DIGITS bytes.
        let _ = write!(rest, "{n}");
        rest.len()
    };
    &buf[..MAX_I64_DIGITS - unused]
}

/// The header entry for a tag: `v1,` + padded standard base64.
pub(crate) fn encode_v1(tag: &[u8; TAG_LEN]) -> String {
    let mut entry = String::with_capacity(VERSION_PREFIX.len() + 44);
    entry.push_str(VERSION_PREFIX);
    BASE64.encode_string(tag, &mut entry);
    entry
}

/// Verifies Standard Webhooks signatures against one or more secrets.
#[derive(Clone)]
pub struct StandardVerifier {
    keys: Vec<HmacSha256>,
    tolerance_secs: i64,
}

/// A successful Standard Webhooks verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandardVerified {
    /// 0-based index, into the secrets given to [`StandardVerifier::new`], of the
    /// secret that signed the message.
    pub secret_index: usize,
    /// The verified `webhook-timestamp`, Unix seconds.
    pub timestamp: i64,
}

/// Why a Standard Webhooks request did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StandardError {
    /// A required header is absent; the field names it.
    #[error(
        "the {0} header is missing; Standard Webhooks requests carry webhook-id, webhook-timestamp and webhook-signature"
    )]
    MissingHeader(&'static str),
    /// A header is present but unusable.
    #[error("the {header} header is malformed: {reason}")]
    Malformed {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it, in a few words.
        reason: &'static str,
    },
    /// The timestamp is older than the tolerance allows: a replay, a delivery delayed
    /// in transit, or a receiver clock running ahead.
    #[error("the webhook-timestamp is {} s in the past, beyond the tolerance; reject it as a possible replay, or fix the receiver's clock", .now.saturating_sub(*.timestamp))]
    TooOld {
        /// The message's timestamp, Unix seconds.
        timestamp: i64,
        /// The receiver's clock, Unix seconds.
        now: i64,
    },
    /// The timestamp is further in the future than the tolerance allows: a sender or
    /// receiver clock is wrong.
    #[error("the webhook-timestamp is {} s in the future, beyond the tolerance; check the sender's and receiver's clocks", .timestamp.saturating_sub(*.now))]
    TooNew {
        /// The message's timestamp, Unix seconds.
        timestamp: i64,
        /// The receiver's clock, Unix seconds.
        now: i64,
    },
    /// No `v1` signature matches any configured secret.
    #[error(
        "no v1 signature matches any configured secret; check the secret and that the exact received body bytes were verified"
    )]
    Mismatch,
}

impl StandardVerifier {
    /// Precomputes keyed states for `secrets`, in order; fails if there are none.
    /// The tolerance is [`DEFAULT_TOLERANCE`].
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, SecretError> {
        let keys: Vec<HmacSha256> = secrets
            .into_iter()
            .map(|s| keyed(&s.standard_key()))
            .collect();
        if keys.is_empty() {
            return Err(SecretError::NoSecrets);
        }
        let tolerance_secs = secs(DEFAULT_TOLERANCE);
        Ok(StandardVerifier {
            keys,
            tolerance_secs,
        })
    }

    /// Replaces the tolerance applied in both directions around now.
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance_secs = secs(tolerance);
        self
    }

    /// Verifies against the system clock. Arguments are the three header values
    /// (`None` when absent) and the exact body bytes received.
    pub fn verify(
        &self,
        msg_id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<StandardVerified, StandardError> {
        self.verify_at(msg_id, timestamp, signature, body, unix_now())
    }

    /// Like [`StandardVerifier::verify`], with the receiver's clock given as Unix
    /// seconds, for tests and for callers with their own time source.
    pub fn verify_at(
        &self,
        msg_id: Option<&str>,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_unix_secs: i64,
    ) -> Result<StandardVerified, StandardError> {
        let msg_id = msg_id.ok_or(StandardError::MissingHeader(ID_HEADER))?;
        let timestamp = timestamp.ok_or(StandardError::MissingHeader(TIMESTAMP_HEADER))?;
        let signature = signature.ok_or(StandardError::MissingHeader(SIGNATURE_HEADER))?;
        if msg_id.trim_ascii().is_empty() {
            return Err(malformed(ID_HEADER, "it is empty"));
        }
        let timestamp = parse_timestamp(timestamp)?;
        self.check_tolerance(timestamp, now_unix_secs)?;
        let secret_index = self.match_signature(msg_id, timestamp, signature, body)?;
        Ok(StandardVerified {
            secret_index,
            timestamp,
        })
    }

    fn check_tolerance(&self, timestamp: i64, now: i64) -> Result<(), StandardError> {
        if now.saturating_sub(timestamp) > self.tolerance_secs {
            return Err(StandardError::TooOld { timestamp, now });
        }
        if timestamp.saturating_sub(now) > self.tolerance_secs {
            return Err(StandardError::TooNew { timestamp, now });
        }
        Ok(())
    }

    /// Tries every secret against every `v1` entry, without exiting early.
    fn match_signature(
        &self,
        msg_id: &str,
        timestamp: i64,
        header: &str,
        body: &[u8],
    ) -> Result<usize, StandardError> {
        let mut matched = None;
        let mut saw_v1 = false;
        for (index, key) in self.keys.iter().enumerate() {
            let expected = tag(key, msg_id, timestamp, body);
            for candidate in v1_entries(header) {
                saw_v1 = true;
                let ok: bool = expected.ct_eq(&candidate).into();
                if ok && matched.is_none() {
                    matched = Some(index);
                }
            }
        }
        if !saw_v1 {
            return Err(malformed(
                SIGNATURE_HEADER,
                "it has no `v1,<base64 of 32 bytes>` entry",
            ));
        }
        matched.ok_or(StandardError::Mismatch)
    }
}

impl fmt::Debug for StandardVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardVerifier")
            .field("secrets", &format_args!("{} × [redacted]", self.keys.len()))
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

/// The decoded tags of the well-formed `v1` entries; other entries are skipped.
fn v1_entries(header: &str) -> impl Iterator<Item = [u8; TAG_LEN]> + '_ {
    header.split_ascii_whitespace().filter_map(|entry| {
        let encoded = entry.strip_prefix(VERSION_PREFIX)?;
        let mut tag = [0u8; TAG_LEN];
        match BASE64.decode_slice(encoded, &mut tag) {
            Ok(TAG_LEN) => Some(tag),
            _ => None,
        }
    })
}

/// Parses `webhook-timestamp`: optional surrounding ASCII whitespace, then the
/// decimal Unix time in seconds.
fn parse_timestamp(header: &str) -> Result<i64, StandardError> {
    let digits = header.trim_ascii();
    if digits.is_empty() {
        return Err(malformed(TIMESTAMP_HEADER, "it is empty"));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(
            TIMESTAMP_HEADER,
            "it is not whole Unix seconds in decimal digits",
        ));
    }
    digits
        .parse()
        .map_err(|_| malformed(TIMESTAMP_HEADER, "it is too large to be a Unix time"))
}

fn malformed(header: &'static str, reason: &'static str) -> StandardError {
    StandardError::Malformed { header, reason }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The system clock in Unix seconds (negative before 1970, saturating far out).
fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => secs(since),
        Err(before) => secs(before.duration()).saturating_neg(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Signer;

    // The "sign function works" vector of the Standard Webhooks JavaScript library:
    // standard-webhooks/standard-webhooks, libraries/javascript/src/webhook.test.ts.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret(s: &str) -> Secret {
        Secret::parse(s).expect("valid test secret")
    }

    fn verifier(secrets: &[&str]) -> StandardVerifier {
        StandardVerifier::new(secrets.iter().map(|s| secret(s))).expect("at least one secret")
    }

    fn check(
        v: &StandardVerifier,
        ts: &str,
        sig: &str,
        now: i64,
    ) -> Result<StandardVerified, StandardError> {
        v.verify_at(Some(MSG_ID), Some(ts), Some(sig), PAYLOAD, now)
    }

    #[test]
    fn standard_webhooks_known_answer() {
        assert_eq!(
            sign_standard(&secret(SECRET), MSG_ID, TIMESTAMP, PAYLOAD),
            EXPECTED
        );
        assert_eq!(
            Signer::new(&secret(SECRET)).sign_standard(MSG_ID, TIMESTAMP, PAYLOAD),
            EXPECTED
        );
        let verified = check(&verifier(&[SECRET]), "1614265330", EXPECTED, TIMESTAMP);
        assert_eq!(
            verified,
            Ok(StandardVerified {
                secret_index: 0,
                timestamp: TIMESTAMP
            })
        );
    }

    /// Without the `whsec_` prefix the key is the UTF-8 bytes (documented in
    /// docs/protocol.md), unlike the Standard Webhooks libraries, which base64-decode.
    #[test]
    fn unprefixed_secret_keys_with_its_utf8_bytes() {
        let plain = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let signed = sign_standard(&secret(plain), MSG_ID, TIMESTAMP, PAYLOAD);
        assert_ne!(signed, EXPECTED);
        let expected_tag = tag(&keyed(plain.as_bytes()), MSG_ID, TIMESTAMP, PAYLOAD);
        assert_eq!(signed, encode_v1(&expected_tag));
    }

    /// The library's "multi sig payload is valid" case: other versions and stale
    /// entries around the valid one.
    #[test]
    fn any_matching_v1_entry_verifies() {
        let stale = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let v2 = "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let header = format!("{stale} {v2}  {EXPECTED} {stale}");
        assert!(check(&verifier(&[SECRET]), "1614265330", &header, TIMESTAMP).is_ok());
        assert_eq!(
            check(
                &verifier(&[SECRET]),
                "1614265330",
                &format!("{stale} {v2}"),
                TIMESTAMP
            ),
            Err(StandardError::Mismatch)
        );
    }

    #[test]
    fn rotation_reports_which_secret_matched() {
        let v = verifier(&["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", SECRET]);
        assert_eq!(
            check(&v, "1614265330", EXPECTED, TIMESTAMP).map(|ok| ok.secret_index),
            Ok(1)
        );
    }

    #[test]
    fn tolerance_applies_both_ways() {
        let v = verifier(&[SECRET]);
        let ts = "1614265330";
        assert!(check(&v, ts, EXPECTED, TIMESTAMP + 300).is_ok());
        assert!(check(&v, ts, EXPECTED, TIMESTAMP - 300).is_ok());
        let old = check(&v, ts, EXPECTED, TIMESTAMP + 301);
        assert_eq!(
            old,
            Err(StandardError::TooOld {
                timestamp: TIMESTAMP,
                now: TIMESTAMP + 301
            })
        );
        let new = check(&v, ts, EXPECTED, TIMESTAMP - 301);
        assert_eq!(
            new,
            Err(StandardError::TooNew {
                timestamp: TIMESTAMP,
                now: TIMESTAMP - 301
            })
        );
        let tight = v.with_tolerance(Duration::from_secs(10));
        assert!(check(&tight, ts, EXPECTED, TIMESTAMP + 10).is_ok());
        assert!(matches!(
            check(&tight, ts, EXPECTED, TIMESTAMP + 11),
            Err(StandardError::TooOld { .. })
        ));
    }

    #[test]
    fn extreme_clocks_do_not_panic() {
        let v = verifier(&[SECRET]).with_tolerance(Duration::MAX);
        assert!(check(&v, "1614265330", EXPECTED, i64::MIN).is_ok());
        assert!(check(&v, "9223372036854775807", EXPECTED, i64::MIN).is_err());
        assert!(check(&verifier(&[SECRET]), "0", EXPECTED, i64::MAX).is_err());
    }

    #[test]
    fn missing_headers_are_named() {
        let v = verifier(&[SECRET]);
        let ts = Some("1614265330");
        let missing = |id, ts, sig| v.verify_at(id, ts, sig, PAYLOAD, TIMESTAMP);
        assert_eq!(
            missing(None, ts, Some(EXPECTED)),
            Err(StandardError::MissingHeader(ID_HEADER))
        );
        assert_eq!(
            missing(Some(MSG_ID), None, Some(EXPECTED)),
            Err(StandardError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            missing(Some(MSG_ID), ts, None),
            Err(StandardError::MissingHeader(SIGNATURE_HEADER))
        );
        assert!(matches!(
            missing(Some(" "), ts, Some(EXPECTED)),
            Err(StandardError::Malformed {
                header: ID_HEADER,
                ..
            })
        ));
    }

    #[test]
    fn malformed_timestamps_are_rejected() {
        let v = verifier(&[SECRET]);
        for ts in [
            "",
            "hello",
            "-5",
            "+1614265330",
            "1614265330.0",
            "99999999999999999999",
        ] {
            let result = check(&v, ts, EXPECTED, TIMESTAMP);
            assert!(
                matches!(
                    result,
                    Err(StandardError::Malformed {
                        header: TIMESTAMP_HEADER,
                        ..
                    })
                ),
                "{ts:?}: {result:?}"
            );
        }
        assert!(check(&v, " 1614265330\t", EXPECTED, TIMESTAMP).is_ok());
    }

    /// The library's "invalid signature" and "partial signature" cases, and more.
    #[test]
    fn signature_headers_without_a_usable_v1_entry_are_malformed() {
        let v = verifier(&[SECRET]);
        let truncated = &EXPECTED[..EXPECTED.len() - 4];
        let unpadded = EXPECTED.trim_end_matches('=');
        for sig in [
            "",
            "v1,dawfeoifkpqwoekfpqoekf",
            &EXPECTED[..8],
            "v1,",
            "v2,abc",
            truncated,
            unpadded,
            "v1 g0hM9SsE",
        ] {
            let result = check(&v, "1614265330", sig, TIMESTAMP);
            assert!(
                matches!(
                    result,
                    Err(StandardError::Malformed {
                        header: SIGNATURE_HEADER,
                        ..
                    })
                ),
                "{sig:?}: {result:?}"
            );
        }
    }

    #[test]
    fn changed_content_does_not_verify() {
        let v = verifier(&[SECRET]);
        let at = |id, ts, body| v.verify_at(Some(id), Some(ts), Some(EXPECTED), body, TIMESTAMP);
        assert_eq!(
            at(MSG_ID, "1614265330", b"{\"test\": 2432232315}"),
            Err(StandardError::Mismatch)
        );
        assert_eq!(
            at("msg_other", "1614265330", PAYLOAD),
            Err(StandardError::Mismatch)
        );
        assert_eq!(
            at(MSG_ID, "1614265331", PAYLOAD),
            Err(StandardError::Mismatch)
        );
        assert_eq!(
            at(MSG_ID, "01614265330", PAYLOAD).map(|ok| ok.timestamp),
            Ok(TIMESTAMP)
        );
    }

    #[test]
    fn decimal_formats_every_i64() {
        let mut buf = [0u8; MAX_I64_DIGITS];
        for n in [0, 7, -1, 1614265330, i64::MAX, i64::MIN] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn debug_is_redacted() {
        let shown = format!("{:?}", verifier(&["hunter2"]));
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("300"), "{shown}");
    }
}
