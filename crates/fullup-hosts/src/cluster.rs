//! Several `fullup serve` nodes on one PostgreSQL database, each on a host of its own:
//! what the multi-node test and `fullup bench --nodes` share.
//!
//! The root namespace is the rest of the network: the hosts reach PostgreSQL through a
//! [`Forwarder`] listening on the root end of the first host's link, and receivers
//! listen on that same address ([`Cluster::root_ip`]), which every host reaches over
//! its own link.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;

use crate::{Error, Forwarder, Host, Hosts};

/// PostgreSQL's port when a URL names none.
const POSTGRES_PORT: u16 = 5432;

/// Hosts and the database forwarded to them; dropped, the forwarder stops and the hosts
/// are removed (with any node still running on them).
#[derive(Debug)]
pub struct Cluster {
    // Fields drop in this order: the forwarder's connections end before the hosts go.
    _forwarder: Forwarder,
    hosts: Hosts,
    /// The root end of the first host's link, where the forwarder listens.
    root: Ipv4Addr,
    database_url: String,
}

impl Cluster {
    /// Makes `count` hosts and forwards the PostgreSQL server of `database_url` (a
    /// `postgres://` URL as this process reaches the server) to them.
    pub async fn start(count: usize, database_url: &str) -> Result<Self, Error> {
        let (mut url, target) = forward_target(database_url)?;
        let hosts = tokio::task::spawn_blocking(move || Hosts::create(count))
            .await
            .map_err(|e| Error::Unsupported(format!("making the hosts panicked: {e}")))??;
        let root = hosts
            .as_slice()
            .first()
            .ok_or_else(|| Error::Unsupported("a cluster needs at least one host".into()))?
            .gateway();
        let forwarder = Forwarder::start(SocketAddr::from((root, 0)), target).await?;
        url.set_host(Some(&root.to_string()))
            .map_err(|e| Error::DatabaseUrl(e.to_string()))?;
        url.set_port(Some(forwarder.addr().port()))
            .map_err(|()| Error::DatabaseUrl("it cannot take a port".to_owned()))?;
        Ok(Self {
            _forwarder: forwarder,
            hosts,
            root,
            database_url: url.to_string(),
        })
    }

    /// The hosts, in order.
    pub fn hosts(&self) -> &[Host] {
        self.hosts.as_slice()
    }

    /// The root namespace's address that every host reaches: where receivers listen.
    pub fn root_ip(&self) -> Ipv4Addr {
        self.root
    }

    /// The database URL as the hosts reach it, through the forwarder.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// `exe serve` on host `index`: on the database (`FULLUP_DATABASE_URL`, kept off the
    /// command line in case it holds a password), listening on the host's address (any
    /// port), with webhooks to [`Cluster::root_ip`] allowed. The caller adds the rest
    /// and starts it with [`crate::ServeProcess::start`].
    ///
    /// # Panics
    ///
    /// If there is no host `index`.
    pub fn serve_command(&self, index: usize, exe: &Path) -> Command {
        let host = &self.hosts()[index];
        let mut command = host.command(exe);
        command
            .arg("serve")
            .args(["--listen", &SocketAddr::from((host.ip(), 0)).to_string()])
            .args(["--allow-network", &format!("{}/32", self.root_ip())])
            .env("FULLUP_DATABASE_URL", &self.database_url);
        command
    }
}

/// The URL parsed, and the `HOST:PORT` of its server.
fn forward_target(database_url: &str) -> Result<(url::Url, String), Error> {
    let url = url::Url::parse(database_url).map_err(|e| Error::DatabaseUrl(e.to_string()))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(Error::DatabaseUrl(format!(
            "a cluster runs on PostgreSQL, not `{}://`",
            url.scheme()
        )));
    }
    let port = url.port().unwrap_or(POSTGRES_PORT);
    let target = match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]:{port}"),
        Some(host) => format!("{host}:{port}"),
        None => {
            return Err(Error::DatabaseUrl(
                "it names no host (a Unix socket cannot be forwarded)".to_owned(),
            ));
        }
    };
    Ok((url, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarder_targets_the_urls_server() {
        let (_, target) = forward_target("postgres://postgres@127.0.0.1/db").expect("a URL");
        assert_eq!(target, "127.0.0.1:5432");
        let (_, target) =
            forward_target("postgresql://u:p@[::1]:6543/db?sslmode=disable").expect("a URL");
        assert_eq!(target, "[::1]:6543");
        for refused in [
            "sqlite://x.db",
            "postgres:///db?host=/run/postgresql",
            "no url",
        ] {
            assert!(forward_target(refused).is_err(), "{refused}");
        }
    }
}
