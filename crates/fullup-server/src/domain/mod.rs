//! The service's vocabulary: ids, event types and filters, URLs, time, retry schedule,
//! canonical JSON, the records it keeps, and the pure rules both stores apply (an
//! event's targets, what an attempt does to its delivery and its webhook's health, a
//! throttle's slots, the order of an ordered webhook's deliveries).
//!
//! Nothing here does I/O, and no file imports one that imports it back.

pub mod canonical_json;
pub mod catalog;
pub mod clock;
pub mod envelope;
pub mod event_type;
pub mod fairness;
pub mod headers;
pub mod health;
pub mod ids;
pub mod models;
pub mod operational;
pub mod ordering;
pub mod outcome;
pub mod retention;
pub mod retry;
pub mod throttle;
pub mod time;
pub mod webhook;
pub mod webhook_url;
