//! Sustained: does the service degrade as it runs? Events at a fixed rate with fan-out
//! (400 events/s to 10 webhooks for 5 minutes by default), sent at their own times
//! whatever the earlier ones take (open loop), as in the latency scenario. Reports the
//! ingest-to-receipt latency of each window of send time (a minute by default) and of
//! the whole run, the last window's p99 over the first's, CPU per delivery, and, on
//! PostgreSQL, the live and dead rows of the tables every delivery writes, read once
//! the service has stopped.

use serde::Serialize;

use super::cpu::CpuPerDelivery;
use super::load::Events;
use super::receiver::Expect;
use super::report::{Latency, Row, Tally, ratio};
use super::table_stats::{self, TableRows};
use super::{Bench, Scenario};

/// The deliveries of the events sent in one window.
#[derive(Debug, Serialize)]
pub struct Window {
    /// When the window starts, in seconds after the first event was due.
    start_secs: f64,
    #[serde(flatten)]
    latency: Latency,
}

/// What a sustained run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    scenario: Scenario,
    rate: u32,
    fanout: usize,
    duration_secs: f64,
    window_secs: f64,
    events: usize,
    sent_per_sec: f64,
    #[serde(flatten)]
    tally: Tally,
    latency: Latency,
    windows: Vec<Window>,
    /// The last window's p99 over the first's.
    p99_last_vs_first_window: f64,
    #[serde(flatten)]
    cpu: CpuPerDelivery,
    /// Live and dead rows after the run (PostgreSQL started by the bench only).
    tables: Option<Vec<TableRows>>,
}

/// Runs the scenario.
pub async fn run(bench: &mut Bench) -> anyhow::Result<Report> {
    let plan = &bench.plan;
    let (rate, fanout, events) = (plan.rate, plan.fanout, plan.open_loop_events());
    let (duration, window) = (plan.duration, plan.window);
    let per_window = plan.events_per_window();
    let hooks = bench.fan_out_hooks(fanout, false);
    let stream = Events::uniform(plan.data_bytes);
    let expect = Expect::FanOut {
        events,
        hooks: fanout,
    };
    let label = format!("sending {rate} events/s to {fanout} webhooks for {duration:?}");
    let (sent_per_sec, settled, cpu) = bench.at_rate(&hooks, &stream, expect, &label, None).await?;
    let tables = match table_stats::postgres_url(&bench.plan.target) {
        Some(url) => Some(table_stats::read(url).await?),
        None => None,
    };
    let windows: Vec<Window> = settled
        .timings
        .by_window(per_window)
        .into_iter()
        .enumerate()
        .map(|(index, latency)| Window {
            start_secs: index as f64 * window.as_secs_f64(),
            latency,
        })
        .collect();
    let p99_last_vs_first_window = match (windows.first(), windows.last()) {
        (Some(first), Some(last)) => ratio(last.latency.p99_ms, first.latency.p99_ms),
        _ => 0.0,
    };
    Ok(Report {
        scenario: Scenario::Sustained,
        rate,
        fanout,
        duration_secs: duration.as_secs_f64(),
        window_secs: window.as_secs_f64(),
        events,
        sent_per_sec,
        latency: settled.latency(),
        tally: settled.tally,
        windows,
        p99_last_vs_first_window,
        cpu,
        tables,
    })
}

impl Report {
    /// The table.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = vec![
            ("scenario", "sustained".to_owned()),
            (
                "load",
                format!(
                    "{} events/s x {} webhooks for {} s = {} deliveries (sent at {:.0} events/s)",
                    self.rate,
                    self.fanout,
                    self.duration_secs,
                    self.tally.deliveries_expected,
                    self.sent_per_sec
                ),
            ),
            ("verified", self.tally.describe()),
            ("p50 / p95 / p99 / max", self.latency.describe()),
        ];
        for window in &self.windows {
            rows.push((
                "  window",
                format!(
                    "from {:>4.0} s: {} ({} deliveries)",
                    window.start_secs,
                    window.latency.describe(),
                    window.latency.samples
                ),
            ));
        }
        rows.push((
            "p99 last / first window",
            format!("{:.2}x", self.p99_last_vs_first_window),
        ));
        rows.push(("CPU per delivery", self.cpu.describe()));
        let tables = self.tables.as_ref().map_or_else(
            || "n/a (PostgreSQL started by the bench only)".to_owned(),
            |tables| {
                let each: Vec<String> = tables
                    .iter()
                    .map(|t| format!("{} {} / {}", t.table, t.live_rows, t.dead_rows))
                    .collect();
                each.join(", ")
            },
        );
        rows.push(("rows live / dead", tables));
        rows
    }

    /// Why the run's counts are not exact, if they are not.
    pub fn incomplete(&self) -> Option<String> {
        (!self.tally.exact()).then(|| format!("deliveries: {}", self.tally.describe()))
    }
}
