//! Getting events to receivers: the dispatcher claims due deliveries and runs attempts;
//! the sender makes one signed HTTP request and reports what happened; the guard decides
//! which destinations may be reached at all.

pub mod dispatcher;
pub mod guard;
pub mod sender;
pub mod ssrf;
