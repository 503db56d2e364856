//! What an operator's tools ask of the service: is it ready to serve (the store
//! answers), and how large is the backlog (the gauges of `GET /metrics`).
//!
//! Readiness is bounded: a load balancer's probe must get an answer even while the
//! database hangs, so a store that does not answer within [`READY_TIMEOUT`] counts as
//! down. The backlog gauges cost a few store queries, so they are refreshed by one
//! background task every [`DEFAULT_BACKLOG_REFRESH`] (however often Prometheus
//! scrapes, and however many scrapers there are): a scrape shows values at most that
//! old.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Service;
use crate::metrics::StoreOp;

/// Longest the readiness probe waits for the store. Load balancers probe every few
/// seconds with timeouts of 2-5 s (AWS ALB: 5 s by default), so 2 s answers first.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// Default interval of the backlog gauges' refresh: Prometheus' usual scrape interval,
/// so a scrape rarely shows values older than its own, and the backlog's count (one
/// pass over the pending part of an index: 43 ms on SQLite, 100 ms on PostgreSQL at a
/// million pending, debug build) runs four times a minute at most.
pub const DEFAULT_BACKLOG_REFRESH: Duration = Duration::from_secs(15);

/// Why the service is not ready.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotReady {
    /// The store did not answer within [`READY_TIMEOUT`].
    #[error("the database did not answer within {} s", READY_TIMEOUT.as_secs())]
    Timeout,
    /// The store answered with an error.
    #[error("the database query failed")]
    Failed(#[source] crate::store::StoreError),
}

impl NotReady {
    /// A stable machine-readable reason: `database_timeout` or `database_error`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Timeout => "database_timeout",
            Self::Failed(_) => "database_error",
        }
    }
}

impl Service {
    /// Ready when the store answers a query within [`READY_TIMEOUT`] (see
    /// [`crate::store::Store::ping`]).
    pub async fn ready(&self) -> Result<(), NotReady> {
        let answer = tokio::time::timeout(READY_TIMEOUT, self.store.ping()).await;
        let err = match answer {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(err)) => NotReady::Failed(err),
            Err(_) => NotReady::Timeout,
        };
        self.metrics.store_error(StoreOp::Ping);
        Err(err)
    }

    /// Reads the backlog from the store and sets the gauges.
    pub async fn refresh_backlog(&self) -> crate::store::StoreResult<()> {
        let backlog = self.counted(StoreOp::Backlog, self.store.backlog().await)?;
        self.metrics
            .set_backlog(&backlog, self.clock.now().unix_ms());
        Ok(())
    }

    /// Refreshes the backlog gauges now and then every `every` until `stop`.
    pub async fn refresh_backlog_until(&self, every: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => return,
            }
            if let Err(err) = self.refresh_backlog().await {
                let error = crate::error_chain(&err);
                tracing::warn!(error = %error, "refreshing the backlog gauges failed");
            }
        }
    }
}
