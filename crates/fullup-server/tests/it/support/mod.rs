//! Test harness: the real service on port 0 and real receivers on port 0.

pub mod postgres;
pub mod receiver;
pub mod server;
pub mod stores;
pub mod time;

pub use receiver::{Received, TestReceiver};
pub use server::TestServer;
