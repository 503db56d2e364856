//! Separate hosts on one machine, for the multi-node test and `fullup bench --nodes`.
//!
//! Each host is a Linux network namespace joined to the root namespace by a veth link
//! of its own ([`Hosts`]), so a `fullup serve` started in it ([`Cluster::serve_command`],
//! [`ServeProcess`]) has its own network stack, as on another machine, and reaches the
//! root namespace only over that link: PostgreSQL through a [`Forwarder`], receivers at
//! [`Cluster::root_ip`]. This is a test device, not a way to deploy: it needs root and
//! iproute2's `ip`, and everything it makes is removed when dropped.

mod cluster;
mod forward;
mod netns;
mod serve;

pub use cluster::Cluster;
pub use forward::Forwarder;
pub use netns::{Host, Hosts, check_support};
pub use serve::{LISTENING_PREFIX, ServeProcess};

/// What can go wrong making hosts or starting a process on them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// This machine cannot make network namespaces for us.
    #[error("network namespaces need root and iproute2's `ip`: {0}")]
    Unsupported(String),
    /// An `ip` command failed; its own message says why.
    #[error("`ip {command}` failed: {stderr}")]
    Ip {
        /// The arguments given to `ip`.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Every /30 of the block the links are numbered from is taken.
    #[error(
        "no free /30 left in {} for the hosts' links; remove stale `fullup-*` namespaces (`ip netns list`)",
        netns::BLOCK_NAME
    )]
    NoFreeLink,
    /// The database URL names no TCP server to forward.
    #[error("cannot forward the database URL to the hosts: {0}")]
    DatabaseUrl(String),
    /// `fullup serve` did not start.
    #[error("`fullup serve` {0}")]
    Serve(String),
    /// A program could not be spawned, or a file or socket could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
