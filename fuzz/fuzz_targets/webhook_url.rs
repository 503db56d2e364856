//! libFuzzer entry point; the property is `fullup_fuzz::webhook_url`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fullup_fuzz::webhook_url(data));
