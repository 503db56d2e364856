//! Getting events to receivers: the dispatcher claims due deliveries and runs attempts;
//! the sender makes one signed HTTP request and reports what happened.

pub mod dispatcher;
pub mod sender;
