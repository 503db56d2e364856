//! An ingest that fails after its event row is written stores nothing of the event
//! (issue 17, item 11): the event row, its deliveries and its idempotency key are one
//! transaction, so a client told "error" can send the same request again and get exactly
//! one event.
//!
//! The fault is real, not simulated: the test adds a trigger to the service's own
//! database that raises on every insert into `deliveries`, which the ingest transaction
//! runs after inserting the event row. SQLite and PostgreSQL alike.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::server::ADMIN_TOKEN;
use crate::support::{Backend, TestReceiver, TestServer, store_test};

/// What the trigger raises; the client must not see it (internal errors are opaque).
const FORCED: &str = "forced failure after the event row";

/// Where a trigger can be added to the server's database.
enum Database {
    Sqlite(String),
    Postgres(String),
}

impl Database {
    /// Starts the service on `backend`; the server and where its database is.
    async fn start(backend: Backend) -> (TestServer, Self) {
        let postgres = match &backend {
            Backend::Sqlite => None,
            Backend::Postgres(store) => Some(store.db.url.clone()),
        };
        let server = backend.start().await;
        let database = match postgres {
            Some(url) => Self::Postgres(url),
            None => Self::Sqlite(format!(
                "sqlite://{}",
                server.dir.path().join("fullup.db").display()
            )),
        };
        (server, database)
    }

    /// Runs `statements` one by one on a connection of its own.
    async fn execute(&self, statements: &[&str]) {
        use sqlx::Connection as _;
        match self {
            Self::Sqlite(url) => {
                let mut conn = sqlx::SqliteConnection::connect(url)
                    .await
                    .expect("open the service's SQLite file");
                for sql in statements {
                    sqlx::query(sql).execute(&mut conn).await.expect(sql);
                }
            }
            Self::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url)
                    .await
                    .expect("connect to the service's database");
                for sql in statements {
                    sqlx::query(sql).execute(&mut conn).await.expect(sql);
                }
            }
        }
    }

    /// Makes every insert into `deliveries` fail.
    async fn break_deliveries(&self) {
        match self {
            Self::Sqlite(_) => {
                self.execute(&[&format!(
                    "CREATE TRIGGER forced_failure BEFORE INSERT ON deliveries \
                     BEGIN SELECT RAISE(ABORT, '{FORCED}'); END"
                )])
                .await;
            }
            Self::Postgres(_) => {
                self.execute(&[
                    &format!(
                        "CREATE FUNCTION forced_failure() RETURNS trigger LANGUAGE plpgsql \
                         AS $$ BEGIN RAISE EXCEPTION '{FORCED}'; END $$"
                    ),
                    "CREATE TRIGGER forced_failure BEFORE INSERT ON deliveries \
                     FOR EACH ROW EXECUTE FUNCTION forced_failure()",
                ])
                .await;
            }
        }
    }

    /// Removes what [`Self::break_deliveries`] added.
    async fn repair_deliveries(&self) {
        match self {
            Self::Sqlite(_) => self.execute(&["DROP TRIGGER forced_failure"]).await,
            Self::Postgres(_) => {
                self.execute(&[
                    "DROP TRIGGER forced_failure ON deliveries",
                    "DROP FUNCTION forced_failure()",
                ])
                .await;
            }
        }
    }
}

/// Sends an event with an idempotency key; its status and JSON answer.
async fn ingest(server: &TestServer, site: &str, key: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/sites/{site}/events", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("idempotency-key", key)
        .json(&json!({"type": "form.submitted", "data": {"key": key}}))
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

async fn events(server: &TestServer, site: &str) -> Vec<Value> {
    let (status, body) = server
        .call(Method::GET, &format!("/v1/sites/{site}/events"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().expect("data").clone()
}

store_test!(a_failure_after_the_event_row_stores_nothing_of_the_event);
async fn a_failure_after_the_event_row_stores_nothing_of_the_event(backend: Backend) {
    let (server, database) = Database::start(backend).await;
    let site = server.create_site().await;
    let mut receiver = TestReceiver::start().await;
    server.create_webhook(&site, &receiver.url(), &["*"]).await;
    database.break_deliveries().await;

    let (status, body) = ingest(&server, &site, "evt-forced").await;
    assert_eq!(
        status, 500,
        "a failed ingest is an error, not a 202: {body}"
    );
    assert_eq!(body["error"]["code"], "internal", "{body}");
    assert!(
        !body.to_string().contains(FORCED),
        "the cause is logged, not shown: {body}"
    );
    assert_eq!(
        events(&server, &site).await,
        Vec::<Value>::new(),
        "no event row"
    );
    assert_eq!(
        server.deliveries(&site, "").await,
        Vec::<Value>::new(),
        "no delivery"
    );

    // Nothing was kept, not even the idempotency key: the same request now makes the
    // event, once, and it is delivered.
    database.repair_deliveries().await;
    let (status, body) = ingest(&server, &site, "evt-forced").await;
    assert_eq!(status, 202, "{body}");
    let event = body["id"].as_str().expect("event id").to_owned();
    let stored = events(&server, &site).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["id"], event.as_str());
    let delivered = receiver.next(std::time::Duration::from_secs(10)).await;
    assert_eq!(delivered.json()["id"], event.as_str());
    server.stop().await;
}
