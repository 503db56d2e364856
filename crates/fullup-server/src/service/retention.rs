//! Retention: pruning each site's events older than its retention, with their
//! deliveries and attempts, and the rows of deleted webhooks whose history is gone.
//!
//! What it promises: it never blocks ingest for long. A pass walks each site's old
//! events in id order, in batches of [`RetentionConfig::batch`] events, each batch one
//! short transaction (on SQLite a job of the writer thread, committed with the ingests
//! of its batch; on PostgreSQL its own transaction under the site's prune lock), with
//! [`RetentionConfig::pause`] between batches so the writes waiting meanwhile go first.
//! An event with a delivery not yet finished (pending, or an attempt in flight) is
//! kept, however old. What is deleted is counted in `fullup_pruned_rows_total{table}`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Service, ServiceResult};
use crate::domain::ids::SiteId;
use crate::domain::retention::prune_below;
use crate::domain::time::Timestamp;
use crate::metrics::StoreOp;
use crate::store::{PruneBatch, Pruned};

/// Default interval between prune passes: a minute, so rows are pruned within about a
/// minute of reaching their age, and a pass that finds nothing costs one index probe per
/// site a minute.
pub const DEFAULT_PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// Default events per prune batch: 50 events with their deliveries and attempts are
/// deleted in a few milliseconds on SQLite (about 4 ms, from the rate measured alone:
/// 2,100 events/s is 24 ms per batch, 20 of them the pause), so an ingest queued behind
/// a batch hardly notices it. Measured beside 1,000 events/s (docs/benchmarks.md, "Retention"): with
/// 50 the delivery p99 stayed within 1.2x of a run without pruning while about 2,100
/// old events/s were pruned; with 200 the pruning ran at 7,300 events/s but the p99
/// grew many times over.
pub const DEFAULT_PRUNE_BATCH: u32 = 50;
/// Default pause between two prune batches: long enough for the ingests and attempt
/// outcomes queued during a batch to be committed before the next one.
pub const DEFAULT_PRUNE_PAUSE: Duration = Duration::from_millis(20);

/// How retention runs (`fullup serve --retention …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// How long events are kept by default; None: forever (sites may still set their
    /// own `retention_days`, which is then pruned).
    pub default: Option<Duration>,
    /// Time between two passes.
    pub interval: Duration,
    /// Events looked at per batch (each batch one transaction), at least 1.
    pub batch: u32,
    /// Pause between two batches.
    pub pause: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            default: None,
            interval: DEFAULT_PRUNE_INTERVAL,
            batch: DEFAULT_PRUNE_BATCH,
            pause: DEFAULT_PRUNE_PAUSE,
        }
    }
}

/// What a prune pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Events deleted.
    pub events: u64,
    /// Deliveries deleted.
    pub deliveries: u64,
    /// Attempts deleted.
    pub attempts: u64,
    /// Rows of deleted webhooks removed once their last delivery was pruned.
    pub webhooks: u64,
    /// Batches run (transactions).
    pub batches: u64,
}

impl PruneReport {
    fn add(&mut self, p: &Pruned) {
        self.events += p.events;
        self.deliveries += p.deliveries;
        self.attempts += p.attempts;
        self.batches += 1;
    }
}

impl Service {
    /// One prune pass at `now`: every site whose retention (its own, or `config`'s
    /// default) is set, batch after batch until its old events are done.
    pub async fn prune(
        &self,
        now: Timestamp,
        config: &RetentionConfig,
    ) -> ServiceResult<PruneReport> {
        let sites = self.counted(StoreOp::Prune, self.store.site_retentions().await)?;
        let mut report = PruneReport::default();
        for (site, days) in sites {
            let Some(below) = prune_below(now, days, config.default) else {
                continue;
            };
            self.prune_site(site, below, config, &mut report).await?;
        }
        Ok(report)
    }

    /// Prunes the events of `site` below `below`, then its deleted webhooks left
    /// without deliveries.
    async fn prune_site(
        &self,
        site: SiteId,
        below: crate::domain::ids::EventId,
        config: &RetentionConfig,
        report: &mut PruneReport,
    ) -> ServiceResult<()> {
        let mut batch = PruneBatch {
            site,
            after: None,
            below,
            limit: config.batch.max(1),
        };
        loop {
            let pruned = self.counted(StoreOp::Prune, self.store.prune(&batch).await)?;
            if pruned.busy {
                // Another node prunes this site now.
                return Ok(());
            }
            report.add(&pruned);
            self.metrics.pruned("events", pruned.events);
            self.metrics.pruned("deliveries", pruned.deliveries);
            self.metrics.pruned("attempts", pruned.attempts);
            if pruned.scanned < batch.limit {
                break;
            }
            batch.after = pruned.last;
            tokio::time::sleep(config.pause).await;
        }
        let dropped = self.counted(StoreOp::Prune, self.store.drop_deleted_webhooks(site).await)?;
        self.metrics.pruned("webhooks", dropped);
        report.webhooks += dropped;
        Ok(())
    }

    /// Runs a prune pass every `config.interval` until `stop`, the first one an interval
    /// after the start (so a restart loop does not prune at every start). A failed pass
    /// is logged and counted (`fullup_store_errors_total{op="prune"}`); the next one
    /// starts over.
    pub async fn prune_until(&self, config: RetentionConfig, stop: CancellationToken) {
        let mut ticks = tokio::time::interval_at(
            tokio::time::Instant::now() + config.interval,
            config.interval,
        );
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => return,
            }
            let pass = tokio::select! {
                pass = self.prune(self.clock.now(), &config) => pass,
                () = stop.cancelled() => return,
            };
            match pass {
                Ok(r) if r.events + r.webhooks > 0 => tracing::info!(
                    events = r.events,
                    deliveries = r.deliveries,
                    attempts = r.attempts,
                    webhooks = r.webhooks,
                    batches = r.batches,
                    "pruned what retention no longer keeps"
                ),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "a prune pass failed; the next one starts over")
                }
            }
        }
    }
}
