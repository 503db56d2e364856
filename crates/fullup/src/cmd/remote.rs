//! What the subcommands that call a running service share (`site`, `webhook`, `event`,
//! `delivery`, `wait-ready`): its URL, the token from the environment (never a flag:
//! argv is visible to every user of the machine and lands in shell history), and a
//! runtime to run one call on.

use std::future::Future;

use anyhow::Context as _;
use fullup_client::Client;

/// Where a local `fullup serve` listens by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// The admin token's variable, as `fullup serve` reads it.
pub const ADMIN_TOKEN_ENV: &str = "FULLUP_ADMIN_TOKEN";
/// A site API key's variable, used when no admin token is set.
pub const API_KEY_ENV: &str = "FULLUP_API_KEY";

/// The service to call; flatten into a subcommand's `Args`.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// The service's base URL. The token comes from FULLUP_ADMIN_TOKEN (or a site API
    /// key from FULLUP_API_KEY), never from a flag.
    #[arg(long = "url", env = "FULLUP_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
}

impl Remote {
    /// A client with the token from the environment.
    pub fn client(&self) -> anyhow::Result<Client> {
        let token = token_from_env()?;
        Client::new(&self.url, &token).with_context(|| format!("--url {}", self.url))
    }

    /// A client without a token whose calls give up after `timeout`, for `/readyz`.
    pub fn anonymous(&self, timeout: std::time::Duration) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("building the HTTP client")?;
        Client::without_token(http, &self.url).with_context(|| format!("--url {}", self.url))
    }
}

/// `FULLUP_ADMIN_TOKEN`, else `FULLUP_API_KEY`.
fn token_from_env() -> anyhow::Result<String> {
    for var in [ADMIN_TOKEN_ENV, API_KEY_ENV] {
        match std::env::var(var) {
            Ok(token) if !token.is_empty() => return Ok(token),
            Ok(_) | Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(_)) => {
                anyhow::bail!("environment variable {var} is not valid UTF-8; fix its value")
            }
        }
    }
    anyhow::bail!(
        "no token: export {ADMIN_TOKEN_ENV} (the token `fullup serve` runs with), or {API_KEY_ENV} (a site's API key)"
    )
}

/// Runs `future` to completion on a runtime of its own.
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(runtime.block_on(future))
}
