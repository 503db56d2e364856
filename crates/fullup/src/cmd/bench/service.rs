//! `fullup serve` as a separate process on a fresh database, as a user would run it.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// How long the service may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const LISTENING_PREFIX: &str = "fullup serve: listening on http://";

/// A running service; killed when dropped.
#[derive(Debug)]
pub struct Service {
    child: Child,
    /// `http://ADDR`.
    pub base: String,
    /// The admin token it runs with.
    pub admin_token: String,
}

impl Service {
    /// Starts this executable's `serve` on a SQLite file in `dir`.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the fullup executable")?;
        let admin_token = fullup_signature::Secret::generate().expose().to_owned();
        let database_url = format!("sqlite://{}", dir.join("bench.db").display());
        let mut child = Command::new(exe)
            .args([
                "serve",
                "--database-url",
                &database_url,
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--allow-network", "127.0.0.0/8", "--ingest-rate-limit", "0"])
            .env("FULLUP_ADMIN_TOKEN", &admin_token)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting `fullup serve`")?;
        let stdout = child
            .stdout
            .take()
            .context("reading the service's output")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix(LISTENING_PREFIX) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.to_owned());
                    }
                }
            }
        });
        let mut service = Self {
            child,
            base: String::new(),
            admin_token,
        };
        let addr = tokio::time::timeout(START_TIMEOUT, rx)
            .await
            .context("`fullup serve` did not start in time")?
            .context("`fullup serve` exited before listening")?;
        service.base = format!("http://{addr}");
        Ok(service)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
