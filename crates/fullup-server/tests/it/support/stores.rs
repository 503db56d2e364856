//! The two stores, for tests that run one body on each ([`crate::store_tests!`], after
//! ripgrep's `rgtest!`): a SQLite file in a temporary folder, or a throwaway PostgreSQL
//! database ([`super::postgres::TestDatabase`]).

use std::sync::Arc;

use fullup_server::crypto::MainKey;
use fullup_server::store::Store;

use super::postgres::TestDatabase;

/// Which store a test body runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded store.
    Sqlite,
    /// The shared store, on the machine's PostgreSQL server.
    Postgres,
}

/// What keeps a test's database alive: its folder or its PostgreSQL database.
pub struct Keep {
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

/// Opens a fresh store of `backend`; None (after a notice) when PostgreSQL is
/// unreachable outside CI.
pub async fn open_store(backend: Backend, test_name: &str) -> Option<(Arc<dyn Store>, Keep)> {
    let (url, keep) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("store.db").display());
            (
                url,
                Keep {
                    _dir: Some(dir),
                    _db: None,
                },
            )
        }
        Backend::Postgres => {
            let db = TestDatabase::create(test_name).await?;
            (
                db.url.clone(),
                Keep {
                    _dir: None,
                    _db: Some(db),
                },
            )
        }
    };
    let store = fullup_server::store::open(&url, MainKey::generate())
        .await
        .expect("open the store");
    Some((store, keep))
}

/// Runs each named `async fn(Backend)` of the calling module on both stores: a module
/// per function, with tests `sqlite` and `postgres`, so each appears twice in the test
/// output (`streaks::NAME::sqlite`, `streaks::NAME::postgres`).
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::support::stores::Backend::Sqlite).await;
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::support::stores::Backend::Postgres).await;
                }
            }
        )+
    };
}
