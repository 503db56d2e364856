//! The verify path allocates nothing: receivers call it on every request, and an
//! allocator-free path also cannot fail on allocation. `allocation-counter` counts the
//! allocations of the current thread while a closure runs.

use fullup_signature::{Secret, Verifier, sign};

#[test]
fn verify_allocates_nothing_on_success_mismatch_or_malformed_input() {
    let secrets: Vec<Secret> = ["first-secret", "second-secret", "third-secret"]
        .iter()
        .map(|s| Secret::parse(s).expect("valid"))
        .collect();
    let body = br#"{"id":"evt_1","type":"form.submitted","data":{"a":1}}"#;
    let good = sign(&secrets[2], body).to_string();
    let wrong = sign(&Secret::parse("another-secret").expect("valid"), body).to_string();
    let padded = format!("  {}  ", good.to_uppercase());
    let verifier = Verifier::new(secrets).expect("secrets");

    let counted = allocation_counter::measure(|| {
        assert!(verifier.verify(Some(&good), body).is_ok());
        assert!(verifier.verify(Some(&padded), body).is_ok());
        assert!(verifier.verify(Some(&wrong), body).is_err());
        assert!(verifier.verify(Some("zz"), body).is_err());
        assert!(verifier.verify(None, body).is_err());
    });
    assert_eq!(counted.count_total, 0, "verify allocated: {counted:?}");

    // The counter works: the same check around an allocating call sees it.
    let control = allocation_counter::measure(|| {
        let _ = std::hint::black_box(good.clone());
    });
    assert!(control.count_total > 0);
}
