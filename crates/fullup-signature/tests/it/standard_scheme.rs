//! Properties of the Standard Webhooks scheme (`webhook-*` headers).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use fullup_signature::standard::{StandardError, StandardVerified, StandardVerifier};
use fullup_signature::{Signer, sign_standard};
use proptest::prelude::*;

use crate::strategies::{body, flip, header, secret, three_secrets};

/// Message ids: anything a header can carry that is not blank.
fn msg_id() -> impl Strategy<Value = String> {
    "[!-~][ -~]{0,40}"
}

/// Timestamps from 1970 to far beyond 2100, and a receiver clock within tolerance.
fn times() -> impl Strategy<Value = (i64, i64)> {
    (0..=i64::MAX / 2, -300..=300_i64).prop_map(|(ts, skew)| (ts, ts + skew))
}

fn verify(
    verifier: &StandardVerifier,
    id: &str,
    ts: i64,
    signature: &str,
    body: &[u8],
    now: i64,
) -> Result<StandardVerified, StandardError> {
    verifier.verify_at(Some(id), Some(&ts.to_string()), Some(signature), body, now)
}

proptest! {
    #[test]
    fn sign_then_verify_round_trips(secret in secret(), id in msg_id(), (ts, now) in times(), body in body()) {
        let signature = sign_standard(&secret, &id, ts, &body);
        prop_assert_eq!(&signature, &Signer::new(&secret).sign_standard(&id, ts, &body));
        let verifier = StandardVerifier::new([secret]).expect("one secret");
        let verified = verify(&verifier, &id, ts, &signature, &body, now);
        prop_assert_eq!(verified, Ok(StandardVerified { secret_index: 0, timestamp: ts }));
    }

    #[test]
    fn any_flipped_body_bit_fails(secret in secret(), id in msg_id(), (ts, now) in times(), mut body in body(), index: usize, bit: u8) {
        prop_assume!(!body.is_empty());
        let signature = sign_standard(&secret, &id, ts, &body);
        flip(&mut body, index, bit);
        let verifier = StandardVerifier::new([secret]).expect("one secret");
        prop_assert_eq!(verify(&verifier, &id, ts, &signature, &body, now), Err(StandardError::Mismatch));
    }

    #[test]
    fn any_flipped_signature_bit_fails(secret in secret(), id in msg_id(), (ts, now) in times(), body in body(), index: usize, bit: u8) {
        let signature = sign_standard(&secret, &id, ts, &body);
        let mut tag = BASE64.decode(&signature[3..]).expect("base64 after v1,");
        flip(&mut tag, index, bit);
        let flipped = format!("v1,{}", BASE64.encode(&tag));
        let verifier = StandardVerifier::new([secret]).expect("one secret");
        prop_assert_eq!(verify(&verifier, &id, ts, &flipped, &body, now), Err(StandardError::Mismatch));
    }

    #[test]
    fn arbitrary_headers_never_verify(
        secret in secret(),
        id in any::<Option<String>>(),
        ts in any::<Option<String>>(),
        signature in proptest::option::of(header()),
        body in body(),
        now: i64,
    ) {
        let verifier = StandardVerifier::new([secret]).expect("one secret");
        let result = verifier.verify_at(id.as_deref(), ts.as_deref(), signature.as_deref(), &body, now);
        prop_assert!(result.is_err(), "{:?} {:?} {:?} verified", id, ts, signature);
    }

    #[test]
    fn signature_of_second_secret_reports_index_1(secrets in three_secrets(), id in msg_id(), (ts, now) in times(), body in body()) {
        let signature = sign_standard(&secrets[1], &id, ts, &body);
        let verifier = StandardVerifier::new(secrets).expect("three secrets");
        let verified = verify(&verifier, &id, ts, &signature, &body, now);
        prop_assert_eq!(verified, Ok(StandardVerified { secret_index: 1, timestamp: ts }));
    }
}
