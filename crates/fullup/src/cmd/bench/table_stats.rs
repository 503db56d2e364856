//! The rows of the service's busiest PostgreSQL tables after a run: live rows and dead
//! row versions (`pg_stat_user_tables`), which show whether a delivery's updates leave
//! garbage faster than vacuum removes it.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use sqlx::{Connection as _, PgConnection};

use super::deployment::Target;

/// The tables written for every event and delivery.
const TABLES: [&str; 5] = ["events", "deliveries", "queue", "leases", "attempts"];
/// How long the stopped service's connections may take to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often to look whether they have.
const POLL: Duration = Duration::from_millis(50);

/// One table's rows.
#[derive(Debug, Clone, Serialize)]
pub struct TableRows {
    /// The table's name.
    pub table: String,
    /// `n_live_tup`: rows a query would see.
    pub live_rows: i64,
    /// `n_dead_tup`: row versions left by updates and deletes, not yet vacuumed.
    pub dead_rows: i64,
}

/// The `--database-url` of the service the bench starts, when it is PostgreSQL.
pub fn postgres_url(target: &Target) -> Option<&str> {
    match target {
        Target::Local {
            database_url: Some(url),
            ..
        } if url.starts_with("postgres") => Some(url),
        _ => None,
    }
}

/// The rows of [`TABLES`] (those that exist) in `database_url`, read once no other
/// client is connected to it (at most [`CLOSE_TIMEOUT`]): a backend reports its last
/// statistics as it exits, so the stopped service's are then all counted.
pub async fn read(database_url: &str) -> anyhow::Result<Vec<TableRows>> {
    let mut conn = PgConnection::connect(database_url)
        .await
        .context("connecting to --database-url to read its table statistics")?;
    let started = Instant::now();
    loop {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND backend_type = 'client backend'
               AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await
        .context("reading pg_stat_activity")?;
        if others == 0 || started.elapsed() >= CLOSE_TIMEOUT {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT relname::text, n_live_tup, n_dead_tup FROM pg_stat_user_tables
         WHERE relname = ANY($1) ORDER BY relname",
    )
    .bind(&TABLES[..])
    .fetch_all(&mut conn)
    .await
    .context("reading pg_stat_user_tables")?;
    Ok(rows
        .into_iter()
        .map(|(table, live_rows, dead_rows)| TableRows {
            table,
            live_rows,
            dead_rows,
        })
        .collect())
}
