//! Latency: events sent to one webhook at a fixed rate, each at its own time whatever
//! the earlier ones take (open loop); ingest-to-receipt latency, from just before an
//! ingest request is sent to the moment the receiver has verified its delivery. The
//! ceiling sends the same bodies at the same rate straight to the receiver, through the
//! service's own delivery client.

use serde::Serialize;

use super::cpu::CpuPerDelivery;
use super::load::Events;
use super::receiver::Expect;
use super::report::{Latency, Row, Tally, ratio};
use super::{Bench, Scenario};

/// What a latency run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    scenario: Scenario,
    rate: u32,
    duration_secs: f64,
    events: usize,
    sent_per_sec: f64,
    #[serde(flatten)]
    tally: Tally,
    latency: Latency,
    ceiling_latency: Latency,
    p50_vs_ceiling: f64,
    p99_vs_ceiling: f64,
    #[serde(flatten)]
    cpu: CpuPerDelivery,
}

/// Runs the scenario.
pub async fn run(bench: &mut Bench) -> anyhow::Result<Report> {
    let (rate, events) = (bench.plan.rate, bench.plan.open_loop_events());
    let hooks = bench.fan_out_hooks(1, false);
    let stream = Events::uniform(bench.plan.data_bytes);
    let expect = Expect::FanOut { events, hooks: 1 };
    let label = format!("sending {rate} events/s for {:?}", bench.plan.duration);
    let (sent_per_sec, settled, cpu) = bench.at_rate(&hooks, &stream, expect, &label, None).await?;
    let (tally, latency) = (settled.tally, settled.latency());
    let ceiling = bench.ceiling_latency(events, f64::from(rate)).await?;
    Ok(Report {
        scenario: Scenario::Latency,
        rate,
        duration_secs: bench.plan.duration.as_secs_f64(),
        events,
        sent_per_sec,
        tally,
        latency,
        ceiling_latency: ceiling,
        p50_vs_ceiling: ratio(latency.p50_ms, ceiling.p50_ms),
        p99_vs_ceiling: ratio(latency.p99_ms, ceiling.p99_ms),
        cpu,
    })
}

impl Report {
    /// The table.
    pub fn rows(&self) -> Vec<Row> {
        vec![
            ("scenario", "latency".to_owned()),
            (
                "load",
                format!(
                    "{} events/s for {} s = {} events, fan-out 1 (sent at {:.0}/s)",
                    self.rate, self.duration_secs, self.events, self.sent_per_sec
                ),
            ),
            ("verified", self.tally.describe()),
            ("p50 / p95 / p99 / max", self.latency.describe()),
            (
                "ceiling (service's client)",
                self.ceiling_latency.describe(),
            ),
            (
                "vs ceiling",
                format!(
                    "p50 {:.1}x, p99 {:.1}x",
                    self.p50_vs_ceiling, self.p99_vs_ceiling
                ),
            ),
            ("CPU per delivery", self.cpu.describe()),
        ]
    }

    /// Why the run's counts are not exact, if they are not.
    pub fn incomplete(&self) -> Option<String> {
        (!self.tally.exact()).then(|| format!("deliveries: {}", self.tally.describe()))
    }
}
