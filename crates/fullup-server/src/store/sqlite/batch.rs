//! Group commit on a thread of its own: concurrent ingests, claims and attempt
//! completions share one transaction, so one fsync covers many of them.
//!
//! One OS thread owns the write connection (rusqlite, statements prepared once and
//! cached). It takes every job waiting (up to [`MAX_BATCH`]) and runs them in one
//! transaction, commits once, and only then answers each caller. Jobs almost never
//! fail, so a batch first runs without savepoints; if a job does fail, the batch is
//! rolled back and run again with one savepoint per job, so that one job's failure
//! undoes only its own work. An answer therefore always means "on disk": ingest still says
//! 202 only after a durable commit. Running the batch synchronously on one thread is
//! what makes it cheap: an async driver pays a thread hand-off for every statement,
//! which cost more than SQLite itself (see docs/benchmarks.md).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::store::{StoreError, StoreResult};

/// Most jobs in one transaction: enough to amortise the fsync, small enough that a
/// batch's latency stays a few milliseconds.
pub const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer before callers wait to enqueue (backpressure).
const QUEUE_DEPTH: usize = 4096;
/// Statements kept prepared: every hot statement, with room to spare.
const STATEMENT_CACHE: usize = 64;
/// How long the writer waits for a lock held by another connection (maintenance).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Page cache of the write connection (KiB): holds the hot index pages of a large
/// backlog without letting memory grow with it.
const CACHE_KIB: i64 = 32 * 1024;

/// One queued write: run (maybe twice: see the module doc), then answered.
trait Work: Send {
    /// Runs the job; false when it failed (its result is kept for the answer).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller with the job's result, or with why it was not stored:
    /// `commit` is the batch's outcome.
    fn answer(self: Box<Self>, commit: Result<(), &rusqlite::Error>);
}

type Job = Box<dyn Work>;

/// A [`BatchWriter::call`]: the closure, its last result and the caller waiting for it.
struct Call<F, T> {
    job: F,
    result: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<F, T> Work for Call<F, T>
where
    F: FnMut(&Connection) -> StoreResult<T> + Send,
    T: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = catch_unwind(AssertUnwindSafe(|| (self.job)(conn)))
            .unwrap_or_else(|_| Err(StoreError::WriteFailed("a write job panicked".into())));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, commit: Result<(), &rusqlite::Error>) {
        let result = match (self.result, commit) {
            (Some(Err(err)), _) => Err(err),
            (Some(Ok(_)) | None, Err(err)) => Err(StoreError::batch_failed(err)),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Ok(())) => Err(StoreError::WriteFailed("the job did not run".into())),
        };
        let _ = self.reply.send(result);
    }
}

enum Message {
    Job(Job),
    /// Finish the jobs before it, close the connection, then answer.
    Close(oneshot::Sender<()>),
}

/// The handle callers submit jobs through; cheap to clone.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    queue: mpsc::Sender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Job(_) => "Job",
            Self::Close(_) => "Close",
        })
    }
}

impl BatchWriter {
    /// Opens the write connection to the database file at `path` (already created and
    /// migrated) and starts the writer thread.
    pub fn spawn(path: &Path) -> StoreResult<Self> {
        let conn = open(path)?;
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("fullup-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::WriteFailed(format!("starting the writer thread: {e}")))?;
        Ok(Self { queue })
    }

    /// Runs `job` in the next batch and answers once that batch is committed. When
    /// `job` fails, its work is undone and the error returned; the rest of the batch is
    /// stored. `job` may run twice (the first run undone), so it must not act outside
    /// the database.
    pub async fn call<T, F>(&self, job: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(Call {
            job,
            result: None,
            reply,
        });
        self.queue
            .send(Message::Job(job))
            .await
            .map_err(|_| StoreError::WriteFailed("the store is closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::WriteFailed("the writer thread dropped the job".into()))?
    }

    /// Commits what is queued, closes the write connection and waits until it is closed.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

fn open(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The same settings as every other connection (see the module doc of `sqlite`).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    // Savepoint journals stay in memory, not in temporary files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Message>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Job(job) => jobs.push(job),
                Message::Close(done) => {
                    closing = Some(done);
                    break;
                }
            }
            if jobs.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !jobs.is_empty() {
            write_batch(&conn, std::mem::take(&mut jobs));
        }
        if closing.is_some() {
            break;
        }
    }
    rx.close();
    if let Err((_, err)) = conn.close() {
        tracing::error!(error = %err, "closing the write connection failed");
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// One transaction for the whole batch; answers every job.
fn write_batch(conn: &Connection, mut jobs: Vec<Job>) {
    let count = jobs.len();
    let outcome = begin(conn).and_then(|()| {
        if jobs.iter_mut().all(|job| job.run(conn)) {
            return Ok(());
        }
        // A job failed: run the batch again, isolating each job in a savepoint.
        conn.execute_batch("ROLLBACK")?;
        begin(conn)?;
        jobs.iter_mut()
            .try_for_each(|job| run_in_savepoint(conn, job.as_mut()))
    });
    let outcome = outcome.and_then(|()| conn.execute_batch("COMMIT"));
    match outcome {
        Ok(()) => jobs.into_iter().for_each(|job| job.answer(Ok(()))),
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(error = %err, jobs = count, "a write batch failed");
            jobs.into_iter().for_each(|job| job.answer(Err(&err)));
        }
    }
}

fn begin(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("BEGIN IMMEDIATE")?
        .execute([])
        .map(drop)
}

/// Runs one job between `SAVEPOINT` and `RELEASE`, rolling its work back if it failed.
fn run_in_savepoint(conn: &Connection, job: &mut dyn Work) -> rusqlite::Result<()> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    if !job.run(conn) {
        conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
    }
    conn.prepare_cached("RELEASE job")?.execute([])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn writer() -> (tempfile::TempDir, BatchWriter) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).expect("create");
        conn.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .expect("schema");
        drop(conn);
        let writer = BatchWriter::spawn(&path).expect("writer");
        (dir, writer)
    }

    fn insert(x: i64) -> impl FnMut(&Connection) -> StoreResult<usize> + Send + 'static {
        move |conn| Ok(conn.execute("INSERT INTO t (x) VALUES (?1)", [x])?)
    }

    #[tokio::test]
    async fn a_failing_job_does_not_undo_the_others_of_its_batch() {
        let (_dir, w) = writer().await;
        let half = |conn: &Connection| -> StoreResult<usize> {
            conn.execute("INSERT INTO t (x) VALUES (3)", [])?;
            conn.execute("INSERT INTO t (x) VALUES (1)", [])?; // conflicts: undo the 3 too
            Ok(0)
        };
        let panics = |_: &Connection| -> StoreResult<usize> { panic!("job bug") };
        let (a, b, c, d) = tokio::join!(
            w.call(insert(1)),
            w.call(half),
            w.call(panics),
            w.call(insert(2))
        );
        assert!(a.is_ok() && d.is_ok(), "{a:?} {d:?}");
        assert!(matches!(b, Err(StoreError::Sqlite(_))), "{b:?}");
        assert!(matches!(c, Err(StoreError::WriteFailed(_))), "{c:?}");
        let rows: Vec<i64> = w
            .call(|conn| {
                let mut q = conn.prepare("SELECT x FROM t ORDER BY x")?;
                let rows = q.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .await
            .expect("read");
        assert_eq!(rows, vec![1, 2]);
    }

    #[tokio::test]
    async fn after_close_writes_fail_with_a_clear_error() {
        let (_dir, w) = writer().await;
        w.call(insert(1)).await.expect("before close");
        w.close().await;
        let err = w.call(insert(2)).await.expect_err("closed");
        assert!(err.to_string().contains("closed"), "{err}");
    }
}
