//! Integration tests of the fullup-server library.

mod api;
mod canonical_json;
mod console;
mod contract;
mod delivery;
mod fairness;
mod hand_off;
mod isolation;
mod leaks;
mod limits;
mod metrics;
mod openapi;
mod operational;
mod postgres;
mod readiness;
mod response_body;
mod retries;
mod rotation;
mod secrets;
mod seed;
mod slow_clients;
mod sqlite_lock;
mod ssrf;
mod storage_faults;
mod streaks;
mod support;
