//! `fullup serve` as a separate process on a fresh database, as a user would run it:
//! on loopback, or as one node of several, each on a host of its own (`--nodes`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use fullup_hosts::{Cluster, ServeProcess};

/// How long the service may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running service; killed when dropped.
#[derive(Debug)]
pub struct Service {
    process: ServeProcess,
    /// `http://ADDR`.
    pub base: String,
}

impl Service {
    /// Starts `exe serve` on `database_url`, by default a new SQLite file in `dir`, on
    /// loopback, sealing with the main key in `key_file` (created by the first service
    /// started with it).
    ///
    /// Its settings are the defaults a deployment starts with, except two that a local
    /// benchmark needs: loopback receivers are allowed, and the per-credential ingest
    /// rate limit is off (it would otherwise cap the load generator, one credential, at
    /// its default 1,000 events/s).
    pub async fn start(
        dir: &Path,
        database_url: Option<&str>,
        exe: &Path,
        admin_token: &str,
        key_file: &Path,
    ) -> anyhow::Result<Self> {
        let database_url = database_url.map_or_else(
            || format!("sqlite://{}", dir.join("bench.db").display()),
            str::to_owned,
        );
        let mut command = Command::new(exe);
        command
            .args(["serve", "--database-url", &database_url])
            .args(["--listen", "127.0.0.1:0", "--allow-network", "127.0.0.0/8"]);
        Self::spawn(command, key_file, admin_token).await
    }

    /// Starts `exe serve` as node `index` of `cluster`, with the settings of
    /// [`Service::start`] (receivers in the root namespace allowed instead of loopback),
    /// delivering nothing when `api_only`.
    pub async fn start_node(
        cluster: &Cluster,
        index: usize,
        key_file: &Path,
        exe: &Path,
        admin_token: &str,
        api_only: bool,
    ) -> anyhow::Result<Self> {
        let mut command = cluster.serve_command(index, exe);
        if api_only {
            command.args(["--workers", "0"]);
        }
        Self::spawn(command, key_file, admin_token)
            .await
            .with_context(|| {
                format!(
                    "starting node {index} on host {}",
                    cluster.hosts()[index].name()
                )
            })
    }

    /// Adds the settings every service of the bench shares and starts it.
    async fn spawn(
        mut command: Command,
        key_file: &Path,
        admin_token: &str,
    ) -> anyhow::Result<Self> {
        command
            .arg("--main-key-file")
            .arg(key_file)
            .args(["--ingest-rate-limit", "0"])
            .env("FULLUP_ADMIN_TOKEN", admin_token)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::inherit());
        let process = ServeProcess::start(command, START_TIMEOUT)
            .await
            .context("starting `fullup serve`")?;
        Ok(Self {
            base: process.base_url(),
            process,
        })
    }

    /// Sends SIGTERM and waits at most `within` for the process to exit; kills it then.
    pub fn stop(&mut self, within: Duration) -> anyhow::Result<()> {
        let exited = self
            .process
            .terminate(within)
            .context("stopping `fullup serve`")?;
        if exited.is_none() {
            self.process.kill().context("killing `fullup serve`")?;
        }
        Ok(())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The most memory the process has held (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
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
