//! A SQLite database serves one process: its leases live in that process's memory.

use fullup_server::crypto::MainKey;
use fullup_server::store::sqlite::SqliteStore;
use fullup_server::store::{Store, StoreError};

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("one.db").display());
    let key = MainKey::generate();
    let first = SqliteStore::open(&url, key.clone()).await.expect("first");

    let err = SqliteStore::open(&url, key.clone())
        .await
        .expect_err("a second store on the same file");
    assert!(matches!(err, StoreError::InUse(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("one.db.lock") && message.contains("PostgreSQL"),
        "the error names the lock and the way out: {message}"
    );

    first.close().await;
    let again = SqliteStore::open(&url, key).await.expect("after close");
    again.close().await;
}
