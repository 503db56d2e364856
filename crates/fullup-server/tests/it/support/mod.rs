//! Test harness: the real service on port 0, on SQLite or PostgreSQL (`Backend`,
//! `store_test!`), and real receivers on port 0.

pub mod backend;
pub mod postgres;
pub mod receiver;
pub mod records;
pub mod server;
pub mod stores;
pub mod time;

pub use backend::Backend;
pub(crate) use backend::store_test;
pub use receiver::{Received, TestReceiver};
pub use server::TestServer;
