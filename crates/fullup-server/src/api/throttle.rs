//! Throttling of failed authentication per client address, so nobody can try tokens
//! (or admin tokens in the console's sign-in form) at the speed of the network.
//!
//! Each address may fail [`AuthLimits::failures`] times per [`AuthLimits::window`];
//! past that, every authenticated request from it answers 429 `too_many_failures` with
//! `Retry-After` until the window ends, whether or not its next token is right (else
//! the answer would tell a guesser when they hit). Successes cost nothing. IPv6 clients
//! are counted per /64, the block one subscriber usually holds.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] addresses are tracked; when that many
//! are in their window, further addresses share one overflow counter. Under an attack
//! from that many addresses, new clients may then be refused for a window, but the
//! memory stays put and the guessing stays throttled. Behind a reverse proxy every
//! client shares the proxy's address: raise the limit there, or throttle at the proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Addresses tracked at once (about 64 bytes each).
pub const MAX_TRACKED: usize = 10_000;
/// Default failures allowed per address and window: plenty for a person mistyping,
/// nothing for a guesser.
pub const DEFAULT_AUTH_FAILURES: u32 = 10;
/// Default window the failures are counted in.
pub const DEFAULT_AUTH_WINDOW: Duration = Duration::from_secs(60);

/// How many failed authentications a client address may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthLimits {
    /// Failures per window and address; 0 disables the throttle.
    pub failures: u32,
    /// The window they are counted in.
    pub window: Duration,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            failures: DEFAULT_AUTH_FAILURES,
            window: DEFAULT_AUTH_WINDOW,
        }
    }
}

/// Failures of one address (or of the overflow) in its current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Debug, Default)]
struct Counters {
    clients: HashMap<IpAddr, Window>,
    overflow: Option<Window>,
}

/// The failed-authentication throttle; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct AuthThrottle {
    limits: AuthLimits,
    counters: Arc<Mutex<Counters>>,
}

impl AuthThrottle {
    /// A throttle following `limits`.
    pub fn new(limits: AuthLimits) -> Self {
        Self {
            limits,
            counters: Arc::default(),
        }
    }

    /// How long `client` must wait before trying again, if it used up its failures.
    pub fn blocked(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        if self.limits.failures == 0 {
            return None;
        }
        let counters = self.lock();
        let window = match counters.clients.get(&key(client)) {
            Some(window) => Some(*window),
            None if counters.clients.len() >= MAX_TRACKED => counters.overflow,
            None => None,
        }?;
        let ends = window.started + self.limits.window;
        (window.failures >= self.limits.failures && ends > now).then(|| ends - now)
    }

    /// Counts a failed authentication of `client`.
    pub fn failed(&self, client: IpAddr, now: Instant) {
        if self.limits.failures == 0 {
            return;
        }
        let window = self.limits.window;
        let mut counters = self.lock();
        let client = key(client);
        if !counters.clients.contains_key(&client) && counters.clients.len() >= MAX_TRACKED {
            counters.clients.retain(|_, w| w.started + window > now);
        }
        let slot = if counters.clients.contains_key(&client) || counters.clients.len() < MAX_TRACKED
        {
            counters.clients.entry(client).or_insert(Window {
                started: now,
                failures: 0,
            })
        } else {
            counters.overflow.get_or_insert(Window {
                started: now,
                failures: 0,
            })
        };
        if slot.started + window <= now {
            *slot = Window {
                started: now,
                failures: 0,
            };
        }
        slot.failures = slot.failures.saturating_add(1);
    }

    /// Addresses tracked now (for tests of the memory bound).
    pub fn tracked(&self) -> usize {
        self.lock().clients.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // A panic while holding this lock leaves plain counters: still usable.
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The unit an address is counted in: itself for IPv4, its /64 for IPv6.
fn key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(failures: u32) -> AuthThrottle {
        AuthThrottle::new(AuthLimits {
            failures,
            window: Duration::from_secs(60),
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn an_address_is_blocked_after_its_failures_until_its_window_ends() {
        let throttle = throttle(10);
        let now = Instant::now();
        let client = ip("203.0.113.7");
        for _ in 0..9 {
            throttle.failed(client, now);
        }
        assert_eq!(throttle.blocked(client, now), None, "9 failures pass");
        throttle.failed(client, now);
        let later = now + Duration::from_secs(15);
        assert_eq!(
            throttle.blocked(client, later),
            Some(Duration::from_secs(45))
        );
        assert_eq!(throttle.blocked(ip("203.0.113.8"), later), None);
        let after = now + Duration::from_secs(60);
        assert_eq!(throttle.blocked(client, after), None, "a new window");
        throttle.failed(client, after);
        assert_eq!(throttle.blocked(client, after), None, "counting from 1");
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let throttle = throttle(2);
        let now = Instant::now();
        throttle.failed(ip("2001:db8:1:2::1"), now);
        throttle.failed(ip("2001:db8:1:2:ffff::9"), now);
        assert!(throttle.blocked(ip("2001:db8:1:2::77"), now).is_some());
        assert_eq!(throttle.blocked(ip("2001:db8:1:3::1"), now), None);
        throttle.failed(ip("::ffff:198.51.100.1"), now);
        throttle.failed(ip("198.51.100.1"), now);
        assert!(throttle.blocked(ip("198.51.100.1"), now).is_some());
    }

    #[test]
    fn memory_stays_bounded_under_many_addresses_and_the_overflow_is_throttled() {
        let throttle = throttle(3);
        let now = Instant::now();
        let many = u32::try_from(MAX_TRACKED).expect("fits") + 5_000;
        for n in 0..many {
            throttle.failed(IpAddr::V4(n.into()), now);
        }
        assert_eq!(throttle.tracked(), MAX_TRACKED);
        let newcomer = ip("192.0.2.1");
        assert!(
            throttle.blocked(newcomer, now).is_some(),
            "5000 failures went to the shared overflow counter"
        );
        // Once their windows end, old addresses make room again.
        let later = now + Duration::from_secs(61);
        throttle.failed(newcomer, later);
        assert_eq!(throttle.tracked(), 1);
        assert_eq!(throttle.blocked(newcomer, later), None);
    }

    #[test]
    fn zero_failures_disables_the_throttle() {
        let throttle = throttle(0);
        let now = Instant::now();
        for _ in 0..100 {
            throttle.failed(ip("203.0.113.7"), now);
        }
        assert_eq!(throttle.blocked(ip("203.0.113.7"), now), None);
        assert_eq!(throttle.tracked(), 0);
    }
}
