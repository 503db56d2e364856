//! Throttle state kept in memory: a SQLite database has exactly one node, this process,
//! so each throttled webhook's next slot (see [`crate::domain::throttle`]) only has to
//! be shared by its own attempts; as with the leases, keeping it out of the database
//! spares the writer a row update (and a disk flush) per request. It runs on the
//! monotonic clock. After a restart every webhook starts idle: its first request is
//! sent at once.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::ids::WebhookId;
use crate::domain::throttle::{Micros, RateLimit, grant};

/// Entries kept before those whose slot has passed are dropped (a webhook deleted, or
/// no longer throttled, keeps its entry until then).
const PRUNE_ABOVE: usize = 1024;

/// Each throttled webhook's theoretical arrival time.
#[derive(Debug)]
pub(super) struct Throttles {
    /// Time zero of the clock the arrival times count on.
    epoch: Instant,
    tat: Mutex<HashMap<WebhookId, Micros>>,
}

impl Default for Throttles {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            tat: Mutex::default(),
        }
    }
}

impl Throttles {
    /// Takes `webhook`'s next slot: how long from now until it comes.
    pub fn take(&self, webhook: WebhookId, limit: RateLimit) -> Duration {
        let now = Micros::of(self.epoch.elapsed());
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        if tat.len() > PRUNE_ABOVE {
            tat.retain(|_, t| *t > now);
        }
        let granted = grant(tat.get(&webhook).copied(), now, limit);
        tat.insert(webhook, granted.tat);
        granted.slot.since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;

    #[test]
    fn slots_of_one_webhook_are_spaced_and_other_webhooks_are_not_held_up() {
        let throttles = Throttles::default();
        let limit = RateLimit::new(2).expect("limit");
        let (a, b) = (
            WebhookId::new(Timestamp::EPOCH),
            WebhookId::new(Timestamp::EPOCH),
        );
        assert_eq!(throttles.take(a, limit), Duration::ZERO);
        let second = throttles.take(a, limit);
        assert!(
            second > Duration::from_millis(500) && second <= Duration::from_millis(510),
            "{second:?}"
        );
        assert_eq!(throttles.take(b, limit), Duration::ZERO);
    }
}
