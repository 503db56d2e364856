//! Backlog: deliveries queue up while the receiver is "down" (its webhooks paused: the
//! service creates their deliveries but does not attempt them), then it comes back "up"
//! (the webhooks resumed). Measures the drain rate, deliveries/s from the resume until
//! the last one is verified, and the service's peak memory over the run. While the
//! backlog is queued, it also times [`SCRAPES`] scrapes of `GET /metrics` one after the
//! other (what a Prometheus scrape costs beside a large backlog). A small
//! reference backlog is drained the same way, each on a fresh service, so that "a large
//! backlog drains at >= 80 % of a small one's rate" can be checked in one command.

use std::time::Instant;

use anyhow::Context as _;
use fullup_client::{Client, WebhookUpdate};
use serde::Serialize;

use super::ceiling::Ceilings;
use super::load::{Events, Pace};
use super::receiver::Expect;
use super::report::{Latency, Row, Tally, mib, ratio};
use super::{Bench, Scenario, Settled};

/// One backlog drained.
#[derive(Debug, Serialize)]
pub struct Drain {
    deliveries: usize,
    events: usize,
    #[serde(flatten)]
    tally: Tally,
    /// Requests the receiver got before the resume: should be none.
    delivered_while_paused: usize,
    ingest_events_per_sec: f64,
    drain_secs: f64,
    drain_per_sec: f64,
    /// `VmHWM` of the service process at the end of the run.
    peak_rss_bytes: Option<u64>,
    /// `GET /metrics` answered while the backlog was queued, request to last byte (None:
    /// the service has no `/metrics`, as builds before it did not).
    scrape: Option<Latency>,
    /// `fullup_deliveries_pending` in the last of those scrapes (as of the service's last
    /// backlog refresh, so up to its interval old).
    pending_gauge: Option<f64>,
    /// The most requests the service had in flight to the receiver at once.
    #[serde(skip)]
    peak_in_flight: usize,
}

/// Scrapes timed while the backlog is queued.
const SCRAPES: usize = 100;

/// Times [`SCRAPES`] scrapes one after the other; returns them and the pending gauge.
async fn time_scrapes(api: &Client) -> anyhow::Result<(Latency, Option<f64>)> {
    let mut nanos = Vec::with_capacity(SCRAPES);
    let mut text = String::new();
    for _ in 0..SCRAPES {
        let started = Instant::now();
        text = api.metrics().await?;
        nanos.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    let pending = text
        .lines()
        .find_map(|l| l.strip_prefix("fullup_deliveries_pending "))
        .and_then(|v| v.trim().parse().ok());
    Ok((Latency::of(nanos), pending))
}

/// Pauses or resumes a webhook, checking that the service did.
async fn set_paused(api: &Client, site: &str, webhook: &str, paused: bool) -> anyhow::Result<()> {
    let changes = WebhookUpdate {
        paused: Some(paused),
        ..WebhookUpdate::default()
    };
    let updated = api.update_webhook(site, webhook, &changes).await?;
    anyhow::ensure!(
        updated.paused == paused,
        "the service did not set paused={paused} on webhook {webhook}"
    );
    Ok(())
}

/// What a backlog run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    scenario: Scenario,
    fanout: usize,
    concurrency: usize,
    reference: Option<Drain>,
    backlog: Drain,
    /// The backlog's drain rate over the reference's.
    drain_vs_reference: Option<f64>,
    /// Against the backlog's drain rate.
    #[serde(flatten)]
    ceilings: Ceilings,
}

/// Runs the scenario.
pub async fn run(bench: &mut Bench) -> anyhow::Result<Report> {
    let reference = match bench.plan.reference_backlog {
        0 => None,
        size => Some(drain(bench, size).await?),
    };
    let backlog = drain(bench, bench.plan.backlog).await?;
    let requests = bench.plan.ceiling_requests_for(backlog.deliveries);
    let ceilings = bench
        .ceilings(backlog.drain_per_sec, requests, backlog.peak_in_flight)
        .await?;
    Ok(Report {
        scenario: Scenario::Backlog,
        fanout: bench.plan.fanout,
        concurrency: bench.plan.concurrency,
        drain_vs_reference: reference
            .as_ref()
            .map(|r| ratio(backlog.drain_per_sec, r.drain_per_sec)),
        reference,
        backlog,
        ceilings,
    })
}

/// Queues `deliveries` on paused webhooks of a fresh service, resumes them, and waits
/// for every one.
async fn drain(bench: &mut Bench, deliveries: usize) -> anyhow::Result<Drain> {
    let fanout = bench.plan.fanout;
    let events = deliveries / fanout;
    let (deployment, webhooks) = bench.deploy(&bench.fan_out_hooks(fanout, true)).await?;
    let expect = Expect::FanOut {
        events,
        hooks: fanout,
    };
    let requests = Events::uniform(bench.plan.data_bytes).ingest(&deployment.api, &deployment.site);
    let label = format!("queueing {deliveries} deliveries (paused)");
    let pace = Pace::Closed {
        concurrency: bench.plan.concurrency,
    };
    let ingest = bench.send(&label, requests, expect, pace).await?;
    let (scrape, pending_gauge) = match time_scrapes(&deployment.api).await {
        Ok((scrape, pending)) => (Some(scrape), pending),
        Err(err) => {
            bench.progress.note(&format!("not timing scrapes: {err:#}"));
            (None, None)
        }
    };
    let before = bench.receiver.counts();
    bench.progress.note(&format!(
        "resuming {fanout} webhooks with {deliveries} deliveries queued"
    ));
    let resumed = Instant::now();
    let mut resumes = tokio::task::JoinSet::new();
    for webhook in webhooks {
        let (api, site) = (deployment.api.clone(), deployment.site.clone());
        resumes.spawn(async move { set_paused(&api, &site, &webhook, false).await });
    }
    while let Some(done) = resumes.join_next().await {
        done.context("resuming a webhook panicked")?
            .context("resuming a webhook")?;
    }
    let Settled {
        last,
        tally,
        peak_in_flight,
        ..
    } = bench.settle(&ingest).await;
    let peak_rss_bytes = deployment.peak_rss_bytes()?;
    deployment.finish().await?;
    let drain_secs = last.map_or(0.0, |at| {
        at.saturating_duration_since(resumed).as_secs_f64()
    });
    Ok(Drain {
        deliveries,
        events,
        delivered_while_paused: before.verified + before.failures,
        ingest_events_per_sec: ingest.per_sec(),
        drain_per_sec: ratio(tally.deliveries_distinct as f64, drain_secs),
        drain_secs,
        tally,
        peak_rss_bytes,
        scrape,
        pending_gauge,
        peak_in_flight,
    })
}

impl Drain {
    fn rows(&self, label: &'static str, rows: &mut Vec<Row>) {
        rows.push((
            label,
            format!(
                "{} deliveries ({} events), ingested at {:.0} events/s",
                self.deliveries, self.events, self.ingest_events_per_sec
            ),
        ));
        rows.push(("  verified", self.tally.describe()));
        rows.push((
            "  drain",
            format!(
                "{:.0} deliveries/s ({:.1} s from resume to the last)",
                self.drain_per_sec, self.drain_secs
            ),
        ));
        rows.push(("  service peak RSS", mib(self.peak_rss_bytes)));
        let scrape = self.scrape.map_or_else(
            || "n/a (no /metrics)".to_owned(),
            |s| {
                format!(
                    "p50 / p95 / p99 / max {} ({} scrapes; pending gauge {})",
                    s.describe(),
                    s.samples,
                    self.pending_gauge
                        .map_or_else(|| "absent".to_owned(), |v| format!("{v:.0}"))
                )
            },
        );
        rows.push(("  GET /metrics while queued", scrape));
    }

    fn incomplete(&self) -> Option<String> {
        if self.delivered_while_paused > 0 {
            return Some(format!(
                "backlog of {}: {} deliveries arrived while the webhooks were paused",
                self.deliveries, self.delivered_while_paused
            ));
        }
        (!self.tally.exact()).then(|| {
            format!(
                "backlog of {}: deliveries {}",
                self.deliveries,
                self.tally.describe()
            )
        })
    }
}

impl Report {
    /// The table.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = vec![(
            "scenario",
            format!(
                "backlog, fan-out {}, {} ingest clients",
                self.fanout, self.concurrency
            ),
        )];
        if let Some(reference) = &self.reference {
            reference.rows("reference backlog", &mut rows);
        }
        self.backlog.rows("backlog", &mut rows);
        if let Some(vs) = self.drain_vs_reference {
            rows.push((
                "drain vs reference",
                format!("{:.1} % of the reference's rate", vs * 100.0),
            ));
        }
        self.ceilings.rows(&mut rows);
        rows
    }

    /// Why the run's counts are not exact, if they are not.
    pub fn incomplete(&self) -> Option<String> {
        let reasons: Vec<String> = self
            .reference
            .iter()
            .chain([&self.backlog])
            .filter_map(Drain::incomplete)
            .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}
