//! JavaScript-canonical JSON: the exact bytes Node's `JSON.stringify(JSON.parse(body))` returns.
//!
//! Receivers written like the seed's Express example verify the signature over
//! `JSON.stringify(req.body)`, not over the bytes we sent. The two only agree when the body
//! we sign is already what `JSON.stringify` would print: no whitespace, members in
//! JavaScript property order (array-index keys `0..=2^32−2` first and ascending, then the
//! rest in first-insertion order; a duplicated key keeps its first position and last
//! value), strings escaping only `"`, `\` and U+0000–U+001F, and numbers printed as
//! `Number#toString`.
//!
//! The parser is hand-written because `serde_json` (without `arbitrary_precision`) hides
//! number literals: it cannot tell the integer `10^30` from `1e30`, and integer literals
//! outside ±(2^53−1) must be refused with their path, since JavaScript receivers would
//! silently read another number. A fraction or exponent literal that JavaScript would print
//! as such an integer (`1e20`) is refused as well, so that every output stays acceptable. Input a JavaScript receiver would mangle differently
//! from us is refused rather than guessed at: unpaired surrogate escapes (the signed body
//! must be UTF-8), numbers that overflow to infinity (JavaScript would print `null`), and
//! nesting deeper than [`MAX_DEPTH`].
//!
//! [`canonicalize`]'s output is a fixed point: canonicalizing it again returns it unchanged.

mod failure;
mod parse;
mod write;

#[cfg(test)]
mod tests;

use std::fmt;

pub use write::write_js_string;

/// Deepest nesting of arrays and objects accepted; event payloads are far shallower, and
/// the bound keeps the recursive parser and writer within a small, fixed stack.
pub const MAX_DEPTH: usize = 128;

/// Largest integer JavaScript numbers hold exactly (`Number.MAX_SAFE_INTEGER`, 2^53−1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A JSON text in JavaScript-canonical form (see the module docs).
///
/// Only [`canonicalize`] builds one, so holding a `CanonicalJson` means the text is
/// valid UTF-8 JSON and byte-identical to what Node's `JSON.stringify(JSON.parse(text))`
/// returns for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalJson(String);

impl CanonicalJson {
    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The canonical text's UTF-8 bytes, as sent and signed.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Unwraps the canonical text.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Parses `input` as strict RFC 8259 JSON and returns its JavaScript-canonical form.
///
/// # Errors
///
/// Returns a [`CanonicalError`] when `input` is not UTF-8 JSON, or when it holds a value
/// that JavaScript receivers would not read back as sent (see the variants). Paths in
/// errors are relative to the root of `input`; use [`CanonicalError::with_path_prefix`]
/// when `input` is a field of a larger document.
pub fn canonicalize(input: &[u8]) -> Result<CanonicalJson, CanonicalError> {
    let text = std::str::from_utf8(input).map_err(|e| CanonicalError::Syntax {
        offset: e.valid_up_to(),
        message: "input is not valid UTF-8; send JSON encoded as UTF-8".to_owned(),
    })?;
    let value = parse::parse(text)?;
    let mut out = String::with_capacity(text.len());
    write::write_value(&mut out, &value);
    Ok(CanonicalJson(out))
}

/// Why a JSON text cannot be made JavaScript-canonical.
///
/// `path` fields name the offending value relative to the document root in JavaScript
/// accessor form: `order.items[2].amount`, `["content-type"]`, or `""` for the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// The input is not valid UTF-8 or not RFC 8259 JSON; `offset` is a byte offset into it.
    #[error("invalid JSON at byte {offset}: {message}")]
    Syntax {
        /// Byte offset of the problem in the input.
        offset: usize,
        /// What is wrong and what to send instead.
        message: String,
    },
    /// An integer literal outside ±(2^53−1): JavaScript would round it to another number.
    #[error(
        "integer {literal} {} is outside ±(2^53−1) and would change in JavaScript receivers; \
         send it as a string",
        Location(path)
    )]
    UnsafeInteger {
        /// Where the literal is.
        path: String,
        /// The literal as sent.
        literal: String,
    },
    /// A number written with a fraction or exponent whose value JavaScript prints as an
    /// integer outside ±(2^53−1) (`1e20` prints as `100000000000000000000`).
    #[error(
        "number {literal} {} would be sent as the integer {javascript}, outside ±(2^53−1) \
         where JavaScript integers lose precision; send it as a string",
        Location(path)
    )]
    UnsafeIntegerValue {
        /// Where the literal is.
        path: String,
        /// The literal as sent.
        literal: String,
        /// How JavaScript would print it.
        javascript: String,
    },
    /// A number literal too large for a 64-bit float; JavaScript would turn it into `null`.
    #[error(
        "number {literal} {} is too large for a 64-bit float and JavaScript receivers would \
         read null; send it as a string",
        Location(path)
    )]
    NumberOutOfRange {
        /// Where the literal is.
        path: String,
        /// The literal as sent.
        literal: String,
    },
    /// A `\uD800`–`\uDFFF` escape that is not half of a surrogate pair: the body would not
    /// be valid UTF-8.
    #[error(
        "unpaired surrogate escape at byte {offset} ({}{}) cannot be sent as UTF-8; \
         remove it or send a complete surrogate pair",
        if *in_member_name { "in a member name " } else { "in the string " },
        Location(path)
    )]
    LoneSurrogate {
        /// Where the string is; for a member name, the object holding it.
        path: String,
        /// Byte offset of the escape in the input.
        offset: usize,
        /// Whether the escape is in a member name rather than a string value.
        in_member_name: bool,
    },
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    #[error(
        "JSON nesting {} is deeper than {MAX_DEPTH} levels; send a flatter structure",
        Location(path)
    )]
    TooDeep {
        /// The first array or object past the limit.
        path: String,
    },
}

impl CanonicalError {
    /// The path of the offending value, when the error has one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::Syntax { .. } => None,
            Self::UnsafeInteger { path, .. }
            | Self::UnsafeIntegerValue { path, .. }
            | Self::NumberOutOfRange { path, .. }
            | Self::LoneSurrogate { path, .. }
            | Self::TooDeep { path } => Some(path),
        }
    }

    /// Re-roots the error's path under `prefix`, for input that is a field of a larger
    /// document: with prefix `data`, `order.id` becomes `data.order.id`, `[0]` becomes
    /// `data[0]` and the root becomes `data`.
    pub fn with_path_prefix(mut self, prefix: &str) -> Self {
        match &mut self {
            Self::Syntax { .. } => {}
            Self::UnsafeInteger { path, .. }
            | Self::UnsafeIntegerValue { path, .. }
            | Self::NumberOutOfRange { path, .. }
            | Self::LoneSurrogate { path, .. }
            | Self::TooDeep { path } => {
                let separator = if path.is_empty() || path.starts_with('[') {
                    ""
                } else {
                    "."
                };
                *path = format!("{prefix}{separator}{path}");
            }
        }
        self
    }
}

/// Displays a path as "at order.id", or "at the top level" for the root.
struct Location<'a>(&'a str);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("at the top level")
        } else {
            write!(f, "at {}", self.0)
        }
    }
}
