//! The whole service in one value: build it on a listener, run it until shutdown.
//!
//! Tests build it on `127.0.0.1:0` and run the real thing; `fullup serve` does the same
//! on the configured address.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::auth::ADMIN_TOKEN_PREFIX;
use crate::api::server::serve;
use crate::api::{AppState, metrics_router, router};
use crate::config::{Config, GeneratedAdminToken};
use crate::console::Console;
use crate::crypto::{MainKey, default_key_file, generate_token, key_beside_database};
use crate::delivery::dispatcher::Dispatcher;
use crate::delivery::guard::OutboundGuard;
use crate::metrics::Metrics;
use crate::service::Service;
use crate::store::{Backend, Store};
use crate::tokens::TokenHasher;

/// Settings key of the stored admin token's keyed hash ([`crate::tokens`]). (The
/// plain SHA-256 of earlier versions, `admin_token_hash`, is dropped by migration.)
pub const ADMIN_TOKEN_HASH_KEY: &str = "admin_token_hmac";

/// A built service, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    backlog_refresh: std::time::Duration,
    retention: crate::config::RetentionConfig,
    /// How long attempts and API requests in flight get to finish at shutdown.
    shutdown_timeout: std::time::Duration,
    state: AppState,
    /// None on an API-only node (`workers == 0`): it accepts events and delivers none.
    dispatcher: Option<Dispatcher>,
    generated_admin_token: Option<String>,
    created_main_key_file: Option<PathBuf>,
}

impl Application {
    /// Opens the store (running migrations), settles the admin token and prepares the
    /// dispatcher (none with zero delivery workers: an API-only node).
    pub async fn build(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        let (store, main_key, created_main_key_file) =
            open_store(&config).await.with_context(|| {
                format!("opening the database {}", redact_url(&config.database_url))
            })?;
        let released = store.recover_after_restart().await?;
        if released > 0 {
            tracing::info!(
                deliveries = released,
                "re-queued deliveries left in flight by the previous run"
            );
        }
        let tokens = TokenHasher::load_or_create(&*store, &main_key)
            .await
            .context("reading the token-hash key")?;
        let (admin_token_hash, generated_admin_token) =
            admin_token(&*store, &tokens, &config).await?;
        let wake = Arc::new(Notify::new());
        let mut network = config.network.clone();
        network.own_address = Some(listener.local_addr()?);
        let guard = OutboundGuard::new(network, config.lookup.clone());
        let metrics = Arc::new(Metrics::new());
        let dispatcher = (config.delivery.workers > 0)
            .then(|| {
                Dispatcher::new(
                    store.clone(),
                    config.clock.clone(),
                    config.delivery.clone(),
                    wake.clone(),
                    guard.clone(),
                    metrics.clone(),
                )
            })
            .transpose()
            .context("building the HTTP client")?;
        if dispatcher.is_none() {
            tracing::info!("no delivery workers: this node serves the API and delivers nothing");
        }
        let mut service = Service::new(
            store,
            config.clock.clone(),
            wake,
            guard,
            config.delivery.health_policy(),
            metrics,
            tokens,
        );
        if let Some(dispatcher) = &dispatcher {
            service = service.handing_off_to(dispatcher.inbox());
        }
        let console = Console::new(
            &config.console,
            &main_key,
            &admin_token_hash,
            listener.local_addr()?,
        );
        let state = AppState {
            service,
            console,
            admin_token_hash,
            max_event_bytes: config.max_event_bytes,
            throttle: crate::api::throttle::AuthThrottle::new(config.limits.auth),
            limits: config.limits.clone(),
        };
        Ok(Self {
            listener,
            metrics_listener: None,
            backlog_refresh: config.backlog_refresh,
            retention: config.retention,
            shutdown_timeout: config.shutdown_timeout,
            state,
            dispatcher,
            generated_admin_token,
            created_main_key_file,
        })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Also serves `/metrics` (and the probes) on `listener`, such as an address only
    /// the monitoring network reaches (`--metrics-listen`). The API listener serves
    /// them too.
    pub fn with_metrics_listener(mut self, listener: TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    /// The address of the metrics listener, when there is one.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics_listener.as_ref().map(TcpListener::local_addr)
    }

    /// The main key file created on this first start, to show the operator once.
    pub fn created_main_key_file(&self) -> Option<&Path> {
        self.created_main_key_file.as_deref()
    }

    /// The admin token generated on this first start, to show the operator once.
    pub fn generated_admin_token(&self) -> Option<&str> {
        self.generated_admin_token.as_deref()
    }

    /// Serves the API and runs deliveries (unless API-only) until `shutdown` completes.
    /// Then, at once, it stops accepting connections and stops claiming (no delivery
    /// is started after the signal but those ingests had handed over already); the
    /// attempts and API requests in flight get the shutdown timeout to finish; the
    /// deliveries of attempts still running then are given back (their leases
    /// released) and the requests dropped; and the store is closed.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let cancel = CancellationToken::new();
        let drain = self.shutdown_timeout;
        let dispatcher = self
            .dispatcher
            .map(|dispatcher| tokio::spawn(dispatcher.run(cancel.clone(), drain)));
        let service = self.state.service.clone();
        let backlog = tokio::spawn({
            let stop = cancel.clone();
            async move {
                service
                    .refresh_backlog_until(self.backlog_refresh, stop)
                    .await
            }
        });
        let prune = tokio::spawn({
            let (service, stop) = (self.state.service.clone(), cancel.clone());
            async move { service.prune_until(self.retention, stop).await }
        });
        let store = self.state.service.store().clone();
        let limits = self.state.limits.clone();
        let metrics = self.metrics_listener.map(|listener| {
            let (router, limits, stop) = (
                metrics_router(self.state.clone()),
                limits.clone(),
                cancel.clone(),
            );
            tokio::spawn(
                async move { serve(listener, router, &limits, stop.cancelled_owned()).await },
            )
        });
        let mut api = tokio::spawn({
            let stop = cancel.clone();
            let router = router(self.state);
            async move { serve(self.listener, router, &limits, stop.cancelled_owned()).await }
        });
        tokio::select! {
            () = shutdown => {}
            ended = &mut api => ended.context("the API server panicked")?,
        }
        cancel.cancel();
        if tokio::time::timeout(drain, &mut api).await.is_err() {
            api.abort();
            tracing::warn!("API requests still running at the shutdown timeout were dropped");
        }
        if let Some(dispatcher) = dispatcher {
            dispatcher.await.context("the dispatcher panicked")?;
        }
        backlog.await.context("the backlog gauges' task panicked")?;
        prune.await.context("the retention task panicked")?;
        if let Some(mut metrics) = metrics
            && tokio::time::timeout(drain, &mut metrics).await.is_err()
        {
            metrics.abort();
        }
        store.close().await;
        Ok(())
    }
}

/// Opens the store under the main key: the configured one, else the key file, which
/// is created on first start (and removed again if the database refuses it). Returns
/// the main key and the created key file's path.
///
/// SQLite's key file defaults to `fullup.key` beside the database. A PostgreSQL
/// database has no folder to put it in, and every node sharing it needs the same key,
/// so there the key must be given: `FULLUP_MAIN_KEY`, or `--main-key-file` (created on
/// the first start if missing).
async fn open_store(config: &Config) -> anyhow::Result<(Arc<dyn Store>, MainKey, Option<PathBuf>)> {
    let url = &config.database_url;
    let postgres = Backend::of(url)? == Backend::Postgres;
    if let Some(key) = &config.main_key {
        return Ok((
            crate::store::open_waiting(url, key, &config.store).await?,
            key.clone(),
            None,
        ));
    }
    let path = match config.main_key_file.clone() {
        Some(path) => path,
        None if postgres => anyhow::bail!(
            "no main key: a PostgreSQL database needs the key given explicitly, the same on every node: \
             set FULLUP_MAIN_KEY (base64 of 32 bytes, such as the output of `openssl rand -base64 32`) \
             or --main-key-file PATH (created on the first start if missing)"
        ),
        None => {
            default_key_file(url).context("no main key: set FULLUP_MAIN_KEY or --main-key-file")?
        }
    };
    if key_beside_database(&path, url) {
        tracing::warn!(
            key_file = %path.display(),
            "the main key file is in the database's folder: one copy or snapshot of that folder \
             holds both the sealed secrets and the key that opens them; keep the key on another \
             volume (--main-key-file PATH or FULLUP_MAIN_KEY)"
        );
    }
    if path.exists() {
        let key = MainKey::read_file(&path)?;
        return Ok((
            crate::store::open_waiting(url, &key, &config.store).await?,
            key,
            None,
        ));
    }
    let key = MainKey::generate();
    key.write_new_file(&path)?;
    match crate::store::open_waiting(url, &key, &config.store).await {
        Ok(store) => Ok((store, key, Some(path))),
        Err(err) => {
            let _ = std::fs::remove_file(&path);
            Err(err.into())
        }
    }
}

/// Hides a password in a database URL before it is shown.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("[redacted]"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// The admin token's hash: from config, else stored, else a new token (returned once,
/// and written where `config.generated_admin_token` says before its hash is stored).
/// Of nodes starting together on an empty shared database, the first to store its
/// token wins; the others use that one and show none.
pub async fn admin_token(
    store: &dyn Store,
    tokens: &TokenHasher,
    config: &Config,
) -> anyhow::Result<([u8; 32], Option<String>)> {
    if let Some(token) = &config.admin_token {
        return Ok((tokens.hash(token.expose()), None));
    }
    if let Some(stored) = stored_admin_token(store).await? {
        return Ok((stored, None));
    }
    let to = &config.generated_admin_token;
    let token = new_admin_token(to)?;
    let hash = tokens.hash(&token);
    match store.add_setting(ADMIN_TOKEN_HASH_KEY, &hash).await {
        Ok(true) => return Ok((hash, Some(token))),
        // Another node's token won: ours opens nothing.
        Ok(false) => discard(to),
        Err(err) => {
            discard(to);
            return Err(err.into());
        }
    }
    let stored = stored_admin_token(store)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the stored admin token hash vanished"))?;
    Ok((stored, None))
}

/// Replaces the stored admin token with a new one, written where `to` says before its
/// hash replaces the old one (`fullup admin rotate-admin-token`). Nodes running on the
/// database keep the old token until they restart.
pub async fn rotate_admin_token(
    store: &dyn Store,
    main_key: &MainKey,
    to: &GeneratedAdminToken,
) -> anyhow::Result<String> {
    let tokens = TokenHasher::load_or_create(store, main_key).await?;
    let token = new_admin_token(to)?;
    if let Err(err) = store
        .put_setting(ADMIN_TOKEN_HASH_KEY, &tokens.hash(&token))
        .await
    {
        discard(to);
        return Err(err.into());
    }
    Ok(token)
}

/// Removes the file a token that will open nothing was written to, so that it does not
/// pass for the admin token nor block the next try (a token file is never replaced).
fn discard(to: &GeneratedAdminToken) {
    if let GeneratedAdminToken::File(path) = to {
        let _ = std::fs::remove_file(path);
    }
}

/// A new admin token, written to its file first when `to` names one; refused when
/// `to` says none may be generated.
fn new_admin_token(to: &GeneratedAdminToken) -> anyhow::Result<String> {
    let token = generate_token(ADMIN_TOKEN_PREFIX);
    match to {
        GeneratedAdminToken::Returned => {}
        GeneratedAdminToken::File(path) => write_token_file(path, &token)
            .with_context(|| format!("writing the admin token to {}", path.display()))?,
        GeneratedAdminToken::Refused => anyhow::bail!(
            "no admin token: set FULLUP_ADMIN_TOKEN (32 characters or more; `fullup secret new` \
             prints one), or --admin-token-file PATH to have one generated there (stdout is not a \
             terminal, and a token printed there would stay in the logs)"
        ),
    }
    Ok(token)
}

/// Writes `token` to the new file `path`, mode 0600, synced with its folder; fails if
/// `path` exists (it may hold a token someone uses).
fn write_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let written = file
        .write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(err) = written {
        let _ = std::fs::remove_file(path);
        return Err(err);
    }
    crate::crypto::sync_parent(path).map_err(std::io::Error::other)
}

async fn stored_admin_token(store: &dyn Store) -> anyhow::Result<Option<[u8; 32]>> {
    let Some(stored) = store.get_setting(ADMIN_TOKEN_HASH_KEY).await? else {
        return Ok(None);
    };
    let hash = <[u8; 32]>::try_from(stored.as_slice())
        .map_err(|_| anyhow::anyhow!("the stored admin token hash is corrupt"))?;
    Ok(Some(hash))
}
