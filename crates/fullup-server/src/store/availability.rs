//! Which store failures mean "the database cannot be used right now" rather than "this
//! request or this row is wrong": a refused or broken connection, a pool that found no
//! connection in time, a full disk, an I/O error, a lock held past the busy timeout.
//!
//! The API answers those with 503 `store_unavailable` and a `Retry-After`, so clients
//! and load balancers can tell an outage from a bug; a node that starts while its
//! database is unreachable waits for it. Nothing here retries: that is the caller's
//! choice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Backend, Store, StoreError, StoreResult, StoreSettings};
use crate::crypto::MainKey;

/// The first pause before trying an unavailable database again; each next one doubles.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// The longest pause between two tries (each try itself may wait up to the acquire
/// timeout for a connection).
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// Opens the store as [`super::open_with`] does; while a PostgreSQL database is
/// unavailable (refusing connections, shutting down, out of space), logs it and tries
/// again with backoff, for up to `settings.wait`. Any other failure (a wrong password,
/// a missing database, a wrong main key) returns at once, and so does SQLite: its
/// database is a local file, whose trouble waiting does not cure.
pub async fn open_waiting(
    url: &str,
    key: &MainKey,
    settings: &StoreSettings,
) -> StoreResult<Arc<dyn Store>> {
    let waits = Backend::of(url)? == Backend::Postgres;
    let started = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let err = match super::open_with(url, key.clone(), settings).await {
            Ok(store) => return Ok(store),
            Err(err) if waits && err.is_unavailable() => err,
            Err(err) => return Err(err),
        };
        let chain = crate::error_chain(&err);
        let waited = started.elapsed();
        if waited + pause > settings.wait {
            return Err(StoreError::Unavailable(format!(
                "{chain}; still unavailable after waiting {} s (--database-wait)",
                waited.as_secs()
            )));
        }
        tracing::warn!(error = %chain, waited_s = waited.as_secs(), retry_in_ms = pause.as_millis(),
            "the database is unavailable; waiting for it (up to --database-wait)");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// SQLite's primary result codes that mean the database cannot be used for now
/// (`SQLITE_BUSY`, `SQLITE_LOCKED`, `SQLITE_NOMEM`, `SQLITE_IOERR`, `SQLITE_FULL`,
/// `SQLITE_CANTOPEN`): <https://www.sqlite.org/rescode.html>.
const SQLITE_UNAVAILABLE: [i32; 6] = [5, 6, 7, 10, 13, 14];

/// SQLSTATE classes and codes of PostgreSQL that mean the server cannot serve for now:
/// class 08 (connection exception), class 53 (insufficient resources: disk full, out of
/// memory, too many connections), 57P01–57P03 (shutting down, crashed, starting up),
/// and 58030 (I/O error).
fn postgres_unavailable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || sqlstate.starts_with("53")
        || matches!(sqlstate, "57P01" | "57P02" | "57P03" | "58030")
}

impl StoreError {
    /// Whether PostgreSQL chose this statement as a deadlock's victim (`40P01`): it was
    /// rolled back whole, and running it again is safe.
    pub fn is_deadlock(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.code().as_deref() == Some("40P01"))
    }

    /// Whether the failure is the database being out of reach or out of room, which
    /// passes by itself (the operator frees space, the server comes back), as opposed
    /// to a bug or a bad row.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Database(err) => sqlx_unavailable(err),
            Self::Sqlite(err) => rusqlite_unavailable(err),
            Self::Migrate(sqlx::migrate::MigrateError::Execute(err)) => sqlx_unavailable(err),
            _ => false,
        }
    }
}

impl StoreError {
    /// Why the SQLite writer's batch, failed with `err`, stored nothing:
    /// [`StoreError::Unavailable`] when the database cannot be written for now (a full
    /// disk, say), else [`StoreError::WriteFailed`].
    pub(crate) fn batch_failed(err: &rusqlite::Error) -> Self {
        let message = format!("the write batch failed: {err}");
        if rusqlite_unavailable(err) {
            Self::Unavailable(message)
        } else {
            Self::WriteFailed(message)
        }
    }
}

fn sqlx_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        {
            Some(pg) => postgres_unavailable(pg.code()),
            // SQLite's extended result code, in decimal.
            None => db
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .is_some_and(sqlite_unavailable),
        },
        _ => false,
    }
}

/// Judges an SQLite extended result code by its primary code (its low byte).
fn sqlite_unavailable(extended_code: i32) -> bool {
    SQLITE_UNAVAILABLE.contains(&(extended_code & 0xff))
}

fn rusqlite_unavailable(err: &rusqlite::Error) -> bool {
    match err {
        rusqlite::Error::SqliteFailure(failure, _) => sqlite_unavailable(failure.extended_code),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_failure(extended_code: i32) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(extended_code),
            None,
        ))
    }

    #[test]
    fn sqlite_codes_of_a_full_disk_an_io_error_or_a_held_lock_are_unavailable() {
        // SQLITE_FULL, SQLITE_IOERR_WRITE (10 | 3 << 8), SQLITE_BUSY, SQLITE_CANTOPEN.
        for code in [13, 10 | (3 << 8), 5, 14] {
            assert!(sqlite_failure(code).is_unavailable(), "{code}");
            assert!(sqlite_unavailable(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE (19 | 8 << 8), SQLITE_CORRUPT, SQLITE_ERROR.
        for code in [19 | (8 << 8), 11, 1] {
            assert!(!sqlite_failure(code).is_unavailable(), "{code}");
            assert!(!sqlite_unavailable(code), "{code}");
        }
    }

    #[test]
    fn postgres_states_of_a_lost_connection_or_a_full_disk_are_unavailable() {
        for state in [
            "08006", "08001", "53100", "53300", "57P01", "57P03", "58030",
        ] {
            assert!(postgres_unavailable(state), "{state}");
        }
        for state in ["23505", "40001", "40P01", "42P01", "22P02", "57014"] {
            assert!(!postgres_unavailable(state), "{state}");
        }
    }

    #[test]
    fn connection_failures_are_unavailable_and_row_failures_are_not() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(StoreError::Database(sqlx::Error::Io(refused)).is_unavailable());
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::Unavailable("down".into()).is_unavailable());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::Corrupt("row".into()).is_unavailable());
        assert!(!StoreError::WriteFailed("bug".into()).is_unavailable());
    }
}
