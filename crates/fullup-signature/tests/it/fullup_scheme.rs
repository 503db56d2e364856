//! Properties of the fullup scheme (`fullup-signature` header).

use fullup_signature::{Signer, Verified, Verifier, VerifyError, sign};
use proptest::prelude::*;

use crate::strategies::{body, flip, header, secret, three_secrets};

proptest! {
    #[test]
    fn sign_then_verify_round_trips(secret in secret(), body in body()) {
        let header = sign(&secret, &body).to_hex();
        prop_assert_eq!(&header, &Signer::new(&secret).sign(&body).to_string());
        let verifier = Verifier::new([secret]).expect("one secret");
        prop_assert_eq!(verifier.verify(Some(&header), &body), Ok(Verified { secret_index: 0 }));
    }

    #[test]
    fn any_flipped_body_bit_fails(secret in secret(), mut body in body(), index: usize, bit: u8) {
        prop_assume!(!body.is_empty());
        let header = sign(&secret, &body).to_hex();
        flip(&mut body, index, bit);
        let verifier = Verifier::new([secret]).expect("one secret");
        prop_assert_eq!(verifier.verify(Some(&header), &body), Err(VerifyError::Mismatch));
    }

    #[test]
    fn any_flipped_signature_bit_fails(secret in secret(), body in body(), index: usize, bit: u8) {
        let mut tag = *sign(&secret, &body).as_bytes();
        flip(&mut tag, index, bit);
        let verifier = Verifier::new([secret]).expect("one secret");
        let header = hex::encode(tag);
        prop_assert_eq!(verifier.verify(Some(&header), &body), Err(VerifyError::Mismatch));
    }

    #[test]
    fn arbitrary_headers_never_verify(secret in secret(), header in header(), body in body()) {
        let verifier = Verifier::new([secret]).expect("one secret");
        let result = verifier.verify(Some(&header), &body);
        prop_assert!(result.is_err(), "{:?} verified", header);
    }

    #[test]
    fn signature_of_second_secret_reports_index_1(secrets in three_secrets(), body in body()) {
        let header = sign(&secrets[1], &body).to_hex();
        let verifier = Verifier::new(secrets).expect("three secrets");
        prop_assert_eq!(verifier.verify(Some(&header), &body), Ok(Verified { secret_index: 1 }));
    }
}
