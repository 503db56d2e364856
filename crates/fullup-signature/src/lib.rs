//! Sign and verify Fullup webhooks.
//!
//! Every delivery carries two independent signatures over the exact body bytes:
//!
//! - `fullup-signature`: lowercase hex HMAC-SHA256 of the body, keyed with the secret
//!   string's UTF-8 bytes ([`sign`], [`Signer`], [`Verifier`]);
//! - the Standard Webhooks headers `webhook-id`, `webhook-timestamp` and
//!   `webhook-signature`, which add replay protection ([`standard`]), and
//!   [`SeenIds`] to refuse copies of a delivery within the tolerance window.
//!
//! This crate is what a receiver adds to its `Cargo.toml`, so it stays small (no async
//! runtime, no HTTP types), never panics on anything a network sends, compares tags in
//! constant time and pays the HMAC keying cost once per secret. The wire format is
//! specified in `docs/protocol.md`.
//!
//! ```
//! use fullup_signature::{Secret, Verifier, sign};
//!
//! let secret: Secret = "It's a Secret to Everybody".parse()?;
//! let header = sign(&secret, b"Hello, World!").to_string();
//! let verifier = Verifier::new([secret])?;
//! assert_eq!(verifier.verify(Some(&header), b"Hello, World!")?.secret_index, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod mac;
mod secret;
mod seen;
mod signature;
pub mod standard;
mod verify;

pub use secret::{SECRET_PREFIX, Secret, SecretError};
pub use seen::{Seen, SeenIds};
pub use signature::{Signature, Signer, sign};
pub use standard::sign_standard;
pub use verify::{Verified, Verifier, VerifyError};

/// Compiles and runs the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The header carrying the fullup scheme's signature.
pub const SIGNATURE_HEADER: &str = "fullup-signature";
