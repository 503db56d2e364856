//! `fullup bench`: measures the service end to end on loopback, like `pgbench` or
//! `redis-benchmark`, and checks every delivery on the way.
//!
//! It starts everything itself: `fullup serve` as a separate process on a fresh SQLite
//! file, a receiver that verifies every `fullup-signature`, and the load. Each run also
//! measures the ceiling: the same HTTP client posting the same signed bodies to the same
//! receiver with the same concurrency and no service in between; the service's figure is
//! reported as a share of it. Exit code 0 when every delivery arrived verified, 1 when
//! not, 2 on error.

mod load;
mod receiver;
mod service;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

/// Which measurement to run.
#[derive(Debug, Clone, Copy, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Scenario {
    /// Ingest as fast as possible with fan-out; deliveries/s over the whole run.
    Throughput,
}

/// Arguments of `fullup bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario.
    #[arg(long, value_enum, default_value = "throughput")]
    scenario: Scenario,
    /// Events to ingest.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Webhooks each event goes to.
    #[arg(long, default_value_t = 10)]
    fanout: usize,
    /// Size of each event's `data`, in bytes.
    #[arg(long, default_value_t = 1024)]
    data_bytes: usize,
    /// Concurrent clients, for ingest and for the ceiling.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Requests of the ceiling run (default: as many as deliveries, at most 50,000).
    #[arg(long)]
    ceiling_requests: Option<usize>,
    /// Stop waiting for deliveries after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// What a throughput run measured.
#[derive(Debug, Serialize)]
struct Report {
    scenario: Scenario,
    events: usize,
    fanout: usize,
    deliveries_expected: usize,
    deliveries_verified: usize,
    deliveries_distinct: usize,
    signature_failures: usize,
    ingest_events_per_sec: f64,
    deliveries_per_sec: f64,
    ceiling_requests_per_sec: f64,
    share_of_ceiling: f64,
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.events > 0, "--events must be at least 1");
    anyhow::ensure!(
        (1..=100).contains(&args.fanout),
        "--fanout must be between 1 and 100"
    );
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(throughput(&args))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    let complete =
        report.deliveries_distinct == report.deliveries_expected && report.signature_failures == 0;
    if !complete {
        eprintln!(
            "fullup bench: {} of {} deliveries verified, {} signature failures",
            report.deliveries_distinct, report.deliveries_expected, report.signature_failures
        );
    }
    Ok(if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn throughput(args: &Args) -> anyhow::Result<Report> {
    let secret = fullup_signature::Secret::generate();
    let receiver = receiver::Receiver::start(&secret).await?;
    let dir = tempfile::tempdir().context("creating a temporary folder for the database")?;
    let service = service::Service::start(dir.path()).await?;
    let load = load::Load::new(&service, args.concurrency)?;
    let site = load.setup(&receiver, &secret, args.fanout).await?;
    let data = load::event_data(args.data_bytes);
    eprintln!(
        "fullup bench: ingesting {} events, fan-out {}",
        args.events, args.fanout
    );
    let ingest = load.ingest(&site, &data, args.events).await?;
    let expected = args.events * args.fanout;
    let delivered = receiver.wait_for(expected, args.timeout).await;
    let delivery_secs = delivered
        .map_or(args.timeout, |at| at.duration_since(ingest.started))
        .as_secs_f64();
    let counts = receiver.counts();
    drop(service);
    eprintln!("fullup bench: measuring the ceiling");
    let ceiling = load
        .ceiling(
            &receiver,
            &secret,
            &data,
            args.ceiling_requests.unwrap_or(expected.min(50_000)).max(1),
        )
        .await?;
    let deliveries_per_sec = counts.distinct as f64 / delivery_secs;
    Ok(Report {
        scenario: args.scenario,
        events: args.events,
        fanout: args.fanout,
        deliveries_expected: expected,
        deliveries_verified: counts.verified,
        deliveries_distinct: counts.distinct,
        signature_failures: counts.failures,
        ingest_events_per_sec: ingest.accepted as f64 / ingest.elapsed.as_secs_f64(),
        deliveries_per_sec,
        ceiling_requests_per_sec: ceiling,
        share_of_ceiling: deliveries_per_sec / ceiling,
    })
}

fn print_table(r: &Report) {
    println!("scenario                 throughput");
    println!(
        "events x fan-out         {} x {} = {}",
        r.events, r.fanout, r.deliveries_expected
    );
    println!(
        "verified                 {} distinct of {} verified requests, {} signature failures",
        r.deliveries_distinct, r.deliveries_verified, r.signature_failures
    );
    println!(
        "ingest                   {:.0} events/s",
        r.ingest_events_per_sec
    );
    println!(
        "deliveries               {:.0} deliveries/s",
        r.deliveries_per_sec
    );
    println!(
        "ceiling (no service)     {:.0} requests/s",
        r.ceiling_requests_per_sec
    );
    println!(
        "share of ceiling         {:.1} %",
        r.share_of_ceiling * 100.0
    );
}
