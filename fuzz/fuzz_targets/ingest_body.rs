//! libFuzzer entry point; the property is `fullup_fuzz::ingest_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fullup_fuzz::ingest_body(data));
