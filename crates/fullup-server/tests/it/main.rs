//! Integration tests of the fullup-server library.

mod api;
mod canonical_json;
mod delivery;
mod leaks;
mod limits;
mod openapi;
mod retries;
mod rotation;
mod secrets;
mod seed;
mod ssrf;
mod support;
