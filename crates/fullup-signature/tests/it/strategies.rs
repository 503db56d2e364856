//! Input generators shared by the property tests.

use fullup_signature::Secret;
use proptest::prelude::*;

/// Any usable secret: arbitrary Unicode strings that `Secret::parse` accepts, plus
/// generated `whsec_` secrets (which key the standard scheme with decoded bytes).
pub fn secret() -> impl Strategy<Value = Secret> {
    prop_oneof![
        any::<String>().prop_filter_map("not a usable secret", |s| Secret::parse(&s).ok()),
        Just(()).prop_map(|()| Secret::generate()),
    ]
}

/// Three pairwise different secrets.
pub fn three_secrets() -> impl Strategy<Value = [Secret; 3]> {
    (secret(), secret(), secret())
        .prop_filter("secrets must differ", |(a, b, c)| {
            a != b && b != c && a != c
        })
        .prop_map(|(a, b, c)| [a, b, c])
}

/// Bodies of any bytes, including empty and non-UTF-8 ones.
pub fn body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..2048)
}

/// Header values: arbitrary strings, and strings close to valid ones.
pub fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F]{60,68}",
        "[ \t]{0,3}[0-9a-fA-FxX=,v]{0,70}[ \t\r\n]{0,3}",
        "(v[0-9],[A-Za-z0-9+/=]{0,48} ?){0,4}",
    ]
}

/// Flips bit `bit % 8` of byte `index % len` (no-op on an empty slice).
pub fn flip(bytes: &mut [u8], index: usize, bit: u8) {
    if !bytes.is_empty() {
        let len = bytes.len();
        bytes[index % len] ^= 1 << (bit % 8);
    }
}
