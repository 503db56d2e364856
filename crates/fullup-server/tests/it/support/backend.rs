//! One test body, every store: [`Backend`] starts the real service on SQLite or on
//! PostgreSQL, and `store_test!` runs a body once on each, as ripgrep's `rgtest!` runs
//! each test on both regex engines.
//!
//! The service relies on what both stores promise alike (ordering, filters,
//! idempotency, leases, a webhook's health); a test of that promise written once and run
//! twice shows where PostgreSQL and SQLite part.

use std::sync::Arc;

use fullup_server::config::Config;
use fullup_server::crypto::MainKey;

use super::TestServer;
use super::postgres::{TestDatabase, TestStore};

/// The store a test server runs on.
pub enum Backend {
    /// A SQLite file in the server's temporary folder.
    Sqlite,
    /// A throwaway PostgreSQL database (`support::postgres`), with the main key its
    /// secrets are sealed under; the server keeps it and drops it after it stops.
    Postgres(TestStore),
}

impl Backend {
    /// A fresh PostgreSQL database for `test` (its full name), or None after a notice
    /// when PostgreSQL is unreachable outside CI (in CI: a panic).
    pub async fn postgres(test: &str) -> Option<Self> {
        Some(Self::Postgres(TestStore {
            db: TestDatabase::create(test).await?,
            key: MainKey::generate(),
        }))
    }

    /// Starts the service on this store with the default test settings.
    pub async fn start(self) -> TestServer {
        self.start_with(|_| {}).await
    }

    /// Starts the service on this store with the test settings changed by `tweak`
    /// (applied after the store's own, so clock, schedule and timeouts hold on both).
    pub async fn start_with(self, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let store = match self {
            Self::Sqlite => None,
            Self::Postgres(store) => Some(store),
        };
        TestServer::start_on(dir, store, tweak).await
    }
}

/// Runs the async fn `name(backend: Backend)` that follows it once per store:
/// `store_test!(name);` defines a module `name` holding the tests `sqlite` and
/// `postgres` (so `cargo test` lists `…::name::sqlite` and `…::name::postgres`), each
/// calling `name` with its [`Backend`], which the body starts its server on
/// (`backend.start().await`). When PostgreSQL is unreachable outside CI, `postgres`
/// prints a notice and returns before the body runs.
///
/// The body is an ordinary fn, so rustfmt formats it and its doc comment stays one.
/// `store_test!(name, ignore_on_postgres = "reason");` marks the PostgreSQL run
/// `#[ignore]`, for a known difference of that store while it is being fixed.
macro_rules! store_test {
    ($name:ident $(, ignore_on_postgres = $reason:literal)?) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await;
            }

            #[tokio::test]
            $(#[ignore = $reason])?
            async fn postgres() {
                let test = concat!(module_path!(), "::postgres");
                if let Some(backend) = $crate::support::Backend::postgres(test).await {
                    super::$name(backend).await;
                }
            }
        }
    };
}
pub(crate) use store_test;
