//! libFuzzer entry point; the property is `fullup_fuzz::address`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fullup_fuzz::address(data));
