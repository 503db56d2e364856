//! The whole service in one value: build it on a listener, run it until shutdown.
//!
//! Tests build it on `127.0.0.1:0` and run the real thing; `fullup serve` does the same
//! on the configured address.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api::auth::{ADMIN_TOKEN_PREFIX, generate_token, hash_token};
use crate::api::{AppState, router};
use crate::config::Config;
use crate::delivery::dispatcher::Dispatcher;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// Settings key of the stored admin token hash.
const ADMIN_TOKEN_HASH_KEY: &str = "admin_token_hash";

/// A built service, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    dispatcher: Dispatcher,
    generated_admin_token: Option<String>,
}

impl Application {
    /// Opens the store (running migrations), settles the admin token and prepares the
    /// dispatcher.
    pub async fn build(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        let store: Arc<dyn Store> = Arc::new(
            open_store(&config.database_url)
                .await
                .with_context(|| format!("opening the database {}", redact_url(&config.database_url)))?,
        );
        let released = store.recover_after_restart().await?;
        if released > 0 {
            tracing::info!(deliveries = released, "re-queued deliveries left in flight by the previous run");
        }
        let (admin_token_hash, generated_admin_token) = admin_token(&*store, &config).await?;
        let wake = Arc::new(Notify::new());
        let dispatcher = Dispatcher::new(store.clone(), config.clock.clone(), config.delivery.clone(), wake.clone())
            .context("building the HTTP client")?;
        let state = AppState {
            store,
            clock: config.clock.clone(),
            wake,
            admin_token_hash,
            max_event_bytes: config.max_event_bytes,
        };
        Ok(Self {
            listener,
            state,
            dispatcher,
            generated_admin_token,
        })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The admin token generated on this first start, to show the operator once.
    pub fn generated_admin_token(&self) -> Option<&str> {
        self.generated_admin_token.as_deref()
    }

    /// Serves the API and runs deliveries until `shutdown` completes; then stops
    /// accepting, stops claiming, and waits for attempts in flight (bounded).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let cancel = CancellationToken::new();
        let dispatcher = tokio::spawn(self.dispatcher.run(cancel.clone()));
        let stop = cancel.clone();
        let served = axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(async move {
                tokio::select! {
                    () = shutdown => {}
                    () = stop.cancelled() => {}
                }
            })
            .await;
        cancel.cancel();
        dispatcher.await.context("the dispatcher panicked")?;
        served.context("serving the API")
    }
}

async fn open_store(url: &str) -> anyhow::Result<SqliteStore> {
    if url.starts_with("sqlite:") {
        Ok(SqliteStore::open(url).await?)
    } else {
        anyhow::bail!("unsupported --database-url scheme: use sqlite://PATH (PostgreSQL support is coming)")
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

/// The admin token's hash: from config, else stored, else a new token (returned once).
async fn admin_token(store: &dyn Store, config: &Config) -> anyhow::Result<([u8; 32], Option<String>)> {
    if let Some(token) = &config.admin_token {
        return Ok((hash_token(token.expose()), None));
    }
    if let Some(stored) = store.get_setting(ADMIN_TOKEN_HASH_KEY).await? {
        let hash = <[u8; 32]>::try_from(stored.as_slice())
            .map_err(|_| anyhow::anyhow!("the stored admin token hash is corrupt"))?;
        return Ok((hash, None));
    }
    let token = generate_token(ADMIN_TOKEN_PREFIX);
    let hash = hash_token(&token);
    store.put_setting(ADMIN_TOKEN_HASH_KEY, &hash).await?;
    Ok((hash, Some(token)))
}
