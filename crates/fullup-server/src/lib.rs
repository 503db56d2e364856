//! The Fullup webhook service as a library: management API, durable ingest, signed
//! delivery with retries. The `fullup serve` command is a thin wrapper over
//! [`app::Application`].

pub mod api;
pub mod app;
pub mod config;
pub mod console;
pub mod crypto;
pub mod delivery;
pub mod domain;
pub mod metrics;
pub mod rekey;
pub mod service;
pub mod store;
pub mod tokens;

/// `err` and its causes, `: `-separated, for a log line: a store error's own message
/// is opaque ("database error"); its cause says what failed.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
