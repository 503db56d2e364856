//! Ingest: `concurrency` clients posting single events to one webhook (fan-out 1) as fast
//! as the service answers; accepted events/s. The service answers 202 only after the
//! event and its delivery are committed, so this is the rate of durable writes, with the
//! deliveries flowing at the same time as in production. Every delivery is still waited
//! for and counted.

use serde::Serialize;

use super::cpu::CpuPerDelivery;
use super::load::{Events, Pace};
use super::receiver::Expect;
use super::report::{Row, Tally, percent_of, ratio};
use super::{Bench, Scenario};

/// What an ingest run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    scenario: Scenario,
    events: usize,
    concurrency: usize,
    #[serde(flatten)]
    tally: Tally,
    events_per_sec: f64,
    ceiling_requests_per_sec: f64,
    share_of_ceiling: f64,
    #[serde(flatten)]
    cpu: CpuPerDelivery,
}

/// Runs the scenario.
pub async fn run(bench: &mut Bench) -> anyhow::Result<Report> {
    let (events, concurrency) = (bench.plan.events, bench.plan.concurrency);
    let (deployment, _) = bench.deploy(&bench.fan_out_hooks(1, false)).await?;
    let expect = Expect::FanOut { events, hooks: 1 };
    let requests = Events::uniform(bench.plan.data_bytes).ingest(&deployment.api, &deployment.site);
    let label = format!("ingesting {events} events, {concurrency} clients");
    let cpu_start = deployment.cpu_now();
    let ingest = bench
        .send(&label, requests, expect, Pace::Closed { concurrency })
        .await?;
    let tally = bench.settle(&ingest).await.tally;
    let cpu = cpu_start.per_delivery(&deployment.cpu_now(), tally.deliveries_distinct);
    deployment.finish().await?;
    let ceiling = bench
        .ceiling_rate(bench.plan.ceiling_requests_for(events), concurrency)
        .await?;
    Ok(Report {
        scenario: Scenario::Ingest,
        events,
        concurrency,
        tally,
        events_per_sec: ingest.per_sec(),
        ceiling_requests_per_sec: ceiling,
        share_of_ceiling: ratio(ingest.per_sec(), ceiling),
        cpu,
    })
}

impl Report {
    /// The table.
    pub fn rows(&self) -> Vec<Row> {
        vec![
            ("scenario", "ingest".to_owned()),
            (
                "events",
                format!(
                    "{} single events, fan-out 1, {} clients",
                    self.events, self.concurrency
                ),
            ),
            ("verified", self.tally.describe()),
            (
                "accepted (202 after commit)",
                format!("{:.0} events/s", self.events_per_sec),
            ),
            (
                "ceiling (no service)",
                format!("{:.0} requests/s", self.ceiling_requests_per_sec),
            ),
            (
                "share of ceiling",
                percent_of(self.events_per_sec, self.ceiling_requests_per_sec),
            ),
            ("CPU per delivery", self.cpu.describe()),
        ]
    }

    /// Why the run's counts are not exact, if they are not.
    pub fn incomplete(&self) -> Option<String> {
        (!self.tally.exact()).then(|| format!("deliveries: {}", self.tally.describe()))
    }
}
