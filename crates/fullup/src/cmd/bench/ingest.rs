//! Ingest: `concurrency` clients posting single events to one webhook (fan-out 1) as fast
//! as the service answers; accepted events/s. The service answers 202 only after the
//! event and its delivery are committed, so this is the rate of durable writes, with the
//! deliveries flowing at the same time as in production. Every delivery is still waited
//! for and counted.

use serde::Serialize;

use super::ceiling::Ceilings;
use super::cpu::CpuPerDelivery;
use super::load::{Events, Pace};
use super::receiver::Expect;
use super::report::{Row, Tally};
use super::{Bench, Scenario, Settled};

/// What an ingest run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    scenario: Scenario,
    events: usize,
    concurrency: usize,
    #[serde(flatten)]
    tally: Tally,
    events_per_sec: f64,
    #[serde(flatten)]
    ceilings: Ceilings,
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
    let Settled {
        tally,
        peak_in_flight,
        ..
    } = bench.settle(&ingest).await;
    let cpu = cpu_start.per_delivery(&deployment.cpu_now(), tally.deliveries_distinct);
    deployment.finish().await?;
    let requests = bench.plan.ceiling_requests_for(events);
    let ceilings = bench
        .ceilings(ingest.per_sec(), requests, peak_in_flight)
        .await?;
    Ok(Report {
        scenario: Scenario::Ingest,
        events,
        concurrency,
        tally,
        events_per_sec: ingest.per_sec(),
        ceilings,
        cpu,
    })
}

impl Report {
    /// The table.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = vec![
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
