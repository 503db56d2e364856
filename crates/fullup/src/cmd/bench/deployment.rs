//! Where a run's events go: a fresh `fullup serve` child process that the bench starts
//! and stops (the default), a fresh set of such nodes on one PostgreSQL database, each
//! on a host of its own (`--nodes`), or a deployment already running at `--target`.
//! Either way a run gets its own site, so runs never see each other's webhooks.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use fullup_client::{Client, NewWebhook};
use fullup_hosts::Cluster;

use super::cpu::CpuTimes;
use super::service::Service;

/// How long a service the bench started may take to stop before it is killed: a
/// stalled receiver (the isolation scenario) would hold its shutdown for the whole
/// request timeout.
const STOP_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// How to get a service for each run.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start `fullup serve` for each run (`--nodes`: several, see [`Nodes`]).
    Local {
        /// Passed through as the child's `--database-url` (default: a new SQLite file).
        database_url: Option<String>,
        /// The executable to start (default: this one).
        exe: Option<PathBuf>,
    },
    /// Use the deployment at `base` with this admin token.
    Remote {
        /// `http(s)://HOST:PORT`.
        base: String,
        /// Its admin token.
        token: String,
    },
}

/// `--nodes` and `--api-only-first-node`.
#[derive(Debug, Clone, Copy)]
pub struct NodesPlan {
    /// How many nodes each run starts.
    pub count: usize,
    /// Whether node A (the one the load and the API calls go to) delivers nothing.
    pub api_only_first: bool,
}

/// The hosts of `--nodes`, made once for the whole bench; each run starts fresh nodes
/// on them, node A on the first.
#[derive(Debug)]
pub struct Nodes {
    plan: NodesPlan,
    exe: PathBuf,
    cluster: Cluster,
}

impl Nodes {
    /// Makes the hosts and forwards the database of `target` (local, on PostgreSQL:
    /// the plan checked it) to them.
    pub async fn start(plan: NodesPlan, target: &Target) -> anyhow::Result<Self> {
        let Target::Local {
            database_url: Some(database_url),
            exe,
        } = target
        else {
            anyhow::bail!("--nodes needs --database-url and no --target");
        };
        let cluster = Cluster::start(plan.count, database_url)
            .await
            .context("making a host for each of --nodes (root and iproute2 are needed)")?;
        Ok(Self {
            plan,
            exe: executable(exe.as_deref())?,
            cluster,
        })
    }

    /// The root namespace's address, which every node reaches: where receivers listen.
    pub fn root_ip(&self) -> IpAddr {
        IpAddr::V4(self.cluster.root_ip())
    }
}

#[derive(Debug)]
struct Local {
    /// The services started: one, or every node (node A first).
    services: Vec<Service>,
    /// Whether they run on PostgreSQL (whose server's CPU time is then measured).
    postgres: bool,
    // Dropped after the services, which hold files in it (none for nodes: see `Nodes`).
    _dir: Option<tempfile::TempDir>,
}

/// A service with a new site on it.
#[derive(Debug)]
pub struct Deployment {
    /// Its management API (node A's, with `--nodes`).
    pub api: Client,
    /// The run's site.
    pub site: String,
    local: Option<Local>,
}

impl Deployment {
    /// Starts (or connects to) a service and creates the run's site; a started service
    /// seals with the key in `key_file` (one for the whole bench: every run on a
    /// `--database-url` must open what the first sealed).
    pub async fn start(
        target: &Target,
        client: &reqwest::Client,
        key_file: &Path,
    ) -> anyhow::Result<Self> {
        let (api, local) = match target {
            Target::Local { database_url, exe } => {
                let dir = tempfile::tempdir()
                    .context("creating a temporary folder for the service's files")?;
                let token = admin_token();
                let exe = executable(exe.as_deref())?;
                let url = database_url.as_deref();
                let service = Service::start(dir.path(), url, &exe, &token, key_file).await?;
                let api = local_api(client, &service, &token)?;
                let postgres = database_url
                    .as_deref()
                    .is_some_and(|url| url.starts_with("postgres"));
                let local = Local {
                    services: vec![service],
                    postgres,
                    _dir: Some(dir),
                };
                (api, Some(local))
            }
            Target::Remote { base, token } => {
                let api =
                    Client::with_http_client(client.clone(), base, token).context("--target")?;
                anyhow::ensure!(
                    api.ready().await.context("checking --target")?,
                    "--target {base} is not ready: its /readyz does not answer 200"
                );
                (api, None)
            }
        };
        Self::with_site(api, local).await
    }

    /// Starts a node on each host of `nodes`, one after the other, each sealing with the
    /// key in `key_file`, and creates the run's site through node A.
    pub async fn start_nodes(
        nodes: &Nodes,
        client: &reqwest::Client,
        key_file: &Path,
    ) -> anyhow::Result<Self> {
        let token = admin_token();
        let mut services = Vec::with_capacity(nodes.plan.count);
        for index in 0..nodes.plan.count {
            let api_only = index == 0 && nodes.plan.api_only_first;
            let exe = nodes.exe.as_path();
            services.push(
                Service::start_node(&nodes.cluster, index, key_file, exe, &token, api_only).await?,
            );
        }
        let api = local_api(client, &services[0], &token)?;
        let local = Local {
            services,
            postgres: true,
            _dir: None,
        };
        Self::with_site(api, Some(local)).await
    }

    async fn with_site(api: Client, local: Option<Local>) -> anyhow::Result<Self> {
        let site = api.create_site("fullup bench").await?.id;
        Ok(Self { api, site, local })
    }

    /// Creates `hook` on `site`; returns its id. A paused one must come out paused: a
    /// service too old to know `paused` would start delivering at once.
    pub async fn create_webhook(&self, site: &str, hook: &NewWebhook) -> anyhow::Result<String> {
        let created = self
            .api
            .create_webhook(site, hook)
            .await
            .context(if hook.paused {
                "creating a paused webhook (this needs a service that accepts `\"paused\": true`)"
            } else {
                "creating a webhook"
            })?;
        anyhow::ensure!(
            created.webhook.paused == hook.paused,
            "the service created webhook {} with paused={}, not {}",
            created.webhook.id,
            created.webhook.paused,
            hook.paused
        );
        Ok(created.webhook.id)
    }

    /// The service's peak resident memory so far (the largest node's), when the bench
    /// started it.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<Option<u64>> {
        let Some(local) = &self.local else {
            return Ok(None);
        };
        let mut peak = 0;
        for service in &local.services {
            peak = peak.max(service.peak_rss_bytes()?);
        }
        Ok(Some(peak))
    }

    /// The CPU time used so far by the services the bench started (every node's, and
    /// their PostgreSQL server's), and by the bench.
    pub fn cpu_now(&self) -> CpuTimes {
        let local = self.local.as_ref();
        let pids: Vec<u32> = local
            .map(|l| l.services.iter().map(Service::pid).collect())
            .unwrap_or_default();
        CpuTimes::now(&pids, local.is_some_and(|l| l.postgres))
    }

    /// Stops the services the bench started, as an operator would (SIGTERM: they record
    /// the attempts in flight and close their connections; killed after [`STOP_WITHIN`]),
    /// or deletes the run's site from the target.
    pub async fn finish(self) -> anyhow::Result<()> {
        let Some(local) = self.local else {
            self.api.delete_site(&self.site).await.with_context(|| {
                format!("deleting the bench's site {} from --target", self.site)
            })?;
            return Ok(());
        };
        let services = local.services;
        tokio::task::spawn_blocking(move || {
            for mut service in services {
                service.stop(STOP_WITHIN)?;
            }
            anyhow::Ok(())
        })
        .await
        .context("stopping the services")?
    }
}

/// A new admin token for a run's services.
fn admin_token() -> String {
    fullup_signature::Secret::generate().expose().to_owned()
}

/// `exe`, or this executable.
fn executable(exe: Option<&Path>) -> anyhow::Result<PathBuf> {
    match exe {
        Some(exe) => Ok(exe.to_owned()),
        None => std::env::current_exe().context("locating the fullup executable"),
    }
}

fn local_api(client: &reqwest::Client, service: &Service, token: &str) -> anyhow::Result<Client> {
    Client::with_http_client(client.clone(), &service.base, token)
        .with_context(|| format!("the service the bench started at {}", service.base))
}
