//! Where a run's events go: a fresh `fullup serve` child process that the bench starts
//! and stops (the default), or a deployment already running at `--target`. Either way a
//! run gets its own site, so runs never see each other's webhooks.

use anyhow::Context as _;

use super::api::Api;
use super::cpu::CpuTimes;
use super::service::Service;

/// How to get a service for each run.
#[derive(Debug, Clone)]
pub enum Target {
    /// Start `fullup serve` for each run.
    Local {
        /// Passed through as the child's `--database-url` (default: a new SQLite file).
        database_url: Option<String>,
        /// The executable to start (default: this one).
        exe: Option<std::path::PathBuf>,
    },
    /// Use the deployment at `base` with this admin token.
    Remote {
        /// `http(s)://HOST:PORT`.
        base: String,
        /// Its admin token.
        token: String,
    },
}

#[derive(Debug)]
struct Local {
    service: Service,
    /// Whether it runs on PostgreSQL (whose server's CPU time is then measured).
    postgres: bool,
    // Dropped after the service, which holds files in it.
    _dir: tempfile::TempDir,
}

/// A service with a new site on it.
#[derive(Debug)]
pub struct Deployment {
    /// Its management API.
    pub api: Api,
    /// The run's site.
    pub site: String,
    local: Option<Local>,
}

impl Deployment {
    /// Starts (or connects to) a service and creates the run's site.
    pub async fn start(target: &Target, client: &reqwest::Client) -> anyhow::Result<Self> {
        let (api, local) = match target {
            Target::Local { database_url, exe } => {
                let dir = tempfile::tempdir()
                    .context("creating a temporary folder for the service's files")?;
                let service =
                    Service::start(dir.path(), database_url.as_deref(), exe.as_deref()).await?;
                let api = Api {
                    client: client.clone(),
                    base: service.base.clone(),
                    token: service.admin_token.clone(),
                };
                let postgres = database_url
                    .as_deref()
                    .is_some_and(|url| url.starts_with("postgres"));
                let local = Local {
                    service,
                    postgres,
                    _dir: dir,
                };
                (api, Some(local))
            }
            Target::Remote { base, token } => {
                let api = Api {
                    client: client.clone(),
                    base: base.trim_end_matches('/').to_owned(),
                    token: token.clone(),
                };
                api.health().await.context("checking --target")?;
                (api, None)
            }
        };
        let site = api.create_site().await?;
        Ok(Self { api, site, local })
    }

    /// The service's peak resident memory so far, when the bench started it.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<Option<u64>> {
        self.local
            .as_ref()
            .map(|local| local.service.peak_rss_bytes())
            .transpose()
    }

    /// The CPU time used so far by the service the bench started (and its PostgreSQL
    /// server), and by the bench.
    pub fn cpu_now(&self) -> CpuTimes {
        let local = self.local.as_ref();
        CpuTimes::now(
            local.map(|l| l.service.pid()),
            local.is_some_and(|l| l.postgres),
        )
    }

    /// Stops the service the bench started, or deletes the run's site from the target.
    pub async fn finish(self) -> anyhow::Result<()> {
        if self.local.is_none() {
            self.api.delete_site(&self.site).await.with_context(|| {
                format!("deleting the bench's site {} from --target", self.site)
            })?;
        }
        Ok(())
    }
}
