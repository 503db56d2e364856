//! Isolation: does one receiver that never answers slow the others down?
//!
//! Events go out at a fixed total rate, spread round-robin over `healthy + 1` event types
//! (`bench.hook0`, `bench.hook1`, ...); webhook `i` subscribes to type `i` only, so each
//! event goes to exactly one webhook. Two runs, each on a fresh service, send the same
//! event stream: the first without the last webhook (its events match none), the
//! second with it pointing at a receiver that accepts connections and never answers.
//! The figure is the healthy webhooks' p99 ingest-to-receipt latency with the stalled
//! webhook over without it; the ceiling sends the same rate straight to the receiver.

use serde::Serialize;

use super::api::NewWebhook;
use super::load::Events;
use super::receiver::Expect;
use super::report::{Latency, Row, Tally, ratio};
use super::stall::Stall;
use super::{Bench, Scenario, Settled};

/// One run's healthy deliveries.
#[derive(Debug, Serialize)]
pub struct Run {
    sent_per_sec: f64,
    #[serde(flatten)]
    tally: Tally,
    latency: Latency,
}

/// What an isolation run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    scenario: Scenario,
    rate: u32,
    duration_secs: f64,
    events: usize,
    healthy_webhooks: usize,
    without_stalled: Run,
    with_stalled: Run,
    /// Connections the stalled receiver accepted (none would mean it was never tried).
    stalled_connections: usize,
    /// Healthy p99 with the stalled webhook over without it.
    p99_ratio: f64,
    ceiling_latency: Latency,
    p99_vs_ceiling: f64,
}

/// Runs the scenario.
pub async fn run(bench: &mut Bench) -> anyhow::Result<Report> {
    let (healthy, rate, events) = (
        bench.plan.healthy_webhooks,
        bench.plan.rate,
        bench.plan.open_loop_events(),
    );
    let types: Vec<String> = (0..=healthy).map(|i| format!("bench.hook{i}")).collect();
    let stream = Events::new(bench.plan.data_bytes, types.clone());
    let stall = Stall::start(bench.plan.stall_listen, bench.plan.stall_url.as_deref()).await?;
    let mut hooks: Vec<NewWebhook> = types[..healthy]
        .iter()
        .enumerate()
        .map(|(index, event_type)| NewWebhook {
            url: bench.receiver.url(index),
            event_type: event_type.clone(),
            secret: bench.secret.clone(),
            paused: false,
        })
        .collect();
    let without_stalled = measure(bench, &hooks, &stream, "without the stalled webhook").await?;
    hooks.push(NewWebhook {
        url: stall.url(),
        event_type: types[healthy].clone(),
        secret: bench.secret.clone(),
        paused: false,
    });
    let with_stalled = measure(bench, &hooks, &stream, "with the stalled webhook").await?;
    let stalled_connections = stall.connections();
    drop(stall);
    let ceiling = bench.ceiling_latency(events, f64::from(rate)).await?;
    Ok(Report {
        scenario: Scenario::Isolation,
        rate,
        duration_secs: bench.plan.duration.as_secs_f64(),
        events,
        healthy_webhooks: healthy,
        p99_ratio: ratio(with_stalled.latency.p99_ms, without_stalled.latency.p99_ms),
        p99_vs_ceiling: ratio(with_stalled.latency.p99_ms, ceiling.p99_ms),
        without_stalled,
        with_stalled,
        stalled_connections,
        ceiling_latency: ceiling,
    })
}

/// Sends the event stream to a fresh service with `hooks`; the healthy ones' latency.
async fn measure(
    bench: &mut Bench,
    hooks: &[NewWebhook],
    stream: &Events,
    label: &str,
) -> anyhow::Result<Run> {
    let healthy = bench.plan.healthy_webhooks;
    let expect = Expect::RoundRobin {
        events: bench.plan.open_loop_events(),
        hooks: healthy + 1,
        healthy,
    };
    let label = format!("{} events/s {label}", bench.plan.rate);
    let (sent_per_sec, Settled { tally, latency, .. }) =
        bench.at_rate(hooks, stream, expect, &label).await?;
    Ok(Run {
        sent_per_sec,
        tally,
        latency,
    })
}

impl Report {
    /// The table.
    pub fn rows(&self) -> Vec<Row> {
        vec![
            ("scenario", "isolation".to_owned()),
            (
                "load",
                format!(
                    "{} events/s for {} s = {} events over {} healthy webhooks + 1 stalled",
                    self.rate, self.duration_secs, self.events, self.healthy_webhooks
                ),
            ),
            (
                "without the stalled one",
                self.without_stalled.tally.describe(),
            ),
            (
                "  healthy p50/p95/p99/max",
                self.without_stalled.latency.describe(),
            ),
            ("with the stalled one", self.with_stalled.tally.describe()),
            (
                "  healthy p50/p95/p99/max",
                self.with_stalled.latency.describe(),
            ),
            (
                "  stalled receiver",
                format!(
                    "{} connections accepted, none answered",
                    self.stalled_connections
                ),
            ),
            (
                "healthy p99 with / without",
                format!("{:.2}x", self.p99_ratio),
            ),
            ("ceiling (no service)", self.ceiling_latency.describe()),
            ("p99 vs ceiling", format!("{:.1}x", self.p99_vs_ceiling)),
        ]
    }

    /// Why the run's counts are not exact, if they are not.
    pub fn incomplete(&self) -> Option<String> {
        let reasons: Vec<String> = [
            ("without the stalled webhook", &self.without_stalled),
            ("with the stalled webhook", &self.with_stalled),
        ]
        .into_iter()
        .filter(|(_, run)| !run.tally.exact())
        .map(|(label, run)| format!("{label}: deliveries {}", run.tally.describe()))
        .collect();
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}
