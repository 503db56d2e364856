//! The one place `fullup bench`'s flags are checked and given their scenario's defaults:
//! every error names the flag to change.

use std::net::SocketAddr;
use std::time::Duration;

use super::deployment::{NodesPlan, Target};
use super::{Args, Fault, Scenario};

/// The issue's sizes: 20,000 events of throughput and ingest.
const DEFAULT_EVENTS: usize = 20_000;
/// Throughput, backlog and sustained fan each event out to 10 webhooks.
const DEFAULT_FANOUT: usize = 10;
/// Ingest clients.
const DEFAULT_CONCURRENCY: usize = 32;
/// Latency and isolation send 1,000 events/s ...
const DEFAULT_RATE: u32 = 1000;
/// ... for 30 s.
const DEFAULT_DURATION: Duration = Duration::from_secs(30);
/// Sustained sends 400 events/s (4,000 deliveries/s at fan-out 10: 80 % of the
/// PostgreSQL throughput in docs/benchmarks.md; pass 80 % of your own) ...
const DEFAULT_SUSTAINED_RATE: u32 = 400;
/// ... for 5 minutes ...
const DEFAULT_SUSTAINED_DURATION: Duration = Duration::from_secs(5 * 60);
/// ... and reports the latency of each minute.
const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// The backlog that must drain at >= 80 % of the reference's rate.
const DEFAULT_BACKLOG: usize = 1_000_000;
/// The reference backlog.
const DEFAULT_REFERENCE_BACKLOG: usize = 10_000;
/// Healthy webhooks of the isolation scenario.
const DEFAULT_HEALTHY_WEBHOOKS: usize = 20;
/// Connections of the physical ceiling: a loopback round trip takes tens of µs, so a
/// few dozen kept-alive connections already keep a receiver's cores busy; 128 leaves a
/// margin. Fewer may be faster on a small machine: `--physical-connections`.
const DEFAULT_PHYSICAL_CONNECTIONS: usize = 128;
/// The ceiling's requests when not given: enough for a stable rate, not so many that
/// the ceiling takes longer than the run.
const MAX_DEFAULT_CEILING_REQUESTS: usize = 50_000;
/// A site holds at most this many webhooks (the service's limit).
const MAX_WEBHOOKS: usize = 100;
/// Open-loop rates above this are beyond one load generator's pacing.
const MAX_RATE: u32 = 100_000;
/// Most `--nodes`: each keeps up to 17 PostgreSQL connections against the default
/// `max_connections` of 100, and a 2-core machine has nothing left to run a fourth on.
const MAX_NODES: usize = 3;

/// Validated settings of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The scenario.
    pub scenario: Scenario,
    /// Events of a closed-loop run.
    pub events: usize,
    /// Webhooks per event.
    pub fanout: usize,
    /// Bytes of each event's data.
    pub data_bytes: usize,
    /// Closed-loop clients.
    pub concurrency: usize,
    /// Requests of a closed-loop ceiling, when chosen.
    pub ceiling_requests: Option<usize>,
    /// Connections of the physical ceiling.
    pub physical_connections: usize,
    /// Open-loop events per second.
    pub rate: u32,
    /// Open-loop duration.
    pub duration: Duration,
    /// Sustained: the send time each latency window covers.
    pub window: Duration,
    /// Deliveries of the backlog run.
    pub backlog: usize,
    /// Deliveries of the reference backlog run (0: none).
    pub reference_backlog: usize,
    /// Healthy webhooks of the isolation scenario.
    pub healthy_webhooks: usize,
    /// Isolation: the stalled side is another site's 40 webhooks, not one of this site's.
    pub noisy_site: bool,
    /// Give up on deliveries after this long without a new one.
    pub timeout: Duration,
    /// JSON instead of a table.
    pub json: bool,
    /// Where the runs happen.
    pub target: Target,
    /// Several nodes per run, on hosts of their own.
    pub nodes: Option<NodesPlan>,
    /// Where the receiver listens.
    pub receiver_listen: SocketAddr,
    /// The receiver's public base URL.
    pub receiver_url: Option<String>,
    /// Where the stalled receiver listens.
    pub stall_listen: SocketAddr,
    /// Its public base URL.
    pub stall_url: Option<String>,
    /// A fault to inject (the bench's own tests).
    pub fault: Option<Fault>,
}

impl Plan {
    /// Checks `args` and fills in the scenario's defaults.
    pub fn from_args(args: Args) -> anyhow::Result<Self> {
        refuse_unused(&args)?;
        let plan = Self {
            scenario: args.scenario,
            events: args.events.unwrap_or(DEFAULT_EVENTS),
            fanout: args.fanout.unwrap_or(match args.scenario {
                Scenario::Throughput | Scenario::Backlog | Scenario::Sustained => DEFAULT_FANOUT,
                _ => 1,
            }),
            data_bytes: args.data_bytes,
            concurrency: args.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            ceiling_requests: args.ceiling_requests,
            physical_connections: args
                .physical_connections
                .unwrap_or(DEFAULT_PHYSICAL_CONNECTIONS),
            rate: args.rate.unwrap_or(match args.scenario {
                Scenario::Sustained => DEFAULT_SUSTAINED_RATE,
                _ => DEFAULT_RATE,
            }),
            duration: args.duration.unwrap_or(match args.scenario {
                Scenario::Sustained => DEFAULT_SUSTAINED_DURATION,
                _ => DEFAULT_DURATION,
            }),
            window: args.window.unwrap_or(DEFAULT_WINDOW),
            backlog: args.backlog.unwrap_or(DEFAULT_BACKLOG),
            reference_backlog: args.reference_backlog.unwrap_or(DEFAULT_REFERENCE_BACKLOG),
            healthy_webhooks: args.healthy_webhooks.unwrap_or(DEFAULT_HEALTHY_WEBHOOKS),
            noisy_site: args.noisy_site,
            timeout: args.timeout,
            json: args.json,
            target: target(&args)?,
            nodes: nodes(&args)?,
            receiver_listen: args.receiver_listen,
            receiver_url: args
                .receiver_url
                .map(|u| http_url("--receiver-url", u))
                .transpose()?,
            stall_listen: args
                .stall_listen
                .unwrap_or_else(|| SocketAddr::new(args.receiver_listen.ip(), 0)),
            stall_url: args
                .stall_url
                .map(|u| http_url("--stall-url", u))
                .transpose()?,
            fault: args.fault,
        };
        plan.check()?;
        Ok(plan)
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.events > 0, "--events must be at least 1");
        anyhow::ensure!(
            (1..=MAX_WEBHOOKS).contains(&self.fanout),
            "--fanout must be between 1 and {MAX_WEBHOOKS} (webhooks per site)"
        );
        anyhow::ensure!(self.concurrency > 0, "--concurrency must be at least 1");
        anyhow::ensure!(
            self.ceiling_requests != Some(0),
            "--ceiling-requests must be at least 1"
        );
        anyhow::ensure!(
            self.physical_connections > 0,
            "--physical-connections must be at least 1"
        );
        anyhow::ensure!(
            (1..=MAX_RATE).contains(&self.rate),
            "--rate must be between 1 and {MAX_RATE} events/s"
        );
        anyhow::ensure!(
            self.open_loop_events() > 0,
            "--duration must be long enough for one event at --rate"
        );
        anyhow::ensure!(
            self.events_per_window() > 0,
            "--window must be long enough for one event at --rate"
        );
        anyhow::ensure!(self.backlog > 0, "--backlog must be at least 1");
        for (flag, size) in [
            ("--backlog", self.backlog),
            ("--reference-backlog", self.reference_backlog),
        ] {
            anyhow::ensure!(
                size % self.fanout == 0,
                "{flag} ({size}) must be a multiple of --fanout ({}): it counts deliveries, events x fan-out",
                self.fanout
            );
        }
        anyhow::ensure!(
            (1..MAX_WEBHOOKS).contains(&self.healthy_webhooks),
            "--healthy-webhooks must be between 1 and {} (webhooks per site, less the stalled one)",
            MAX_WEBHOOKS - 1
        );
        anyhow::ensure!(!self.timeout.is_zero(), "--timeout must be more than 0s");
        anyhow::ensure!(
            !self.receiver_listen.ip().is_unspecified() || self.receiver_url.is_some(),
            "--receiver-listen {} needs --receiver-url: the address the service reaches the receiver at",
            self.receiver_listen
        );
        anyhow::ensure!(
            self.scenario != Scenario::Isolation
                || !self.stall_listen.ip().is_unspecified()
                || self.stall_url.is_some(),
            "--stall-listen {} needs --stall-url: the address the service reaches that receiver at",
            self.stall_listen
        );
        anyhow::ensure!(
            self.scenario != Scenario::Isolation
                || self.receiver_url.is_none()
                || self.stall_url.is_some(),
            "--scenario isolation with --receiver-url also needs --stall-url: where the service reaches the never-answering receiver (listening on --stall-listen)"
        );
        Ok(())
    }

    /// Events of an open-loop run: `rate` x `duration`.
    pub fn open_loop_events(&self) -> usize {
        (f64::from(self.rate) * self.duration.as_secs_f64()).round() as usize
    }

    /// Events sent in one latency window: `rate` x `window`.
    pub fn events_per_window(&self) -> usize {
        (f64::from(self.rate) * self.window.as_secs_f64()).round() as usize
    }

    /// Requests of a closed-loop ceiling for a run of `deliveries`.
    pub fn ceiling_requests_for(&self, deliveries: usize) -> usize {
        self.ceiling_requests
            .unwrap_or(deliveries.min(MAX_DEFAULT_CEILING_REQUESTS))
            .max(1)
    }
}

/// Refuses a flag given to a scenario that does not use it, rather than ignore it.
fn refuse_unused(args: &Args) -> anyhow::Result<()> {
    use Scenario::{Backlog, Ingest, Isolation, Latency, Sustained, Throughput};
    let flags: [(&str, bool, &[Scenario]); 12] = [
        ("--noisy-site", args.noisy_site, &[Isolation]),
        ("--events", args.events.is_some(), &[Throughput, Ingest]),
        (
            "--fanout",
            args.fanout.is_some(),
            &[Throughput, Backlog, Sustained],
        ),
        (
            "--concurrency",
            args.concurrency.is_some(),
            &[Throughput, Ingest, Backlog],
        ),
        (
            "--ceiling-requests",
            args.ceiling_requests.is_some(),
            &[Throughput, Ingest, Backlog],
        ),
        (
            "--physical-connections",
            args.physical_connections.is_some(),
            &[Throughput, Ingest, Backlog],
        ),
        (
            "--rate",
            args.rate.is_some(),
            &[Latency, Isolation, Sustained],
        ),
        (
            "--duration",
            args.duration.is_some(),
            &[Latency, Isolation, Sustained],
        ),
        ("--window", args.window.is_some(), &[Sustained]),
        ("--backlog", args.backlog.is_some(), &[Backlog]),
        (
            "--reference-backlog",
            args.reference_backlog.is_some(),
            &[Backlog],
        ),
        (
            "--healthy-webhooks",
            args.healthy_webhooks.is_some(),
            &[Isolation],
        ),
    ];
    for (flag, given, used_by) in flags {
        if given && !used_by.contains(&args.scenario) {
            let names: Vec<&str> = used_by.iter().map(|s| s.name()).collect();
            anyhow::bail!(
                "{flag} does not apply to --scenario {}; it is for --scenario {}",
                args.scenario.name(),
                names.join(", ")
            );
        }
    }
    Ok(())
}

fn nodes(args: &Args) -> anyhow::Result<Option<NodesPlan>> {
    let Some(count) = args.nodes else {
        return Ok(None);
    };
    anyhow::ensure!(
        (2..=MAX_NODES).contains(&count),
        "--nodes must be between 2 and {MAX_NODES}"
    );
    anyhow::ensure!(
        args.database_url
            .as_deref()
            .is_some_and(|url| url.starts_with("postgres")),
        "--nodes needs --database-url postgres://…: nodes share one PostgreSQL database (a SQLite file serves one process)"
    );
    Ok(Some(NodesPlan {
        count,
        api_only_first: args.api_only_first_node,
    }))
}

fn target(args: &Args) -> anyhow::Result<Target> {
    let Some(url) = &args.target else {
        return Ok(Target::Local {
            database_url: args.database_url.clone(),
            exe: args.service_exe.clone(),
        });
    };
    let base = http_url("--target", url.clone())?;
    let token = std::env::var(super::super::remote::ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("--target needs the deployment's admin token in FULLUP_ADMIN_TOKEN")
        })?;
    Ok(Target::Remote { base, token })
}

/// Checks that `url` is an http(s) URL; returns it without a trailing slash.
fn http_url(flag: &str, url: String) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| anyhow::anyhow!("{flag} `{url}` is not a URL: {e}"))?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
        "{flag} must be an http:// or https:// URL with a host, not `{url}`"
    );
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn plan(argv: &[&str]) -> anyhow::Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))?;
        Plan::from_args(cli.args)
    }

    fn refusal(argv: &[&str]) -> String {
        format!("{:#}", plan(argv).expect_err("refused"))
    }

    #[test]
    fn each_scenario_gets_the_issues_sizes_by_default() {
        let backlog = plan(&["--scenario", "backlog"]).expect("valid");
        assert_eq!(
            (backlog.backlog, backlog.reference_backlog, backlog.fanout),
            (1_000_000, 10_000, 10)
        );
        assert_eq!(backlog.ceiling_requests_for(backlog.backlog), 50_000);
        let latency = plan(&["--scenario", "latency"]).expect("valid");
        assert_eq!((latency.fanout, latency.open_loop_events()), (1, 30_000));
        let throughput = plan(&[]).expect("valid");
        assert_eq!((throughput.events, throughput.fanout), (20_000, 10));
        assert_eq!(throughput.physical_connections, 128);
        let sustained = plan(&["--scenario", "sustained"]).expect("valid");
        assert_eq!(
            (
                sustained.rate,
                sustained.fanout,
                sustained.open_loop_events()
            ),
            (400, 10, 120_000)
        );
        assert_eq!(sustained.events_per_window(), 24_000);
        assert!(matches!(throughput.target, Target::Local { .. }));
    }

    #[test]
    fn errors_name_the_flag_to_change() {
        assert!(refusal(&["--scenario", "ingest", "--rate", "5"]).starts_with("--rate "));
        assert!(
            refusal(&["--scenario", "backlog", "--backlog", "15"]).starts_with("--backlog (15)")
        );
        assert!(
            refusal(&[
                "--scenario",
                "latency",
                "--rate",
                "1",
                "--duration",
                "100ms"
            ])
            .starts_with("--duration")
        );
        assert!(refusal(&["--receiver-listen", "0.0.0.0:0"]).contains("--receiver-url"));
        assert!(refusal(&["--target", "ftp://host"]).starts_with("--target"));
        let isolation = [
            "--scenario",
            "isolation",
            "--receiver-url",
            "http://bench.example:9000",
        ];
        assert!(refusal(&isolation).contains("--stall-url"));
        let postgres = ["--database-url", "postgres://localhost/bench"];
        assert!(refusal(&[&["--nodes", "4"], &postgres[..]].concat()).starts_with("--nodes "));
        let sqlite = ["--nodes", "2", "--database-url", "sqlite://bench.db"];
        assert!(refusal(&sqlite).starts_with("--nodes needs"));
        assert!(refusal(&["--nodes", "2"]).contains("--database-url"));
        assert!(refusal(&["--api-only-first-node"]).contains("--nodes"));
    }

    #[test]
    fn nodes_go_with_their_database() {
        let argv = [
            "--nodes",
            "3",
            "--api-only-first-node",
            "--database-url",
            "postgres://localhost/bench",
        ];
        let nodes = plan(&argv).expect("valid").nodes.expect("nodes");
        assert_eq!((nodes.count, nodes.api_only_first), (3, true));
        assert!(plan(&[]).expect("valid").nodes.is_none());
    }
}
