//! `fullup serve`: the webhook service (API and delivery workers) in one process, or
//! the API alone (`--workers 0`).

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use fullup_server::api::throttle::{AuthLimits, DEFAULT_AUTH_FAILURES, DEFAULT_AUTH_WINDOW};
use fullup_server::app::Application;
use fullup_server::config::{
    ApiLimits, Config, DEFAULT_API_TIMEOUT, DEFAULT_DATABASE_URL, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_INGEST_BURST, DEFAULT_INGEST_RATE, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_EVENT_BYTES, DEFAULT_PRUNE_BATCH, DEFAULT_PRUNE_INTERVAL, DEFAULT_PRUNE_PAUSE,
    DEFAULT_SHUTDOWN_TIMEOUT, GeneratedAdminToken, RetentionConfig,
};
use fullup_server::console::ConsoleConfig;
use fullup_server::delivery::ssrf::NetworkPolicy;
use fullup_server::delivery::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_DISABLE_AFTER, DEFAULT_PER_SITE_CONCURRENCY,
    DEFAULT_PER_WEBHOOK_CONCURRENCY, DEFAULT_REQUEST_TIMEOUT, DEFAULT_WORKERS, DeliveryConfig,
};
use fullup_server::domain::clock::SystemClock;
use fullup_server::domain::retry::{DEFAULT_DELAYS, DEFAULT_JITTER, RetrySchedule};
use fullup_server::store::postgres::{MIN_POOL_CONNECTIONS, POOL_CONNECTIONS};
use fullup_server::store::{DEFAULT_DATABASE_WAIT, StoreSettings};
use fullup_signature::Secret;
use humantime::Duration as HumanDuration;

use super::logging::{self, LogFormat};

/// Environment variable holding the admin token (never a flag: argv is visible to every
/// user of the machine).
const ADMIN_TOKEN_ENV: &str = "FULLUP_ADMIN_TOKEN";

/// Shorter admin tokens are refused (unless `--insecure-dev-admin-token`): 32 random
/// characters are past guessing; a word or a short dev token is not, and the admin
/// token opens every site.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// What `fullup serve --help` says about the environment, before the logging notes.
const ENVIRONMENT_HELP: &str = "\
Environment:
  FULLUP_ADMIN_TOKEN  The admin token, 32 characters or more (`fullup secret new` prints
                      one; shorter only with --insecure-dev-admin-token). Never a flag:
                      command lines are visible to every user of the machine. Unset: the
                      token stored by an earlier start is kept, or one is generated and
                      written to --admin-token-file, or shown once when stdout is a
                      terminal (never printed into logs).
  FULLUP_MAIN_KEY     The main key (base64 of 32 bytes), instead of --main-key-file.
  Every flag also reads the variable shown as its [env: ...].";

/// Arguments of `fullup serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = format!("{ENVIRONMENT_HELP}\n\n{}", super::logging::HELP))]
pub struct Args {
    /// Database URL: `sqlite://PATH` (created if missing) for one node, or
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (the database must exist) for several
    /// nodes sharing it; PostgreSQL needs `FULLUP_MAIN_KEY` or `--main-key-file`.
    #[arg(long, env = "FULLUP_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Connections this node keeps at most to PostgreSQL (every node has its own pool:
    /// keep nodes x pool size below the server's `max_connections`). Ignored by SQLite.
    #[arg(long, env = "FULLUP_DATABASE_POOL_SIZE", default_value_t = POOL_CONNECTIONS)]
    database_pool_size: u32,
    /// How long to wait at start for a PostgreSQL database that is unreachable (refusing
    /// connections, restarting, out of space), trying again with backoff and a log line
    /// each time; then exit with status 2. `0s`: one try, then exit. Other failures (a
    /// wrong password, a missing database) exit at once. Ignored by SQLite.
    #[arg(long, env = "FULLUP_DATABASE_WAIT", default_value_t = DEFAULT_DATABASE_WAIT.into())]
    database_wait: HumanDuration,
    /// Address the API listens on.
    #[arg(long, env = "FULLUP_LISTEN", default_value_t = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Also serve `/metrics`, `/healthz` and `/readyz` on this address (one only the
    /// monitoring network reaches); the API address serves them too.
    #[arg(long, env = "FULLUP_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Log format: pretty (human-readable) or json (one object per line). Default:
    /// pretty on a terminal, json otherwise.
    #[arg(long, env = "FULLUP_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Delays between attempts after the first failure, comma-separated.
    #[arg(
        long,
        env = "FULLUP_RETRY_SCHEDULE",
        value_delimiter = ',',
        default_values_t = DEFAULT_DELAYS.map(HumanDuration::from)
    )]
    retry_schedule: Vec<HumanDuration>,
    /// Time allowed to connect to a receiver.
    #[arg(long, env = "FULLUP_CONNECT_TIMEOUT", default_value_t = DEFAULT_CONNECT_TIMEOUT.into())]
    connect_timeout: HumanDuration,
    /// Time allowed for a whole delivery request, answer included.
    #[arg(long, env = "FULLUP_REQUEST_TIMEOUT", default_value_t = DEFAULT_REQUEST_TIMEOUT.into())]
    request_timeout: HumanDuration,
    /// Attempts in flight at once, over all webhooks. 0 makes an API-only node: it
    /// accepts events and delivers none, leaving them to the other nodes on the same
    /// PostgreSQL database (on SQLite, to the next start with workers).
    #[arg(long, env = "FULLUP_WORKERS", default_value_t = DEFAULT_WORKERS)]
    workers: usize,
    /// Attempts in flight at once to one webhook.
    #[arg(long, env = "FULLUP_PER_WEBHOOK_CONCURRENCY", default_value_t = DEFAULT_PER_WEBHOOK_CONCURRENCY)]
    per_webhook_concurrency: usize,
    /// Attempts in flight at once for one site, over all its webhooks.
    #[arg(long, env = "FULLUP_PER_SITE_CONCURRENCY", default_value_t = DEFAULT_PER_SITE_CONCURRENCY)]
    per_site_concurrency: usize,
    /// Disable a webhook after it has failed without one success for this long.
    #[arg(long, env = "FULLUP_DISABLE_AFTER", default_value_t = DEFAULT_DISABLE_AFTER.into())]
    disable_after: HumanDuration,
    /// Open a special-purpose range (loopback, private, ...) to webhooks, such as
    /// `127.0.0.0/8` for a local receiver. Repeatable; comma-separated in the variable.
    #[arg(
        long = "allow-network",
        env = "FULLUP_ALLOW_NETWORK",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    allow_network: Vec<ipnet::IpNet>,
    /// Refuse webhook URLs that are not https.
    #[arg(long, env = "FULLUP_REQUIRE_HTTPS")]
    require_https: bool,
    /// Largest accepted event request body, in bytes.
    #[arg(long, env = "FULLUP_MAX_EVENT_BYTES", default_value_t = DEFAULT_MAX_EVENT_BYTES)]
    max_event_bytes: usize,
    /// Events per second each credential (admin token, site API key) may ingest; 0 disables.
    #[arg(long, env = "FULLUP_INGEST_RATE_LIMIT", default_value_t = DEFAULT_INGEST_RATE)]
    ingest_rate_limit: u32,
    /// Events a credential may send at once above its rate.
    #[arg(long, env = "FULLUP_INGEST_BURST", default_value_t = DEFAULT_INGEST_BURST)]
    ingest_burst: u32,
    /// After SIGTERM or SIGINT: time the delivery attempts and API requests in flight
    /// get to finish (no new delivery starts after the signal). Attempts still running
    /// then are stopped and their deliveries given back for the next node or start,
    /// not counted as failures. Keep it below the orchestrator's kill grace (30 s on
    /// Kubernetes, ECS and systemd).
    #[arg(long, env = "FULLUP_SHUTDOWN_TIMEOUT", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT.into())]
    shutdown_timeout: HumanDuration,
    /// How long events are kept, with their deliveries and attempts (`30d`, `720h`);
    /// older ones are pruned in small batches, except events whose deliveries have not
    /// finished. Unset: kept forever (a site's own `retention_days` still applies).
    #[arg(long, env = "FULLUP_RETENTION", value_name = "DURATION")]
    retention: Option<HumanDuration>,
    /// Time between two prune passes.
    #[arg(long, env = "FULLUP_PRUNE_INTERVAL", default_value_t = DEFAULT_PRUNE_INTERVAL.into())]
    prune_interval: HumanDuration,
    /// Events pruned per batch (one short transaction each, with their deliveries and
    /// attempts), 1 to 10000.
    #[arg(long, env = "FULLUP_PRUNE_BATCH", default_value_t = DEFAULT_PRUNE_BATCH,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    prune_batch: u32,
    /// Pause between two prune batches, which lets the writes waiting meanwhile go first.
    #[arg(long, env = "FULLUP_PRUNE_PAUSE", default_value_t = DEFAULT_PRUNE_PAUSE.into())]
    prune_pause: HumanDuration,
    /// Time allowed for an API request, body upload included (then 503 `timeout`).
    #[arg(long, env = "FULLUP_API_TIMEOUT", default_value_t = DEFAULT_API_TIMEOUT.into())]
    api_timeout: HumanDuration,
    /// Time a client has to send a request's line and headers, and the longest a
    /// keep-alive connection may sit idle; then the connection is closed.
    #[arg(long, env = "FULLUP_HEADER_READ_TIMEOUT", default_value_t = DEFAULT_HEADER_READ_TIMEOUT.into())]
    header_read_timeout: HumanDuration,
    /// API connections served at once; further clients wait to be accepted.
    #[arg(long, env = "FULLUP_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Failed authentications (API tokens, console sign-ins) a client address may make
    /// per minute; past that it gets 429 until the minute ends. 0 disables. Behind a
    /// reverse proxy every client shares the proxy's address: raise it there.
    #[arg(long, env = "FULLUP_AUTH_FAILURE_LIMIT", default_value_t = DEFAULT_AUTH_FAILURES)]
    auth_failure_limit: u32,
    /// File holding the main key that seals webhook secrets (created, mode 0600, on first
    /// start; default `fullup.key` beside a SQLite database, required for PostgreSQL unless
    /// `FULLUP_MAIN_KEY` is set). `FULLUP_MAIN_KEY` takes precedence.
    #[arg(long, env = "FULLUP_MAIN_KEY_FILE", value_name = "PATH")]
    main_key_file: Option<std::path::PathBuf>,
    /// Where to write the admin token generated on a first start (when FULLUP_ADMIN_TOKEN
    /// is unset and the database holds none): a new file, mode 0600. Without it, the
    /// token is shown once when stdout is a terminal; otherwise the start fails rather
    /// than print it into logs.
    #[arg(long, env = "FULLUP_ADMIN_TOKEN_FILE", value_name = "PATH")]
    admin_token_file: Option<std::path::PathBuf>,
    /// Accept a FULLUP_ADMIN_TOKEN shorter than 32 characters, for a development setup
    /// only: a short token can be guessed, and it opens every site.
    #[arg(long, env = "FULLUP_INSECURE_DEV_ADMIN_TOKEN")]
    insecure_dev_admin_token: bool,
    /// The URL people reach this service at, such as `https://hooks.example.com`:
    /// portal links are built on it, and an https one makes the console's cookies
    /// `Secure`. Default: `http://` + the listen address.
    #[arg(long, env = "FULLUP_PUBLIC_URL", value_name = "URL")]
    public_url: Option<url::Url>,
    /// Sites that may frame the console's portal pages (CSP `frame-ancestors`), such
    /// as `https://app.example.com`; repeatable, comma-separated in the variable.
    /// Default: none. Framing needs an https `--public-url`. The operator dashboard is
    /// never framable.
    #[arg(
        long = "portal-frame-ancestors",
        env = "FULLUP_PORTAL_FRAME_ANCESTORS",
        value_name = "SOURCE",
        value_delimiter = ','
    )]
    portal_frame_ancestors: Vec<String>,
}

impl Args {
    fn config(self) -> anyhow::Result<Config> {
        let delays: Vec<Duration> = self.retry_schedule.iter().map(|&d| d.into()).collect();
        anyhow::ensure!(
            self.per_webhook_concurrency > 0,
            "--per-webhook-concurrency must be at least 1"
        );
        anyhow::ensure!(
            self.per_site_concurrency > 0,
            "--per-site-concurrency must be at least 1"
        );
        anyhow::ensure!(
            self.ingest_rate_limit == 0 || self.ingest_burst > 0,
            "--ingest-burst must be at least 1 while --ingest-rate-limit is on"
        );
        anyhow::ensure!(
            !Duration::from(self.api_timeout).is_zero(),
            "--api-timeout must be more than 0s"
        );
        anyhow::ensure!(
            !Duration::from(self.header_read_timeout).is_zero(),
            "--header-read-timeout must be more than 0s"
        );
        anyhow::ensure!(
            self.database_pool_size >= MIN_POOL_CONNECTIONS,
            "--database-pool-size must be at least {MIN_POOL_CONNECTIONS}"
        );
        anyhow::ensure!(
            self.max_connections > 0,
            "--max-connections must be at least 1"
        );
        anyhow::ensure!(
            self.retention
                .is_none_or(|r| Duration::from(r) >= Duration::from_secs(60 * 60)),
            "--retention must be at least 1h (unset it to keep events forever)"
        );
        anyhow::ensure!(
            !Duration::from(self.prune_interval).is_zero(),
            "--prune-interval must be more than 0s"
        );
        if let Some(url) = &self.public_url {
            anyhow::ensure!(
                matches!(url.scheme(), "http" | "https") && url.host().is_some(),
                "--public-url must be an http(s) URL such as https://hooks.example.com"
            );
        }
        let portal_frame_ancestors = self
            .portal_frame_ancestors
            .iter()
            .map(|s| fullup_server::console::parse_frame_ancestor(s))
            .collect::<Result<Vec<_>, _>>()?;
        anyhow::ensure!(
            portal_frame_ancestors.is_empty()
                || self
                    .public_url
                    .as_ref()
                    .is_some_and(|u| u.scheme() == "https"),
            "--portal-frame-ancestors needs an https --public-url: browsers send a framed page's cookie only when it is Secure"
        );
        let admin_token = match std::env::var(ADMIN_TOKEN_ENV) {
            Ok(token) => {
                check_admin_token_length(&token, self.insecure_dev_admin_token)?;
                Some(
                    Secret::parse(&token)
                        .with_context(|| format!("{ADMIN_TOKEN_ENV} is not usable"))?,
                )
            }
            Err(_) => None,
        };
        let generated_admin_token = match self.admin_token_file {
            Some(path) => GeneratedAdminToken::File(path),
            None if std::io::stdout().is_terminal() => GeneratedAdminToken::Returned,
            None => GeneratedAdminToken::Refused,
        };
        Ok(Config {
            database_url: self.database_url,
            admin_token,
            generated_admin_token,
            max_event_bytes: self.max_event_bytes,
            delivery: DeliveryConfig {
                connect_timeout: self.connect_timeout.into(),
                request_timeout: self.request_timeout.into(),
                retry: RetrySchedule::new(delays, DEFAULT_JITTER),
                workers: self.workers,
                per_webhook_concurrency: self.per_webhook_concurrency,
                per_site_concurrency: self.per_site_concurrency,
                disable_after: self.disable_after.into(),
                ..DeliveryConfig::default()
            },
            clock: Arc::new(SystemClock),
            network: NetworkPolicy {
                allow: self.allow_network,
                own_address: None,
                require_https: self.require_https,
            },
            limits: ApiLimits {
                ingest_rate: self.ingest_rate_limit,
                ingest_burst: self.ingest_burst,
                request_timeout: self.api_timeout.into(),
                header_read_timeout: self.header_read_timeout.into(),
                max_connections: self.max_connections,
                auth: AuthLimits {
                    failures: self.auth_failure_limit,
                    window: DEFAULT_AUTH_WINDOW,
                },
            },
            main_key: super::admin::main_key_from_env()?,
            main_key_file: self.main_key_file,
            store: StoreSettings {
                pool_connections: self.database_pool_size,
                wait: self.database_wait.into(),
                ..StoreSettings::default()
            },
            console: ConsoleConfig {
                public_url: self.public_url,
                portal_frame_ancestors,
            },
            shutdown_timeout: self.shutdown_timeout.into(),
            retention: RetentionConfig {
                default: self.retention.map(Duration::from),
                interval: self.prune_interval.into(),
                batch: self.prune_batch,
                pause: self.prune_pause.into(),
            },
            ..Config::default()
        })
    }
}

/// Refuses an admin token short enough to guess, unless `insecure_dev` (then warns on
/// stderr, before any log line).
fn check_admin_token_length(token: &str, insecure_dev: bool) -> anyhow::Result<()> {
    let chars = token.chars().count();
    if chars >= MIN_ADMIN_TOKEN_CHARS {
        return Ok(());
    }
    anyhow::ensure!(
        insecure_dev,
        "{ADMIN_TOKEN_ENV} is {chars} characters long; a short token can be guessed and opens \
         every site: use {MIN_ADMIN_TOKEN_CHARS} or more (`fullup secret new` prints one), or pass \
         --insecure-dev-admin-token for a development setup"
    );
    eprintln!(
        "fullup: WARNING: {ADMIN_TOKEN_ENV} is {chars} characters long (--insecure-dev-admin-token); \
         a short token can be guessed and opens every site: use {MIN_ADMIN_TOKEN_CHARS} or more"
    );
    Ok(())
}

/// Runs the service until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    logging::init(logging::choose(args.log_format));
    let listen = args.listen;
    let metrics_listen = args.metrics_listen;
    let admin_token_file = args.admin_token_file.clone();
    let config = args.config()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| {
                format!("cannot listen on {listen}; choose another address with --listen")
            })?;
        let mut app = Application::build(config, listener).await?;
        if let Some(addr) = metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr}; choose another address with --metrics-listen")
            })?;
            app = app.with_metrics_listener(listener);
        }
        if let Some(token) = app.generated_admin_token() {
            match &admin_token_file {
                Some(path) => println!(
                    "Generated an admin token, written to {} (mode 0600; only its hash is stored)",
                    path.display()
                ),
                None => {
                    println!("Generated an admin token (shown once; only its hash is stored):");
                    println!("  export {ADMIN_TOKEN_ENV}={token}");
                }
            }
        }
        if let Some(path) = app.created_main_key_file() {
            println!(
                "Created the main key file {} (back it up: without it, webhook secrets are lost)",
                path.display()
            );
        }
        let shutdown = shutdown_signal()?;
        let addr = app.local_addr()?;
        println!("fullup serve: listening on http://{addr}");
        if let Some(addr) = app.metrics_addr().transpose()? {
            println!("fullup serve: metrics on http://{addr}/metrics");
        }
        app.run(shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Completes at the first SIGTERM or SIGINT. The handlers are installed by this call,
/// before the address is printed: a signal sent as soon as the service says it listens
/// (an orchestrator stopping a node that has just started) is a graceful stop, not the
/// default disposition's kill.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down: no new deliveries; finishing those in flight");
    })
}
