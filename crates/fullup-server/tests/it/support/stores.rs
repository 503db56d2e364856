//! The store itself, for tests below the API that run on both stores with
//! [`super::backend::store_test`]: the same SQLite file or PostgreSQL database a
//! [`super::Backend`] would start the service on.

use std::sync::Arc;

use fullup_server::crypto::MainKey;
use fullup_server::store::Store;

use super::Backend;
use super::postgres::TestDatabase;

/// An open store and what keeps its database alive (its folder, or its PostgreSQL
/// database, dropped with this).
pub struct OpenStore {
    /// The store.
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

impl Backend {
    /// Opens this backend's store directly, without a service around it.
    pub async fn open_store(self) -> OpenStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, key, db) = match self {
            Self::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("store.db").display());
                (url, MainKey::generate(), None)
            }
            Self::Postgres(test) => (test.db.url.clone(), test.key, Some(test.db)),
        };
        let store = fullup_server::store::open(&url, key)
            .await
            .expect("open the store");
        OpenStore {
            store,
            _dir: Some(dir),
            _db: db,
        }
    }
}
