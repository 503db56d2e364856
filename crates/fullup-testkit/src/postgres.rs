//! A throwaway PostgreSQL database per test, on the server `FULLUP_TEST_POSTGRES_URL`
//! names (default: the local one), dropped when the test ends, passed or failed.
//!
//! PostgreSQL unreachable: in CI the test fails; elsewhere it prints a notice and is
//! skipped ([`crate::require`]).

use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// The variable naming the server (and a database to connect to for CREATE DATABASE).
pub const URL_ENV: &str = "FULLUP_TEST_POSTGRES_URL";
/// The machine's PostgreSQL: trust authentication on 127.0.0.1.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// A reachable server answers at once; this only bounds a server that never does.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A database created for one test; dropped (with its connections) on drop.
pub struct TestDatabase {
    /// The database's URL.
    pub url: String,
    /// Its name (`fullup_…`).
    pub name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates a fresh database, or returns None (after a notice) when PostgreSQL is
    /// unreachable outside CI.
    pub async fn create(test_name: &str) -> Option<Self> {
        let admin_url = std::env::var(URL_ENV).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let mut admin = match connect(&admin_url).await {
            Ok(conn) => conn,
            Err(err) => {
                crate::require(
                    false,
                    &format!("PostgreSQL at {admin_url} is unreachable ({err}); set {URL_ENV}"),
                    test_name,
                );
                return None;
            }
        };
        let name = format!("fullup_{:016x}", rand::random::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("a PostgreSQL URL");
        url.set_path(&format!("/{name}"));
        Some(Self {
            url: url.to_string(),
            name,
            admin_url,
        })
    }

    /// A connection to this database, for checks the API does not offer.
    pub async fn connect(&self) -> PgConnection {
        connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// A connection to the server's admin database, for what cannot be done from
    /// inside this one (denying connections to it).
    pub async fn connect_admin(&self) -> PgConnection {
        connect(&self.admin_url)
            .await
            .expect("connect to the admin database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on its own futures:
        // a short-lived thread with its own runtime drops the database (FORCE ends the
        // connections a failed test left open).
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut admin = connect(&admin_url).await?;
                sqlx::query(&sql).execute(&mut admin).await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect(url))
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
}
