//! The Fullup webhook service as a library: management API, durable ingest, signed
//! delivery with retries. The `fullup serve` command is a thin wrapper over
//! [`app::Application`].

pub mod api;
pub mod app;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod domain;
pub mod metrics;
pub mod rekey;
pub mod service;
pub mod store;
