//! Integration tests of the fullup-server library.

mod api;
mod canonical_json;
mod delivery;
mod openapi;
mod retries;
mod seed;
mod ssrf;
mod support;
