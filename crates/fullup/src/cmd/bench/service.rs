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
    /// Starts `exe serve` (by default this executable's) on `database_url`, by default a
    /// new SQLite file in `dir` (which also holds the main key file).
    ///
    /// Its settings are the defaults a deployment starts with, except two that a local
    /// benchmark needs: loopback receivers are allowed, and the per-credential ingest
    /// rate limit is off (it would otherwise cap the load generator, one credential, at
    /// its default 1,000 events/s).
    pub async fn start(
        dir: &Path,
        database_url: Option<&str>,
        exe: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let exe = match exe {
            Some(exe) => exe.to_owned(),
            None => std::env::current_exe().context("locating the fullup executable")?,
        };
        let admin_token = fullup_signature::Secret::generate().expose().to_owned();
        let database_url = database_url.map_or_else(
            || format!("sqlite://{}", dir.join("bench.db").display()),
            str::to_owned,
        );
        let mut child = Command::new(exe)
            .args(["serve", "--database-url", &database_url])
            .args(["--listen", "127.0.0.1:0"])
            .arg("--main-key-file")
            .arg(dir.join("fullup.key"))
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
                if let Some(addr) = line.strip_prefix(LISTENING_PREFIX)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.to_owned());
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

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The most memory the process has held (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_vm_hwm(&status).with_context(|| format!("no VmHWM line in {path}"))
    }
}

/// `VmHWM:   12345 kB` in bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_peak_resident_set_from_proc_status() {
        let status = "Name:\tfullup\nVmPeak:\t  999 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(12345 * 1024));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }
}
