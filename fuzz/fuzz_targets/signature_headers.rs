//! libFuzzer entry point; the property is `fullup_fuzz::signature_headers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fullup_fuzz::signature_headers(data));
