//! The service's settings, composed of each part's own (`delivery::DeliveryConfig`,
//! [`ApiLimits`]), with the defaults `fullup serve` starts with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fullup_signature::Secret;

use crate::crypto::MainKey;
use crate::delivery::DeliveryConfig;
use crate::delivery::guard::{Lookup, SystemLookup};
use crate::delivery::ssrf::NetworkPolicy;
use crate::domain::clock::{Clock, SystemClock};
pub use crate::service::monitoring::DEFAULT_BACKLOG_REFRESH;
pub use crate::service::retention::{
    DEFAULT_PRUNE_BATCH, DEFAULT_PRUNE_INTERVAL, DEFAULT_PRUNE_PAUSE, RetentionConfig,
};
use crate::store::StoreSettings;

/// Default API address: loopback only, so a first start on a laptop exposes nothing.
pub const DEFAULT_LISTEN: std::net::SocketAddr = std::net::SocketAddr::V4(
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 8080),
);
/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://fullup.db";
/// Default largest ingest request body.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 256 * 1024;

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://path` (created if missing) or `postgres://…` (shared by several nodes).
    pub database_url: String,
    /// The admin token; when absent, the stored hash is used, or one is generated.
    pub admin_token: Option<Secret>,
    /// Where a generated admin token goes.
    pub generated_admin_token: GeneratedAdminToken,
    /// Largest ingest request body; larger ones get 413.
    pub max_event_bytes: usize,
    /// Delivery settings.
    pub delivery: DeliveryConfig,
    /// How the store connects (PostgreSQL's pool size).
    pub store: StoreSettings,
    /// The time source (tests inject a manual clock).
    pub clock: Arc<dyn Clock>,
    /// Which destinations webhooks may reach.
    pub network: NetworkPolicy,
    /// How host names are resolved (tests inject their own).
    pub lookup: Arc<dyn Lookup>,
    /// Rate limits and timeouts of the API.
    pub limits: ApiLimits,
    /// The key sealing webhook secrets at rest (`FULLUP_MAIN_KEY`); when absent, it is
    /// read from `main_key_file`, which is created on first start.
    pub main_key: Option<MainKey>,
    /// Where the main key is kept when `main_key` is absent; default `fullup.key` next
    /// to the SQLite database (PostgreSQL has no default: set this or `main_key`).
    pub main_key_file: Option<PathBuf>,
    /// How often the backlog gauges of `/metrics` are read from the store (see
    /// [`crate::service::monitoring`]); a scrape shows values at most this old.
    pub backlog_refresh: Duration,
    /// How long events are kept and how pruning runs (see [`crate::service::retention`]).
    pub retention: RetentionConfig,
    /// The console's settings: its public URL, where portal pages may be framed.
    pub console: crate::console::ConsoleConfig,
    /// How long, after the shutdown signal, attempts in flight and API requests get to
    /// finish before the process gives their deliveries back and exits
    /// ([`DEFAULT_SHUTDOWN_TIMEOUT`]).
    pub shutdown_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            admin_token: None,
            generated_admin_token: GeneratedAdminToken::default(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            delivery: DeliveryConfig::default(),
            store: StoreSettings::default(),
            clock: Arc::new(SystemClock),
            network: NetworkPolicy::default(),
            lookup: Arc::new(SystemLookup),
            limits: ApiLimits::default(),
            main_key: None,
            main_key_file: None,
            backlog_refresh: DEFAULT_BACKLOG_REFRESH,
            retention: RetentionConfig::default(),
            console: crate::console::ConsoleConfig::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }
}

/// Default drain at shutdown: 20 s, longer than an attempt with the default request
/// timeout (15 s) takes, so a normal stop loses none, and 10 s inside the 30 s that
/// Kubernetes, ECS and systemd wait after SIGTERM before they kill, for the deliveries
/// still running to be given back and the database closed.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

/// Where an admin token generated on a first start goes (one is generated when none is
/// configured and none is stored). Never to a log: one that stdout may reach (journald,
/// container logs) keeps the token as long as the logs are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GeneratedAdminToken {
    /// Returned by [`crate::app::Application::generated_admin_token`] for the caller to
    /// show (`fullup serve` does so only when stdout is a terminal).
    #[default]
    Returned,
    /// Written to this new file, mode 0600 (never replacing one), before its hash is
    /// stored; also returned.
    File(PathBuf),
    /// None is generated: the start fails, naming what to set.
    Refused,
}

/// Default sustained ingest rate per caller (events per second): far above what one
/// site's traffic needs, low enough that one runaway client cannot fill the disk.
pub const DEFAULT_INGEST_RATE: u32 = 1000;
/// Default ingest burst per caller: two seconds' worth at the default rate.
pub const DEFAULT_INGEST_BURST: u32 = 2000;
/// Default time a management or ingest request may take, body upload included.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a client has to send a request's line and headers, which is also how
/// long a keep-alive connection may sit idle. A real client sends its headers in one
/// packet; 10 s bounds slow-header (slowloris) connections well below hyper's 30 s and
/// nginx's 60 s defaults while leaving room for slow mobile links.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connections the API serves at once; further ones wait in the listen backlog.
/// Behind a reverse proxy a handful are used. 512 keeps the API, the delivery workers'
/// outbound connections and the database within the usual 1024 open-file limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// What one API caller may ask of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLimits {
    /// Sustained events per second accepted per caller (the admin token is one caller,
    /// each site API key another); `0` disables the limit.
    pub ingest_rate: u32,
    /// Events a caller may send at once above the sustained rate (at least 1 when the
    /// rate is on).
    pub ingest_burst: u32,
    /// A request not answered within this gets 503 `timeout`.
    pub request_timeout: Duration,
    /// A connection whose request line and headers are not all in within this, or that
    /// sits idle between requests this long, is closed without an answer.
    pub header_read_timeout: Duration,
    /// Connections served at once (at least 1); further ones wait to be accepted.
    pub max_connections: usize,
    /// Failed authentications allowed per client address.
    pub auth: crate::api::throttle::AuthLimits,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            ingest_rate: DEFAULT_INGEST_RATE,
            ingest_burst: DEFAULT_INGEST_BURST,
            request_timeout: DEFAULT_API_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            auth: crate::api::throttle::AuthLimits::default(),
        }
    }
}
