//! `/readyz` follows the database: 503 with a JSON reason while it is unreachable,
//! 200 again by itself once it is back, with no restart. `/healthz` stays 200.

use std::time::Duration;

use fullup_server::crypto::MainKey;
use serde_json::Value;
use sqlx::Connection as _;

use crate::support::postgres::{TestDatabase, TestStore};
use crate::support::{Backend, TestServer};

/// Polls `/readyz` until it answers `status`; returns its body.
async fn readyz_becomes(server: &TestServer, status: u16) -> Value {
    let mut last = (0, Value::Null);
    for _ in 0..250 {
        last = server
            .call_as(None, reqwest::Method::GET, "/readyz", None)
            .await;
        if last.0 == status {
            return last.1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("/readyz never answered {status}; last: {last:?}");
}

/// The value of `series` (`name{labels}`) in a scrape of `server`.
pub async fn sample(server: &TestServer, series: &str) -> f64 {
    let text = crate::metrics::scrape_text(&server.base).await;
    let line = text
        .lines()
        .find(|l| l.strip_prefix(series).is_some_and(|v| v.starts_with(' ')))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    line[series.len()..].trim().parse().expect("a number")
}

async fn healthz(server: &TestServer) -> u16 {
    let response = reqwest::get(format!("{}/healthz", server.base))
        .await
        .expect("GET /healthz");
    response.status().as_u16()
}

/// SQLite: the database file moved away (as root, permissions would not stop a read;
/// a missing file stops every new connection) and put back.
#[tokio::test]
async fn readyz_is_503_while_the_sqlite_file_is_gone_and_200_once_it_is_back() {
    let server = Backend::Sqlite.start().await;
    let ready = readyz_becomes(&server, 200).await;
    assert_eq!(ready["status"], "ready");
    let db = server.dir.path().join("fullup.db");
    let aside = server.dir.path().join("fullup.db.aside");

    std::fs::rename(&db, &aside).expect("move the database away");
    let down = readyz_becomes(&server, 503).await;
    assert_eq!(down["status"], "unavailable");
    assert_eq!(down["reason"], "database_error");
    assert_eq!(
        healthz(&server).await,
        200,
        "the process is alive all along"
    );
    assert!(sample(&server, r#"fullup_store_errors_total{op="ping"}"#).await >= 1.0);

    std::fs::rename(&aside, &db).expect("put the database back");
    readyz_becomes(&server, 200).await;
    server.stop().await;
}

/// PostgreSQL: the test database stops taking connections and its open ones are
/// ended, then it takes them again.
#[tokio::test]
async fn readyz_is_503_while_postgres_refuses_connections_and_200_once_it_takes_them() {
    let test =
        "readiness::readyz_is_503_while_postgres_refuses_connections_and_200_once_it_takes_them";
    let Some(db) = TestDatabase::create(test).await else {
        return;
    };
    let name = db.name.clone();
    let mut admin = db.connect_admin().await;
    let server = Backend::Postgres(TestStore {
        db,
        key: MainKey::generate(),
    })
    .start()
    .await;
    readyz_becomes(&server, 200).await;

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .expect("deny connections");
    // A connection that was being opened as connections were denied can outlive one
    // round of terminations: end them until none is left.
    for round in 0.. {
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1",
        )
        .bind(&name)
        .fetch_all(&mut admin)
        .await
        .expect("end the service's connections");
        if ended.is_empty() {
            break;
        }
        assert!(round < 100, "the service's connections keep coming back");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let down = readyz_becomes(&server, 503).await;
    assert_eq!(down["status"], "unavailable");
    assert!(
        down["reason"] == "database_error" || down["reason"] == "database_timeout",
        "{down}"
    );
    assert_eq!(
        healthz(&server).await,
        200,
        "the process is alive all along"
    );
    let (status, _) = server.call(reqwest::Method::GET, "/v1/sites", None).await;
    assert_eq!(status, 500, "a read needs the database");
    assert!(sample(&server, r#"fullup_store_errors_total{op="read"}"#).await >= 1.0);
    assert!(sample(&server, r#"fullup_store_errors_total{op="ping"}"#).await >= 1.0);

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .expect("allow connections");
    readyz_becomes(&server, 200).await;
    admin.close().await.expect("close");
    server.stop().await;
}
