//! Who holds the database, so a main key rotation never runs beside a running node.
//!
//! Every process that opens the store (each `fullup serve` node, each admin command)
//! holds a shared PostgreSQL advisory lock on a connection of its own for as long as
//! the store is open. A rotation (`fullup admin rotate-main-key`) needs the lock alone:
//! it is refused, naming how many processes hold it, while any other does; and a node
//! starting during a rotation waits for it to end, then checks its key against the
//! re-sealed database. Without this, a node running on the old key went on sealing new
//! secrets under it after the rotation committed, leaving rows no key in use opens
//! (issue 18).
//!
//! The lock lives with its session: a node whose lock connection fails takes the lock
//! again on a new one, checking that its key still opens the database.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection as _, Executor as _};
use tokio::sync::Mutex;

use crate::store::{StoreError, StoreResult};

/// The advisory lock's key: "fullkeys" in ASCII, a number no other lock uses.
const LOCK_KEY: i64 = 0x6675_6c6c_6b65_7973;
/// How often the lock's connection is checked.
const CHECK_EVERY: Duration = Duration::from_secs(5);
/// How long a starting node waits for a rotation in progress, trying every second.
const WAIT_FOR_ROTATION: Duration = Duration::from_secs(120);

/// A shared hold on the database, on a connection of its own.
#[derive(Debug, Clone)]
pub(super) struct KeyLock {
    options: PgConnectOptions,
    conn: Arc<Mutex<Option<PgConnection>>>,
}

impl KeyLock {
    /// Takes the shared lock, waiting up to [`WAIT_FOR_ROTATION`] for a rotation that
    /// holds it alone.
    pub(super) async fn take(options: &PgConnectOptions) -> StoreResult<Self> {
        let conn = hold(options).await?;
        Ok(Self {
            options: options.clone(),
            conn: Arc::new(Mutex::new(Some(conn))),
        })
    }

    /// What checks the lock's connection in the background: it holds the connection
    /// weakly, so a store dropped without being closed still lets the lock go.
    pub(super) fn keeper(&self) -> Keeper {
        Keeper {
            options: self.options.clone(),
            conn: Arc::downgrade(&self.conn),
        }
    }

    /// Runs `f` holding the lock alone, or fails with [`StoreError::HeldByNodes`]
    /// when another process holds it; this process's shared hold is taken back after.
    pub(super) async fn exclusively<T, Fut>(&self, f: impl FnOnce() -> Fut) -> StoreResult<T>
    where
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        let mut guard = self.conn.lock().await;
        let conn = guard
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?;
        sqlx::query("SELECT pg_advisory_unlock_shared($1)")
            .bind(LOCK_KEY)
            .execute(&mut *conn)
            .await?;
        let alone: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut *conn)
            .await?;
        if !alone {
            let others = holders(conn).await?;
            take_shared(conn).await?;
            return Err(StoreError::HeldByNodes(others));
        }
        let result = f().await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *conn)
            .await?;
        take_shared(conn).await?;
        result
    }

    /// Closes the lock's connection, which releases the lock.
    pub(super) async fn release(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = conn.close().await;
        }
    }
}

/// See [`KeyLock::keeper`].
pub(super) struct Keeper {
    options: PgConnectOptions,
    conn: Weak<Mutex<Option<PgConnection>>>,
}

impl Keeper {
    /// Checks the lock's connection every [`CHECK_EVERY`] until the lock is released
    /// or dropped; a failed connection is replaced and the lock taken again, after
    /// which `recheck` runs (a rotation may have committed while this node held
    /// nothing).
    pub(super) async fn keep<F, Fut>(self, recheck: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = StoreResult<()>>,
    {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let Some(conn) = self.conn.upgrade() else {
                return;
            };
            let mut guard = conn.lock().await;
            let Some(held) = guard.as_mut() else {
                return;
            };
            if held.execute("SELECT 1").await.is_ok() {
                continue;
            }
            match hold(&self.options).await {
                Ok(fresh) => {
                    *guard = Some(fresh);
                    drop(guard);
                    if let Err(err) = recheck().await {
                        let error = crate::error_chain(&err);
                        tracing::error!(error = %error, "after the main key lock was lost and taken again, the database no longer opens with this node's key: restart it with the current key file");
                    }
                }
                Err(err) => {
                    let error = crate::error_chain(&err);
                    tracing::warn!(error = %error, "the main key lock's connection failed; trying again");
                }
            }
        }
    }
}

/// A new connection holding the shared lock.
async fn hold(options: &PgConnectOptions) -> StoreResult<PgConnection> {
    let mut conn = PgConnection::connect_with(options).await?;
    let started = tokio::time::Instant::now();
    loop {
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock_shared($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if held {
            return Ok(conn);
        }
        if started.elapsed() >= WAIT_FOR_ROTATION {
            return Err(StoreError::Unavailable(
                "a main key rotation has held the database for 2 minutes; start this node once it ends".into(),
            ));
        }
        tracing::warn!("a main key rotation holds the database; waiting for it to end");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn take_shared(conn: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_lock_shared($1)")
        .bind(LOCK_KEY)
        .execute(conn)
        .await?;
    Ok(())
}

/// How many sessions hold the lock (shared) now.
async fn holders(conn: &mut PgConnection) -> StoreResult<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1",
    )
    .bind(LOCK_KEY >> 32)
    .bind(LOCK_KEY & 0xffff_ffff)
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
