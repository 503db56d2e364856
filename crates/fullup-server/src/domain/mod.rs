//! The service's vocabulary: ids, event types and filters, URLs, retry schedule,
//! canonical JSON, the records it keeps, and time.

pub mod canonical_json;
pub mod clock;
pub mod envelope;
pub mod event_type;
pub mod ids;
pub mod models;
pub mod retry;
pub mod rotation;
pub mod webhook_url;
