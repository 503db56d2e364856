//! Network namespaces joined to the root namespace by veth pairs: one host each.
//!
//! A host is the namespace `fullup-PID-N` (this process's id and a counter, so runs at
//! once never collide) holding `eth0`, whose peer `fuPIDxN` stays in the root namespace.
//! Each link has a /30 of its own from [`BLOCK_NAME`]: the root end takes its first
//! address, the host its second, and the host's default route is its link, so it reaches
//! every address of the root namespace and nothing else (the root namespace forwards
//! nothing). Free /30s are found by reading the root namespace's addresses while holding
//! a lock file that every process using this module takes, after removing what a
//! process that no longer exists (a test killed mid-run) left behind.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Error;

/// The block the links' /30s come from: private, and unlikely to be in use on a test
/// machine (the addresses in use are checked anyway).
const BLOCK: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 0);
/// /30s in [`BLOCK`], a /16.
const LINKS: u32 = 1 << 14;
/// [`BLOCK`] as a CIDR, for messages.
pub(crate) const BLOCK_NAME: &str = "10.231.0.0/16";
/// Our namespaces are named this, then `PID-N`.
const NAMESPACE_PREFIX: &str = "fullup-";
/// The root ends of our links are named this, then `PIDxN` (15 bytes at most, the
/// kernel's limit on interface names).
const LINK_PREFIX: &str = "fu";
/// Serialises finding free /30s and taking them between processes (in the temporary
/// folder).
const LOCK_FILE: &str = "fullup-hosts.lock";

/// Numbers this process's namespaces and links.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// Checks that this machine can make hosts: iproute2's `ip` runs and this process is
/// root. (A root without `CAP_NET_ADMIN`, in a container, fails later, naming the `ip`
/// command the kernel refused.)
pub fn check_support() -> Result<(), Error> {
    let runs = Command::new("ip")
        .arg("-V")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        return Err(Error::Unsupported(
            "`ip -V` does not run (install iproute2)".to_owned(),
        ));
    }
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(Error::io("reading /proc/self/status"))?;
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1));
    match euid {
        Some("0") => Ok(()),
        other => Err(Error::Unsupported(format!(
            "running as uid {}, not root",
            other.unwrap_or("unknown")
        ))),
    }
}

/// One host: a network namespace and its link to the root namespace.
#[derive(Debug)]
pub struct Host {
    /// `fullup-PID-N`, as `ip netns` names it.
    name: String,
    /// `fuPIDxN`: the root namespace's end of the link.
    link: String,
    /// The host's address on its link (the second of the /30).
    ip: Ipv4Addr,
    /// The root namespace's address on the link (the first of the /30).
    gateway: Ipv4Addr,
}

impl Host {
    /// The host on /30 number `index` of the block, not made yet.
    fn numbered(index: u32) -> Self {
        let (pid, n) = (std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let first = u32::from(BLOCK) + index * 4;
        Self {
            name: format!("{NAMESPACE_PREFIX}{pid}-{n}"),
            link: format!("{LINK_PREFIX}{pid}x{n}"),
            gateway: Ipv4Addr::from(first + 1),
            ip: Ipv4Addr::from(first + 2),
        }
    }

    /// The namespace's name (`ip netns exec NAME …`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's address: what it listens on, and the source of what it sends.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The root namespace's address on this host's link.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// A command running `program` on this host (`ip netns exec NAME program`). `ip`
    /// execs the program, so the child's pid is the program's and signals reach it.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    fn set_up(&self) -> Result<(), Error> {
        let (name, link) = (self.name.as_str(), self.link.as_str());
        let (ip_cidr, gateway_cidr) = (format!("{}/30", self.ip), format!("{}/30", self.gateway));
        let gateway = self.gateway.to_string();
        let veth = ["link", "add", link, "type", "veth", "peer", "name", "eth0"];
        ip(&["netns", "add", name])?;
        ip(&[&veth[..], &["netns", name]].concat())?;
        ip(&["addr", "add", &gateway_cidr, "dev", link])?;
        ip(&["link", "set", link, "up"])?;
        ip(&["-n", name, "addr", "add", &ip_cidr, "dev", "eth0"])?;
        ip(&["-n", name, "link", "set", "eth0", "up"])?;
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        ip(&["-n", name, "route", "add", "default", "via", &gateway])?;
        Ok(())
    }

    /// Removes the host, killing what still runs in it; never fails (a part that is
    /// already gone is fine).
    fn remove(&self) {
        remove(&self.name, &self.link);
    }
}

/// Hosts made together; removed (with whatever still runs in them) when dropped.
#[derive(Debug)]
pub struct Hosts {
    hosts: Vec<Host>,
}

impl Hosts {
    /// Makes `count` hosts, each on a link of its own. Removes first what earlier
    /// processes that no longer exist left behind.
    pub fn create(count: usize) -> Result<Self, Error> {
        check_support()?;
        let _lock = lock()?;
        remove_leftovers();
        let mut hosts = Self {
            hosts: Vec::with_capacity(count),
        };
        for index in free_links(count)? {
            let host = Host::numbered(index);
            if let Err(err) = host.set_up() {
                host.remove();
                return Err(err);
            }
            hosts.hosts.push(host);
        }
        Ok(hosts)
    }

    /// The hosts, in the order made.
    pub fn as_slice(&self) -> &[Host] {
        &self.hosts
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for host in &self.hosts {
            host.remove();
        }
    }
}

/// Kills what runs in namespace `name`, deletes the link `link` (and so its peer) and
/// the namespace. Errors are ignored: this also cleans up after partial failures.
fn remove(name: &str, link: &str) {
    if let Ok(pids) = ip(&["netns", "pids", name]) {
        for pid in pids.split_whitespace() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
    }
    let _ = ip(&["link", "del", link]);
    let _ = ip(&["netns", "del", name]);
}

/// Removes the namespaces and links of processes that no longer exist.
fn remove_leftovers() {
    let namespaces = ip(&["netns", "list"]).unwrap_or_default();
    let names = namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next());
    for name in names {
        if let Some((pid, n)) = numbers(name, NAMESPACE_PREFIX, '-')
            && !alive(pid)
        {
            remove(name, &format!("{LINK_PREFIX}{pid}x{n}"));
        }
    }
    let links = ip(&["-o", "link", "show"]).unwrap_or_default();
    for link in links.lines().filter_map(link_name) {
        if let Some((pid, _)) = numbers(link, LINK_PREFIX, 'x')
            && !alive(pid)
        {
            let _ = ip(&["link", "del", link]);
        }
    }
}

/// `(PID, N)` of a name `{prefix}PID{separator}N`.
fn numbers(name: &str, prefix: &str, separator: char) -> Option<(u32, u32)> {
    let (pid, n) = name.strip_prefix(prefix)?.split_once(separator)?;
    Some((pid.parse().ok()?, n.parse().ok()?))
}

/// The interface name of an `ip -o link show` line (`4: fu12x0@if2: <…`).
fn link_name(line: &str) -> Option<&str> {
    let name = line.split(": ").nth(1)?;
    Some(name.split('@').next().unwrap_or(name))
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The first `count` /30s of the block on which the root namespace has no address.
fn free_links(count: usize) -> Result<Vec<u32>, Error> {
    let taken: HashSet<u32> = ip(&["-4", "-o", "addr", "show"])?
        .lines()
        .filter_map(link_of)
        .collect();
    let free: Vec<u32> = (0..LINKS)
        .filter(|i| !taken.contains(i))
        .take(count)
        .collect();
    if free.len() < count {
        return Err(Error::NoFreeLink);
    }
    Ok(free)
}

/// The /30 of the block holding the address of an `ip -4 -o addr show` line
/// (`4: eth0    inet 10.231.0.1/30 scope global eth0`), if it is in the block.
fn link_of(line: &str) -> Option<u32> {
    let mut words = line.split_whitespace().skip_while(|w| *w != "inet");
    let cidr = words.nth(1)?;
    let addr: Ipv4Addr = cidr.split('/').next()?.parse().ok()?;
    let offset = u32::from(addr).checked_sub(u32::from(BLOCK))?;
    (offset < LINKS * 4).then_some(offset / 4)
}

/// Takes the lock file, waiting for another process that holds it.
fn lock() -> Result<File, Error> {
    let path = std::env::temp_dir().join(LOCK_FILE);
    let what = format!("locking {}", path.display());
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io(what.clone()))?;
    file.lock().map_err(Error::io(what))?;
    Ok(file)
}

/// Runs `ip ARGS`; its stdout, or its stderr as the error.
fn ip(args: &[&str]) -> Result<String, Error> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(Error::io("running `ip`"))?;
    if !output.status.success() {
        return Err(Error::Ip {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_takes_the_first_two_addresses_of_its_slash_30() {
        let host = Host::numbered(3);
        assert_eq!(host.gateway, Ipv4Addr::new(10, 231, 0, 13));
        assert_eq!(host.ip, Ipv4Addr::new(10, 231, 0, 14));
        assert!(host.link.len() <= 15, "{} is too long", host.link);
        assert_eq!(
            numbers(&host.name, NAMESPACE_PREFIX, '-').map(|(pid, _)| pid),
            Some(std::process::id())
        );
    }

    #[test]
    fn only_addresses_in_the_block_take_a_link() {
        let line = |addr: &str| format!("7: fu1x2    inet {addr} scope global fu1x2\\");
        assert_eq!(link_of(&line("10.231.0.1/30")), Some(0));
        assert_eq!(link_of(&line("10.231.1.5/30")), Some(65));
        assert_eq!(link_of(&line("10.231.255.254/30")), Some(LINKS - 1));
        assert_eq!(link_of(&line("10.232.0.1/30")), None);
        assert_eq!(link_of(&line("10.230.255.255/30")), None);
        assert_eq!(link_of("1: lo    inet6 ::1/128 scope host"), None);
    }

    #[test]
    fn names_give_back_their_numbers() {
        assert_eq!(
            numbers("fullup-123-4", NAMESPACE_PREFIX, '-'),
            Some((123, 4))
        );
        assert_eq!(numbers("fullup-x-4", NAMESPACE_PREFIX, '-'), None);
        assert_eq!(numbers("eth0", LINK_PREFIX, 'x'), None);
        assert_eq!(
            link_name("12: fu99x3@if2: <BROADCAST> mtu 1500"),
            Some("fu99x3")
        );
        assert_eq!(link_name("1: lo: <LOOPBACK,UP> mtu 65536"), Some("lo"));
    }
}
