//! Vetting a webhook URL before any byte leaves: parse, resolve once, judge every
//! address, and pin the connection to the vetted addresses.
//!
//! DNS rebinding is defeated by construction: the addresses judged are the addresses
//! connected to. A name is looked up exactly once per attempt; the HTTP client never
//! resolves names itself (its resolver refuses), it only connects where it is told.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use url::{Host, Url};

use super::ssrf::{Blocked, LOCALHOST_ADDRESSES, NetworkPolicy, is_localhost_name};

/// How host names become addresses; tests inject their own.
#[async_trait]
pub trait Lookup: Send + Sync + std::fmt::Debug {
    /// Every address `host` resolves to.
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The system resolver (getaddrinfo through tokio).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemLookup;

#[async_trait]
impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect())
    }
}

/// Why a URL may not be requested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The policy refuses the destination.
    #[error(transparent)]
    Blocked(#[from] Blocked),
    /// The name could not be resolved.
    #[error("could not resolve {host}: {message}")]
    Dns {
        /// The name.
        host: String,
        /// The resolver's error.
        message: String,
    },
    /// The URL is not usable at all.
    #[error("url is not valid: {0}")]
    Invalid(String),
}

/// Where a vetted URL may be connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vetted {
    /// An IP literal: connect to it, no lookup.
    Literal(SocketAddr),
    /// A name and the vetted addresses it resolved to this time.
    Named {
        /// The host name, as parsed.
        host: String,
        /// Every address it resolved to, each allowed.
        addrs: Vec<SocketAddr>,
    },
}

/// The policy and the resolver, shared by registration and delivery.
#[derive(Debug, Clone)]
pub struct OutboundGuard {
    policy: NetworkPolicy,
    lookup: Arc<dyn Lookup>,
}

impl OutboundGuard {
    /// A guard applying `policy`, resolving with `lookup`.
    pub fn new(policy: NetworkPolicy, lookup: Arc<dyn Lookup>) -> Self {
        Self { policy, lookup }
    }

    /// Judges `url`: its scheme, then its host (IP literals directly, names under
    /// `localhost` as loopback without a lookup, other names after one lookup, every
    /// address judged; one refused address refuses the URL).
    pub async fn vet(&self, url: &Url) -> Result<Vetted, GuardError> {
        self.policy.check_scheme(url.scheme())?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| GuardError::Invalid("url has no port".to_owned()))?;
        match url.host() {
            Some(Host::Ipv4(ip)) => self.vet_literal(SocketAddr::new(IpAddr::V4(ip), port)),
            Some(Host::Ipv6(ip)) => self.vet_literal(SocketAddr::new(IpAddr::V6(ip), port)),
            Some(Host::Domain(name)) => self.vet_name(name, port).await,
            None => Err(GuardError::Invalid("url has no host".to_owned())),
        }
    }

    fn vet_literal(&self, addr: SocketAddr) -> Result<Vetted, GuardError> {
        self.policy.check(addr)?;
        Ok(Vetted::Literal(addr))
    }

    /// A name under `localhost` (RFC 6761) stands for the loopback addresses, whatever a
    /// resolver says: it goes to those of them the policy allows (`--allow-network
    /// 127.0.0.0/8` opens `localhost` on IPv4 only), and is refused if it allows none.
    fn vet_localhost(&self, name: &str, port: u16) -> Result<Vetted, GuardError> {
        let mut refusal = None;
        let mut addrs = Vec::new();
        for addr in LOCALHOST_ADDRESSES.map(|ip| SocketAddr::new(ip, port)) {
            match self.policy.check(addr) {
                Ok(()) => addrs.push(addr),
                Err(blocked) => refusal = refusal.or(Some(blocked)),
            }
        }
        match refusal {
            Some(blocked) if addrs.is_empty() => Err(blocked.into()),
            _ => Ok(Vetted::Named {
                host: name.to_owned(),
                addrs,
            }),
        }
    }

    async fn vet_name(&self, name: &str, port: u16) -> Result<Vetted, GuardError> {
        if is_localhost_name(name) {
            return self.vet_localhost(name, port);
        }
        let ips = self
            .lookup
            .lookup(name)
            .await
            .map_err(|e| GuardError::Dns {
                host: name.to_owned(),
                message: e.to_string(),
            })?;
        if ips.is_empty() {
            return Err(Blocked::NoAddress(name.to_owned()).into());
        }
        let addrs: Vec<SocketAddr> = ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        for addr in &addrs {
            self.policy.check(*addr)?;
        }
        Ok(Vetted::Named {
            host: name.to_owned(),
            addrs,
        })
    }
}

/// A resolver for the HTTP client that refuses every name: connections go only to
/// addresses pinned after vetting, so an unvetted lookup is a bug and must fail closed.
#[derive(Debug, Clone, Copy)]
struct RefuseLookups;

impl reqwest::dns::Resolve for RefuseLookups {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move { Err(format!("refusing an unvetted lookup of {name}").into()) })
    }
}

/// A name and the vetted addresses its client connects to.
type PinKey = (String, Vec<SocketAddr>);

/// Most distinct pinned clients kept; past it the cache starts over (their pools close).
const MAX_PINNED_CLIENTS: usize = 1024;

/// HTTP clients that can only reach vetted addresses, one connection pool per name and
/// address set (so keep-alive works per endpoint), plus one for IP literals.
///
/// Every client: the configured timeouts, no redirects, no proxy from the environment,
/// lookups refused.
#[derive(Debug, Clone)]
pub struct PinnedClients {
    connect_timeout: Duration,
    request_timeout: Duration,
    literal: reqwest::Client,
    named: Arc<Mutex<HashMap<PinKey, reqwest::Client>>>,
}

impl PinnedClients {
    /// Clients with these timeouts.
    pub fn new(connect_timeout: Duration, request_timeout: Duration) -> reqwest::Result<Self> {
        let literal = builder(connect_timeout, request_timeout).build()?;
        Ok(Self {
            connect_timeout,
            request_timeout,
            literal,
            named: Arc::default(),
        })
    }

    /// The client that connects where `vetted` says.
    pub fn client_for(&self, vetted: &Vetted) -> reqwest::Result<reqwest::Client> {
        let Vetted::Named { host, addrs } = vetted else {
            return Ok(self.literal.clone());
        };
        let key = (host.clone(), addrs.clone());
        let mut map = self.named.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = map.get(&key) {
            return Ok(client.clone());
        }
        let client = builder(self.connect_timeout, self.request_timeout)
            .resolve_to_addrs(host, addrs)
            .build()?;
        if map.len() >= MAX_PINNED_CLIENTS {
            map.clear();
        }
        map.insert(key, client.clone());
        Ok(client)
    }
}

fn builder(connect_timeout: Duration, request_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(60))
        .dns_resolver(Arc::new(RefuseLookups))
}
