//! Isolation: does one receiver that never answers slow the others down?
//!
//! Events go out at a fixed total rate, spread round-robin over `healthy + 1` event types
//! (`bench.hook0`, `bench.hook1`, ...); webhook `i` subscribes to type `i` only, so each
//! event goes to exactly one webhook. Two runs, each on a fresh service, send the same
//! event stream: the first without the last webhook (its events match none), the
//! second with it pointing at a receiver that accepts connections and never answers.
//! The figure is the healthy webhooks' p99 ingest-to-receipt latency with the stalled
//! webhook over without it; the ceiling sends the same rate straight to the receiver.
//!
//! `--noisy-site` makes the stalled side a noisy tenant, the attack of the fair-delivery
//! issue: another site's [`NOISY_WEBHOOKS`] webhooks on the never-answering receiver,
//! sent [`NOISY_EVENTS`] events as the run starts (800 deliveries, each attempt held
//! until the request timeout), while the run's site sends its stream as before.

use fullup_signature::Secret;
use serde::Serialize;

use fullup_client::{NewEvent, NewWebhook};

use super::deployment::Deployment;
use super::load::Events;
use super::receiver::Expect;
use super::report::{Latency, Row, Tally, ratio};
use super::stall::Stall;
use super::{Bench, Scenario};

/// Webhooks of the noisy site, all on the never-answering receiver.
pub const NOISY_WEBHOOKS: usize = 40;
/// Events sent to the noisy site as the run starts; each goes to every one of its webhooks.
pub const NOISY_EVENTS: usize = 20;

/// A noisy tenant: another site whose webhooks all point at a receiver that never answers.
#[derive(Debug, Clone)]
pub struct Noise {
    url: String,
}

impl Noise {
    /// Creates the noisy site with its webhooks on `deployment` and sends its events;
    /// returns the site's id (to delete after the run).
    pub async fn start(&self, deployment: &Deployment, secret: &Secret) -> anyhow::Result<String> {
        let site = deployment.api.create_site("fullup bench noise").await?.id;
        let hook = NewWebhook {
            event_types: vec!["*".to_owned()],
            secret: Some(secret.clone()),
            ..NewWebhook::new(self.url.clone())
        };
        for _ in 0..NOISY_WEBHOOKS {
            deployment.create_webhook(&site, &hook).await?;
        }
        for n in 0..NOISY_EVENTS {
            let event = NewEvent::new("noise.event", &serde_json::json!({ "n": n }))?;
            deployment.api.create_event(&site, &event).await?;
        }
        Ok(site)
    }
}

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
    /// The stalled side was another site's 40 webhooks (`--noisy-site`).
    noisy_site: bool,
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
            event_types: vec![event_type.clone()],
            secret: Some(bench.secret.clone()),
            ..NewWebhook::new(bench.receiver.url(index))
        })
        .collect();
    let noisy_site = bench.plan.noisy_site;
    let without_stalled = measure(bench, &hooks, &stream, "without the stalled side", None).await?;
    let noise = Noise { url: stall.url() };
    if !noisy_site {
        hooks.push(NewWebhook {
            event_types: vec![types[healthy].clone()],
            secret: Some(bench.secret.clone()),
            ..NewWebhook::new(noise.url.clone())
        });
    }
    let noise = noisy_site.then_some(&noise);
    let with_stalled = measure(bench, &hooks, &stream, "with the stalled side", noise).await?;
    let stalled_connections = stall.connections();
    drop(stall);
    let ceiling = bench.ceiling_latency(events, f64::from(rate)).await?;
    Ok(Report {
        scenario: Scenario::Isolation,
        rate,
        duration_secs: bench.plan.duration.as_secs_f64(),
        events,
        healthy_webhooks: healthy,
        noisy_site,
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
    noise: Option<&Noise>,
) -> anyhow::Result<Run> {
    let healthy = bench.plan.healthy_webhooks;
    let expect = Expect::RoundRobin {
        events: bench.plan.open_loop_events(),
        hooks: healthy + 1,
        healthy,
    };
    let label = format!("{} events/s {label}", bench.plan.rate);
    let (sent_per_sec, settled, _) = bench.at_rate(hooks, stream, expect, &label, noise).await?;
    Ok(Run {
        sent_per_sec,
        tally: settled.tally,
        latency: settled.latency(),
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
                    "{} events/s for {} s = {} events over {} healthy webhooks + {}",
                    self.rate,
                    self.duration_secs,
                    self.events,
                    self.healthy_webhooks,
                    if self.noisy_site {
                        format!(
                            "a noisy site ({NOISY_WEBHOOKS} stalled webhooks x {NOISY_EVENTS} events)"
                        )
                    } else {
                        "1 stalled".to_owned()
                    }
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
            (
                "ceiling (service's client)",
                self.ceiling_latency.describe(),
            ),
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
