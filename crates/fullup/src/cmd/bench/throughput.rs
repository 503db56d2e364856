//! Throughput: `events` events, each fanned out to `fanout` webhooks, ingested by
//! `concurrency` clients as fast as the service answers; deliveries/s from the first
//! ingest request to the last new delivery.

use serde::Serialize;

use super::ceiling::Ceilings;
use super::cpu::CpuPerDelivery;
use super::load::{Events, Pace};
use super::receiver::Expect;
use super::report::{Row, Tally};
use super::{Bench, Scenario, Settled};

/// What a throughput run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    scenario: Scenario,
    events: usize,
    fanout: usize,
    concurrency: usize,
    #[serde(flatten)]
    tally: Tally,
    ingest_events_per_sec: f64,
    deliveries_per_sec: f64,
    #[serde(flatten)]
    ceilings: Ceilings,
    #[serde(flatten)]
    cpu: CpuPerDelivery,
}

/// Runs the scenario.
pub async fn run(bench: &mut Bench) -> anyhow::Result<Report> {
    let (events, fanout, concurrency) =
        (bench.plan.events, bench.plan.fanout, bench.plan.concurrency);
    let (deployment, _) = bench.deploy(&bench.fan_out_hooks(fanout, false)).await?;
    let expect = Expect::FanOut {
        events,
        hooks: fanout,
    };
    let requests = Events::uniform(bench.plan.data_bytes).ingest(&deployment.api, &deployment.site);
    let label = format!("ingesting {events} events, fan-out {fanout}");
    let cpu_start = deployment.cpu_now();
    let ingest = bench
        .send(&label, requests, expect, Pace::Closed { concurrency })
        .await?;
    let Settled {
        last,
        tally,
        peak_in_flight,
        ..
    } = bench.settle(&ingest).await;
    let cpu = cpu_start.per_delivery(&deployment.cpu_now(), tally.deliveries_distinct);
    deployment.finish().await?;
    let deliveries_per_sec = last.map_or(0.0, |at| {
        tally.deliveries_distinct as f64 / at.duration_since(ingest.started).as_secs_f64()
    });
    let requests = bench.plan.ceiling_requests_for(expect.expected());
    let ceilings = bench
        .ceilings(deliveries_per_sec, requests, peak_in_flight)
        .await?;
    Ok(Report {
        scenario: Scenario::Throughput,
        events,
        fanout,
        concurrency,
        tally,
        ingest_events_per_sec: ingest.per_sec(),
        deliveries_per_sec,
        ceilings,
        cpu,
    })
}

impl Report {
    /// The table.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = vec![
            ("scenario", "throughput".to_owned()),
            (
                "events x fan-out",
                format!(
                    "{} x {} = {} deliveries, {} clients",
                    self.events, self.fanout, self.tally.deliveries_expected, self.concurrency
                ),
            ),
            ("verified", self.tally.describe()),
            (
                "ingest",
                format!("{:.0} events/s", self.ingest_events_per_sec),
            ),
            (
                "deliveries",
                format!("{:.0} deliveries/s", self.deliveries_per_sec),
            ),
            ("CPU per delivery", self.cpu.describe()),
        ];
        self.ceilings.rows(&mut rows);
        rows
    }

    /// Why the run's counts are not exact, if they are not.
    pub fn incomplete(&self) -> Option<String> {
        (!self.tally.exact()).then(|| format!("deliveries: {}", self.tally.describe()))
    }
}
