//! Verify Fullup webhooks in axum and tower services, before any byte is parsed.
//!
//! Receivers go wrong in the same few ways: they verify a re-serialized body instead of
//! the bytes that were signed, compare signatures with `==`, read unbounded bodies, or
//! answer 500 when the header is missing. This crate makes the right way the short way:
//!
//! - [`Verified<T>`] is an axum extractor for `T` = [`Bytes`](bytes::Bytes), [`String`]
//!   or [`Json<U>`](axum::Json). It reads at most [`VerifyConfig::body_limit`] bytes,
//!   checks `fullup-signature` and the Standard Webhooks headers (required by default,
//!   so a captured delivery cannot be replayed without them) against those exact bytes
//!   in constant time, and only then decodes them.
//! - [`VerifyLayer`] does the same for any tower service: the inner service receives the
//!   verified bytes as its body and a [`DeliveryInfo`] in the request extensions.
//! - Every failure is a [`Rejection`] answered as
//!   `{"error": {"code": "...", "message": "..."}}` with a precise status code.
//!
//! ```no_run
//! use axum::{Json, Router, routing::post};
//! use fullup_axum::{Verified, VerifyConfig};
//! use fullup_axum::Secret;
//!
//! async fn webhook(Verified { body: Json(event), .. }: Verified<Json<serde_json::Value>>) {
//!     println!("verified event {}", event["type"]);
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = VerifyConfig::new([Secret::parse("your_shared_secret_key")?])?;
//! let app: Router = Router::new()
//!     .route("/webhook-endpoint", post(webhook))
//!     .with_state(config);
//! # Ok(())
//! # }
//! ```

mod body;
mod config;
mod extract;
mod layer;
mod rejection;

/// Compiles the README's example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use body::{FromVerifiedBody, read_body};
pub use config::{DeliveryInfo, Timestamped, VerifyConfig};
pub use extract::Verified;
/// The secret type [`VerifyConfig::new`] takes, re-exported so a receiver needs one
/// dependency.
pub use fullup_signature::Secret;
/// The `webhook-id` memory that refuses a copy of a delivery within the tolerance
/// window, re-exported from `fullup-signature`.
pub use fullup_signature::{Seen, SeenIds};
pub use layer::{VerifyLayer, VerifyService};
pub use rejection::Rejection;
