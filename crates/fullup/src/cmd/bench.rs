//! `fullup bench`: measures the service end to end, like `pgbench` or `redis-benchmark`,
//! and checks every delivery on the way.
//!
//! By default it starts everything itself on loopback: `fullup serve` as a separate
//! process on a fresh SQLite file (a fresh one per run), a receiver that verifies both
//! signatures of every delivery, and the load. `--target` measures a running deployment
//! instead.
//! Each scenario also measures the ceiling: the same signed bodies sent to the same
//! receiver with no service in between, through the service's own delivery client and
//! through a lean one (`ceiling.rs`); the service's figure is reported against them.
//! Exit code 0 when every expected delivery arrived verified and nothing else did, 1
//! when not, 2 on error.

mod backlog;
mod ceiling;
mod cpu;
mod deployment;
mod ingest;
mod isolation;
mod latency;
mod load;
mod plan;
mod progress;
mod receiver;
mod report;
mod service;
mod stall;
mod sustained;
mod table_stats;
mod throughput;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use fullup_signature::Secret;
use serde::Serialize;

use self::cpu::CpuPerDelivery;
use self::deployment::{Deployment, Nodes};
use self::load::{Events, Load, Pace, Requests};
use self::plan::Plan;
use self::progress::Progress;
use self::receiver::{Expect, Receiver};
use self::report::{Row, Tally, Timings};
use fullup_client::NewWebhook;

/// Which measurement to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Scenario {
    /// Ingest as fast as possible with fan-out; deliveries/s over the whole run.
    Throughput,
    /// Concurrent clients posting single events (fan-out 1); accepted events/s.
    Ingest,
    /// A fixed event rate (fan-out 1); ingest-to-receipt latency percentiles.
    Latency,
    /// Deliveries queued on paused webhooks, then resumed; drain rate and peak memory.
    Backlog,
    /// Healthy webhooks beside one whose receiver never answers; their p99 latency
    /// against a run without it.
    Isolation,
    /// A fixed event rate with fan-out for minutes; latency per window, and the dead
    /// rows left in PostgreSQL.
    Sustained,
}

impl Scenario {
    /// Its name on the command line.
    fn name(self) -> &'static str {
        match self {
            Self::Throughput => "throughput",
            Self::Ingest => "ingest",
            Self::Latency => "latency",
            Self::Backlog => "backlog",
            Self::Isolation => "isolation",
            Self::Sustained => "sustained",
        }
    }
}

/// Arguments of `fullup bench`. Flags without a default take the scenario's own, and a
/// flag a scenario does not use is refused.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario.
    #[arg(long, value_enum, default_value = "throughput")]
    scenario: Scenario,
    /// Events to ingest (throughput, ingest; default 20,000).
    #[arg(long)]
    events: Option<usize>,
    /// Webhooks each event goes to (throughput, backlog, sustained; default 10).
    #[arg(long)]
    fanout: Option<usize>,
    /// Size of each event's `data`, in bytes.
    #[arg(long, default_value_t = 1024)]
    data_bytes: usize,
    /// Concurrent ingest clients (throughput, ingest, backlog; default 32).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Requests of each ceiling run (throughput, ingest, backlog; default as many as the
    /// run's deliveries, at most 50,000).
    #[arg(long)]
    ceiling_requests: Option<usize>,
    /// Kept-alive connections of the physical ceiling's lean client (throughput, ingest,
    /// backlog; default 128).
    #[arg(long)]
    physical_connections: Option<usize>,
    /// Events per second, over all webhooks (latency, isolation; default 1,000;
    /// sustained: 400).
    #[arg(long)]
    rate: Option<u32>,
    /// How long to send events for (latency, isolation; default 30s; sustained: 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// The latency of each window of this much send time is reported (sustained;
    /// default 1m).
    #[arg(long, value_parser = humantime::parse_duration)]
    window: Option<Duration>,
    /// Deliveries to queue before resuming (backlog; default 1,000,000).
    #[arg(long)]
    backlog: Option<usize>,
    /// Deliveries of the smaller backlog run whose drain rate the main one is compared
    /// to; 0 skips it (backlog; default 10,000).
    #[arg(long)]
    reference_backlog: Option<usize>,
    /// Healthy webhooks beside the stalled one (isolation; default 20).
    #[arg(long)]
    healthy_webhooks: Option<usize>,
    /// Make the stalled side a noisy tenant: instead of one stalled webhook of the
    /// run's site, another site with 40 webhooks on the never-answering receiver, sent
    /// 20 events as the run starts (isolation).
    #[arg(long)]
    noisy_site: bool,
    /// Give up waiting for deliveries when none has arrived for this long.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print one JSON object instead of a table (and no progress bar).
    #[arg(long)]
    json: bool,
    /// Benchmark the deployment at this URL instead of starting one, with the admin
    /// token in FULLUP_ADMIN_TOKEN (never a flag: command lines are visible to every
    /// user of the machine); the bench creates its own site and webhooks there and
    /// deletes the site at the end.
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// The `--database-url` of the service the bench starts (a new SQLite file per run
    /// by default); the database should be empty.
    #[arg(long, value_name = "URL", conflicts_with = "target")]
    database_url: Option<String>,
    /// The `fullup` executable whose `serve` the bench starts (default: this one), so
    /// that two builds are measured by one bench in one sitting.
    #[arg(long, value_name = "PATH", conflicts_with = "target")]
    service_exe: Option<std::path::PathBuf>,
    /// Start N `fullup serve` nodes (2 or 3) for each run instead of one, each in a
    /// network namespace of its own on a veth link (a test device: root and iproute2
    /// needed), all on the PostgreSQL database of `--database-url`, which they reach
    /// through a forwarder in the bench. The load and API calls go to node A; every node
    /// delivers, and the receivers listen on the root namespace's end of the links.
    #[arg(
        long,
        value_name = "N",
        requires = "database_url",
        conflicts_with_all = ["target", "receiver_listen", "receiver_url", "stall_listen", "stall_url"]
    )]
    nodes: Option<usize>,
    /// With `--nodes`: node A serves the API only (`--workers 0`), so the other nodes
    /// make every delivery (the latency scenario then measures ingest on A to delivery
    /// by B).
    #[arg(long, requires = "nodes")]
    api_only_first_node: bool,
    /// Where the verifying receiver listens.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    receiver_listen: SocketAddr,
    /// The receiver's base URL as the service reaches it (default `http://` and the
    /// address it listens on).
    #[arg(long, value_name = "URL")]
    receiver_url: Option<String>,
    /// Where the isolation scenario's never-answering receiver listens (default: the
    /// receiver's IP, any port).
    #[arg(long, value_name = "ADDR")]
    stall_listen: Option<SocketAddr>,
    /// That receiver's base URL as the service reaches it.
    #[arg(long, value_name = "URL")]
    stall_url: Option<String>,
    /// Injects a fault the bench must detect (exit 1): for its own tests.
    #[arg(long, value_enum, hide = true)]
    fault: Option<Fault>,
}

/// A fault injected into the bench's own receiver, which the checks every run goes
/// through must catch: the tests prove a run with either exits 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Fault {
    /// The receiver verifies with another secret than the one the webhooks (and so the
    /// service) sign with.
    WrongSecret,
    /// The receiver answers the first expected delivery 200 without recording it.
    DropOne,
}

/// What a scenario measured.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Report {
    Throughput(throughput::Report),
    Ingest(ingest::Report),
    Latency(latency::Report),
    Backlog(backlog::Report),
    Isolation(isolation::Report),
    Sustained(sustained::Report),
}

impl Report {
    fn rows(&self) -> Vec<Row> {
        match self {
            Self::Throughput(r) => r.rows(),
            Self::Ingest(r) => r.rows(),
            Self::Latency(r) => r.rows(),
            Self::Backlog(r) => r.rows(),
            Self::Isolation(r) => r.rows(),
            Self::Sustained(r) => r.rows(),
        }
    }

    /// Every expected delivery arrived verified, and nothing else did; why not otherwise.
    fn incomplete(&self) -> Option<String> {
        match self {
            Self::Throughput(r) => r.incomplete(),
            Self::Ingest(r) => r.incomplete(),
            Self::Latency(r) => r.incomplete(),
            Self::Backlog(r) => r.incomplete(),
            Self::Isolation(r) => r.incomplete(),
            Self::Sustained(r) => r.incomplete(),
        }
    }
}

/// The deliveries of a run, once all arrived or the wait gave up.
struct Settled {
    /// When the last new one arrived.
    last: Option<std::time::Instant>,
    /// What arrived.
    tally: Tally,
    /// The most requests the service had in flight to the receiver at once.
    peak_in_flight: usize,
    /// When each event was sent and each of its deliveries verified.
    timings: Timings,
}

impl Settled {
    /// From just before each event was sent to each of its deliveries' verification.
    fn latency(&self) -> report::Latency {
        self.timings.latency()
    }
}

/// What every scenario works with.
struct Bench {
    plan: Plan,
    /// The hosts of `--nodes`.
    nodes: Option<Nodes>,
    /// Holds the main key file every service the bench starts seals with, created by
    /// the first: runs sharing a `--database-url` must open what the first sealed.
    keys: tempfile::TempDir,
    /// The webhooks' signing secret.
    secret: Secret,
    /// The secret the receiver verifies with, and the ceilings sign with: the webhooks'
    /// own, except under `--fault wrong-secret`.
    receiver_secret: Secret,
    client: reqwest::Client,
    receiver: Receiver,
    progress: Progress,
}

impl Bench {
    /// The main key file of the services the bench starts.
    fn key_file(&self) -> std::path::PathBuf {
        self.keys.path().join("fullup.key")
    }

    /// Starts (or connects to) a service with `hooks` webhooks on a new site; returns it
    /// with the webhooks' ids.
    async fn deploy(&self, hooks: &[NewWebhook]) -> anyhow::Result<(Deployment, Vec<String>)> {
        let deployment = match &self.nodes {
            Some(nodes) => Deployment::start_nodes(nodes, &self.client, &self.key_file()).await?,
            None => Deployment::start(&self.plan.target, &self.client, &self.key_file()).await?,
        };
        let mut ids = Vec::with_capacity(hooks.len());
        for hook in hooks {
            ids.push(deployment.create_webhook(&deployment.site, hook).await?);
        }
        Ok((deployment, ids))
    }

    /// `count` webhooks to the receiver, subscribed to every event.
    fn fan_out_hooks(&self, count: usize, paused: bool) -> Vec<NewWebhook> {
        (0..count)
            .map(|index| NewWebhook {
                event_types: vec!["*".to_owned()],
                secret: Some(self.secret.clone()),
                paused,
                ..NewWebhook::new(self.receiver.url(index))
            })
            .collect()
    }

    /// Sends `requests`, one per event of `expect`, at `pace`, with a progress bar; the
    /// receiver expects `expect` from now on.
    async fn send(
        &mut self,
        label: &str,
        requests: Requests,
        expect: Expect,
        pace: Pace,
    ) -> anyhow::Result<load::Sent> {
        self.receiver.expect(expect);
        let load = Load::new(requests, self.receiver.epoch(), expect.events());
        self.progress
            .phase(label, expect.events(), load.answered_counter());
        load.run(pace).await
    }

    /// Waits for the deliveries of the run `send` started.
    async fn settle(&mut self, sent: &load::Sent) -> Settled {
        let expect = self.receiver.expectation();
        self.progress.phase(
            "waiting for deliveries",
            expect.expected(),
            self.receiver.distinct_counter(),
        );
        let last = self.receiver.wait_for_all(self.plan.timeout).await;
        Settled {
            last,
            tally: Tally::new(expect.expected(), self.receiver.counts()),
            peak_in_flight: self.receiver.peak_in_flight(),
            timings: Timings {
                sent_at: sent.sent_at.clone(),
                receipts: self.receiver.receipts(),
                per_event: expect.slots_per_event(),
            },
        }
    }

    /// Sends `stream`'s events at `--rate` to a fresh service with `hooks` and waits
    /// for their deliveries; returns the rate they were sent at, the deliveries, and the
    /// CPU they cost.
    async fn at_rate(
        &mut self,
        hooks: &[NewWebhook],
        stream: &Events,
        expect: Expect,
        label: &str,
        noise: Option<&isolation::Noise>,
    ) -> anyhow::Result<(f64, Settled, CpuPerDelivery)> {
        let (deployment, _) = self.deploy(hooks).await?;
        let noisy = match noise {
            Some(noise) => Some(noise.start(&deployment, &self.secret).await?),
            None => None,
        };
        let requests = stream.ingest(&deployment.api, &deployment.site);
        let pace = Pace::Open {
            rate: f64::from(self.plan.rate),
        };
        let cpu_start = deployment.cpu_now();
        let sent = self.send(label, requests, expect, pace).await?;
        let settled = self.settle(&sent).await;
        let cpu = cpu_start.per_delivery(&deployment.cpu_now(), settled.tally.deliveries_distinct);
        if let Some(site) = noisy {
            deployment.api.delete_site(&site).await?;
        }
        deployment.finish().await?;
        Ok((sent.send_rate(), settled, cpu))
    }
}

/// Runs the benchmark.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = Plan::from_args(args)?;
    let json = plan.json;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(measure(plan))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        report::print_table(&report.rows());
    }
    Ok(match report.incomplete() {
        None => ExitCode::SUCCESS,
        Some(why) => {
            eprintln!("fullup bench: {why}");
            ExitCode::from(1)
        }
    })
}

async fn measure(mut plan: Plan) -> anyhow::Result<Report> {
    let nodes = match plan.nodes {
        Some(nodes) => Some(Nodes::start(nodes, &plan.target).await?),
        None => None,
    };
    if let Some(nodes) = &nodes {
        // The nodes reach the root namespace over their links only.
        plan.receiver_listen = SocketAddr::new(nodes.root_ip(), 0);
        plan.stall_listen = SocketAddr::new(nodes.root_ip(), 0);
    }
    let secret = Secret::generate();
    let receiver_secret = match plan.fault {
        Some(Fault::WrongSecret) => Secret::generate(),
        _ => secret.clone(),
    };
    let drop_one = plan.fault == Some(Fault::DropOne);
    let (listen, public) = (plan.receiver_listen, plan.receiver_url.as_deref());
    let receiver = Receiver::start(&receiver_secret, listen, public, drop_one).await?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("building the HTTP client")?;
    let mut bench = Bench {
        progress: Progress::new(!plan.json),
        plan,
        nodes,
        keys: tempfile::tempdir().context("creating a temporary folder for the main key")?,
        secret,
        receiver_secret,
        client,
        receiver,
    };
    let report = match bench.plan.scenario {
        Scenario::Throughput => Report::Throughput(throughput::run(&mut bench).await?),
        Scenario::Ingest => Report::Ingest(ingest::run(&mut bench).await?),
        Scenario::Latency => Report::Latency(latency::run(&mut bench).await?),
        Scenario::Backlog => Report::Backlog(backlog::run(&mut bench).await?),
        Scenario::Isolation => Report::Isolation(isolation::run(&mut bench).await?),
        Scenario::Sustained => Report::Sustained(sustained::run(&mut bench).await?),
    };
    bench.progress.finish();
    Ok(report)
}
