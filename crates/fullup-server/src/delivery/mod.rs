//! Getting events to receivers: the dispatcher claims due deliveries (or takes fresh ones
//! from ingest through its inbox) and runs attempts;
//! the sender makes one signed HTTP request and reports what happened; the guard decides
//! which destinations may be reached at all.

mod config;
pub mod dispatcher;
pub mod guard;
pub mod inbox;
pub mod sender;
pub mod ssrf;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_DISABLE_AFTER, DEFAULT_PER_SITE_CONCURRENCY,
    DEFAULT_PER_WEBHOOK_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT, DEFAULT_WORKERS, DeliveryConfig,
};
