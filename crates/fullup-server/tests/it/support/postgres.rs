//! Servers on a throwaway PostgreSQL database per test ([`TestDatabase`], shared with
//! the other crates' tests through `fullup-testkit`).

use std::sync::Arc;

use fullup_server::config::Config;
use fullup_server::crypto::MainKey;
pub use fullup_testkit::postgres::TestDatabase;

use super::TestServer;
use super::server::test_config;

/// The test settings on `db`, sealing under `key`.
pub fn pg_config(db: &TestDatabase, key: &MainKey) -> Config {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(&dir);
    use_database(&mut config, db, key);
    config
}

/// Points `config` at `db`, sealing under `key`.
fn use_database(config: &mut Config, db: &TestDatabase, key: &MainKey) {
    config.database_url = db.url.clone();
    config.main_key = Some(key.clone());
}

/// What a server on PostgreSQL needs to start, and to start again on the same data
/// after a restart: the database and the main key its secrets are sealed under.
pub struct TestStore {
    /// The throwaway database; dropped with this.
    pub db: TestDatabase,
    /// The main key: PostgreSQL has no key file beside it, so every start names it.
    pub key: MainKey,
}

impl TestStore {
    /// Points `config` at this database and key.
    pub fn apply(&self, config: &mut Config) {
        use_database(config, &self.db, &self.key);
    }
}

/// A node of the service on `db` with `config` (see [`pg_config`]).
pub async fn start_node(config: Config) -> TestServer {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    TestServer::start_in(dir, config).await
}
