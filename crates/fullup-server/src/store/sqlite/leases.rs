//! Leases kept in memory. A SQLite database has exactly one node, this process, so a
//! lease only has to keep two attempts of one delivery from running here at once; after
//! a crash every lease is void anyway. Keeping them out of the database spares the
//! writer a row update per delivery and lets claims read without waiting for a commit.
//! A lease runs on the monotonic clock, for as long as the claim asked: the service's
//! clock may be a test's, and jumping it must not void the leases of attempts in flight.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::ids::DeliveryId;

/// The deliveries leased by this process, each until a deadline.
#[derive(Debug, Default)]
pub(super) struct Leases {
    held: Mutex<HashMap<DeliveryId, Instant>>,
    /// Held for the whole of a claim (read, then lease), so two claims never pick the
    /// same delivery.
    pub claiming: tokio::sync::Mutex<()>,
}

impl Leases {
    /// The deliveries leased now; expired leases are dropped first.
    pub fn live(&self) -> Vec<DeliveryId> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.retain(|_, until| *until > now);
        held.keys().copied().collect()
    }

    /// Leases `ids` for `duration`.
    pub fn take(&self, ids: impl IntoIterator<Item = DeliveryId>, duration: Duration) {
        let until = Instant::now() + duration;
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.extend(ids.into_iter().map(|id| (id, until)));
    }

    /// Drops the leases of `ids`.
    pub fn release(&self, ids: &[DeliveryId]) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            held.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_live_until_it_expires_or_is_released() {
        let leases = Leases::default();
        let (a, b) = (
            DeliveryId::new(crate::domain::time::Timestamp::EPOCH),
            DeliveryId::new(crate::domain::time::Timestamp::EPOCH),
        );
        leases.take([a], Duration::ZERO);
        leases.take([b], Duration::from_secs(3600));
        assert_eq!(leases.live(), vec![b], "a expired at once");
        leases.release(&[b]);
        assert!(leases.live().is_empty());
    }
}
