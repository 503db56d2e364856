//! libFuzzer entry point; the property is `fullup_fuzz::canonical_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fullup_fuzz::canonical_json(data));
