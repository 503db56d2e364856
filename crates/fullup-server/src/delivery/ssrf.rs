//! Which addresses the service may send webhooks to.
//!
//! A webhook URL is typed by a user, so without this guard any user could make the
//! service request `http://169.254.169.254/` or an internal admin port and read the
//! answer in the attempt log. Every special-purpose range (IANA's registries, plus the
//! IPv6 forms that embed or translate to IPv4) is denied unless the operator opens a
//! range with `--allow-network`; the service's own API address stays denied even then.
//! Hosts are judged after WHATWG parsing (`url` crate: `127.1`, `0x7f.1`, `2130706433`
//! all arrive here as 127.0.0.1), never as strings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Blocked {
    /// The address is in a denied range.
    #[error(
        "{addr} is in the special-purpose range {range} ({why}); webhooks may only reach public addresses \
         (an operator can open a range with --allow-network)"
    )]
    SpecialPurpose {
        /// The refused address.
        addr: IpAddr,
        /// The denied range it is in.
        range: IpNet,
        /// What the range is for.
        why: &'static str,
    },
    /// The address and port are the service's own API.
    #[error("{0} is this service's own API address")]
    OwnAddress(SocketAddr),
    /// Plain http while https is required.
    #[error("url must use https (the service runs with --require-https)")]
    HttpsRequired,
    /// A scheme other than http or https.
    #[error("url scheme `{0}` is not allowed: use http or https")]
    Scheme(String),
    /// The name resolved to no address.
    #[error("{0} did not resolve to any address")]
    NoAddress(String),
}

/// The denied IPv4 ranges and what they are.
const DENIED_V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "this network"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space (carrier-grade NAT)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link-local, cloud metadata",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (
        Ipv4Addr::new(192, 0, 2, 0),
        24,
        "documentation (TEST-NET-1)",
    ),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "documentation (TEST-NET-2)",
    ),
    (
        Ipv4Addr::new(203, 0, 113, 0),
        24,
        "documentation (TEST-NET-3)",
    ),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved, broadcast"),
];

/// The denied IPv6 ranges (mapped and compatible IPv4 are judged by their IPv4 part).
const DENIED_V6: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 128, "unspecified"),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128, "loopback"),
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96, "NAT64"),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "local-use NAT64",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only",
    ),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, "Teredo"),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16, "6to4"),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique local (holds AWS fd00:ec2::254)",
    ),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// The denied range holding `addr`, with its description.
pub fn denied_range(addr: IpAddr) -> Option<(IpNet, &'static str)> {
    match addr {
        IpAddr::V4(v4) => denied_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return denied_v4(v4);
            }
            DENIED_V6.iter().find_map(|&(net, len, why)| {
                let net = Ipv6Net::new(net, len).ok()?;
                net.contains(&v6).then_some((IpNet::V6(net), why))
            })
        }
    }
}

fn denied_v4(addr: Ipv4Addr) -> Option<(IpNet, &'static str)> {
    DENIED_V4.iter().find_map(|&(net, len, why)| {
        let net = Ipv4Net::new(net, len).ok()?;
        net.contains(&addr).then_some((IpNet::V4(net), why))
    })
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible
/// (`::a.b.c.d`, deprecated but still routed by some stacks) IPv6 address. `::` and
/// `::1` are not treated as compatible addresses.
fn embedded_v4(addr: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = addr.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = addr.segments();
    let compatible = s[..6].iter().all(|&x| x == 0) && (s[6] != 0 || s[7] > 1);
    compatible.then(|| Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8))
}

/// Whether `host` is a name under `localhost` (`localhost` itself or `*.localhost`, any
/// case, with or without the trailing dot of a fully qualified name). RFC 6761 makes
/// these loopback by definition, so they are never looked up: whatever a resolver (or
/// an attacker's DNS server) answers for them, they are judged as loopback.
pub fn is_localhost_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host).as_bytes();
    const LOCALHOST: &[u8] = b"localhost";
    let Some(start) = name.len().checked_sub(LOCALHOST.len()) else {
        return false;
    };
    name[start..].eq_ignore_ascii_case(LOCALHOST) && (start == 0 || name[start - 1] == b'.')
}

/// The addresses a name under `localhost` stands for (RFC 6761: the loopback ones).
pub const LOCALHOST_ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// The operator's outbound policy.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    /// Ranges opened despite being special-purpose (`--allow-network`).
    pub allow: Vec<IpNet>,
    /// The service's own API address, denied even when its range is allowed.
    pub own_address: Option<SocketAddr>,
    /// Refuse plain http.
    pub require_https: bool,
}

impl NetworkPolicy {
    /// Judges one resolved destination.
    pub fn check(&self, addr: SocketAddr) -> Result<(), Blocked> {
        if self.is_own_address(addr) {
            return Err(Blocked::OwnAddress(addr));
        }
        let ip = normalize(addr.ip());
        match denied_range(ip) {
            Some(_) if self.allow.iter().any(|net| net.contains(&ip)) => Ok(()),
            Some((range, why)) => Err(Blocked::SpecialPurpose {
                addr: ip,
                range,
                why,
            }),
            None => Ok(()),
        }
    }

    /// Judges a URL's scheme.
    pub fn check_scheme(&self, scheme: &str) -> Result<(), Blocked> {
        match scheme {
            "https" => Ok(()),
            "http" if self.require_https => Err(Blocked::HttpsRequired),
            "http" => Ok(()),
            other => Err(Blocked::Scheme(other.to_owned())),
        }
    }

    fn is_own_address(&self, addr: SocketAddr) -> bool {
        let Some(own) = self.own_address else {
            return false;
        };
        if own.port() != addr.port() {
            return false;
        }
        let ip = normalize(addr.ip());
        own.ip().is_unspecified() || ip == normalize(own.ip()) || ip.is_loopback()
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn special_purpose_addresses_are_denied_and_public_ones_pass() {
        for denied in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(
                denied_range(ip(denied)).is_some(),
                "{denied} must be denied"
            );
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(denied_range(ip(public)).is_none(), "{public} must pass");
        }
    }

    #[test]
    fn allowed_networks_open_a_range_but_never_the_own_address() {
        let policy = NetworkPolicy {
            allow: vec!["127.0.0.0/8".parse().expect("net")],
            own_address: Some("127.0.0.1:8080".parse().expect("addr")),
            require_https: false,
        };
        assert!(
            policy
                .check("127.0.0.1:3000".parse().expect("addr"))
                .is_ok()
        );
        assert_eq!(
            policy.check("127.0.0.1:8080".parse().expect("addr")),
            Err(Blocked::OwnAddress("127.0.0.1:8080".parse().expect("addr")))
        );
        assert!(
            policy
                .check("[::ffff:127.0.0.2]:8080".parse().expect("addr"))
                .is_err()
        );
        assert!(
            policy
                .check("10.0.0.1:3000".parse().expect("addr"))
                .is_err()
        );
    }

    #[test]
    fn names_under_localhost_are_recognised_in_every_spelling() {
        for name in [
            "localhost",
            "localhost.",
            "LOCALHOST.",
            "LocalHost",
            "a.localhost",
            "A.B.LOCALHOST.",
            "x-y.LocalHost",
        ] {
            assert!(is_localhost_name(name), "{name} is under localhost");
        }
        for name in [
            "",
            ".",
            "localhost..",
            "localhostx",
            "notlocalhost",
            "notlocalhost.",
            "localhost.example.com",
            "localhost.com",
            "local.host",
            "example.com",
        ] {
            assert!(!is_localhost_name(name), "{name} is not under localhost");
        }
    }

    #[test]
    fn schemes_are_judged() {
        let strict = NetworkPolicy {
            require_https: true,
            ..NetworkPolicy::default()
        };
        assert_eq!(strict.check_scheme("http"), Err(Blocked::HttpsRequired));
        assert!(strict.check_scheme("https").is_ok());
        assert!(NetworkPolicy::default().check_scheme("http").is_ok());
        assert!(NetworkPolicy::default().check_scheme("gopher").is_err());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn in_v4_range(index: usize, offset: u32) -> Ipv4Addr {
            let (net, len, _) = DENIED_V4[index];
            let host_bits = 32 - u32::from(len);
            let mask = if host_bits == 32 {
                u32::MAX
            } else {
                (1u32 << host_bits) - 1
            };
            Ipv4Addr::from(u32::from(net) | (offset & mask))
        }

        fn in_v6_range(index: usize, offset: u128) -> Ipv6Addr {
            let (net, len, _) = DENIED_V6[index];
            let host_bits = 128 - u32::from(len);
            let mask = if host_bits == 128 {
                u128::MAX
            } else if host_bits == 0 {
                0
            } else {
                (1u128 << host_bits) - 1
            };
            Ipv6Addr::from(u128::from(net) | (offset & mask))
        }

        proptest! {
            #[test]
            fn every_address_of_every_denied_v4_range_is_denied_in_every_spelling(
                index in 0..DENIED_V4.len(),
                offset in any::<u32>(),
            ) {
                let v4 = in_v4_range(index, offset);
                prop_assert!(denied_range(IpAddr::V4(v4)).is_some(), "{v4}");
                prop_assert!(denied_range(IpAddr::V6(v4.to_ipv6_mapped())).is_some(), "mapped {v4}");
                prop_assert!(denied_range(IpAddr::V6(v4.to_ipv6_compatible())).is_some(), "compatible {v4}");
                let policy = NetworkPolicy::default();
                prop_assert!(policy.check(SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), 443)).is_err());
            }

            #[test]
            fn every_address_of_every_denied_v6_range_is_denied(
                index in 0..DENIED_V6.len(),
                offset in any::<u128>(),
            ) {
                let v6 = in_v6_range(index, offset);
                prop_assert!(denied_range(IpAddr::V6(v6)).is_some(), "{v6}");
                prop_assert!(NetworkPolicy::default().check(SocketAddr::new(IpAddr::V6(v6), 80)).is_err());
            }
        }
    }
}
