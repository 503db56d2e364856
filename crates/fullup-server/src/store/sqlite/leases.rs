//! Leases kept in memory. A SQLite database has exactly one node, this process, so a
//! lease only has to keep two attempts of one delivery from running here at once; after
//! a crash every lease is void anyway. Keeping them out of the database spares the
//! writer a row update per delivery and lets claims read without waiting for a commit.
//! A lease runs on the monotonic clock, for as long as the claim asked: the service's
//! clock may be a test's, and jumping it must not void the leases of attempts in flight.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::domain::ids::{DeliveryId, SiteId, WebhookId};

/// One lease: until when, and whose attempt it is.
#[derive(Debug, Clone, Copy)]
struct Lease {
    until: Instant,
    webhook: WebhookId,
    site: SiteId,
}

/// The live leases as the claim query reads them: JSON arrays for `json_each`.
#[derive(Debug, Serialize)]
pub(super) struct Live {
    /// The leased deliveries' ids.
    pub ids: Vec<DeliveryId>,
    /// `[webhook id, leases]` pairs.
    pub webhooks: Vec<(WebhookId, usize)>,
    /// `[site id, leases]` pairs.
    pub sites: Vec<(SiteId, usize)>,
}

/// The deliveries leased by this process, each until a deadline.
#[derive(Debug, Default)]
pub(super) struct Leases {
    held: Mutex<HashMap<DeliveryId, Lease>>,
    /// Held for the whole of a claim (read, then lease), and by a hand-off while it
    /// leases: a claim's read is a snapshot, and a delivery leased, attempted and
    /// released again within one claim would look due to it.
    pub claiming: tokio::sync::Mutex<()>,
}

impl Leases {
    /// The deliveries leased now, and how many of each webhook and site, not counting
    /// those of `settling` (their requests are over: see [`crate::store::Claim`]);
    /// expired leases are dropped first.
    pub fn live(&self, settling: &[DeliveryId]) -> Live {
        let settling: HashSet<&DeliveryId> = settling.iter().collect();
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.retain(|_, lease| lease.until > now);
        let mut webhooks: HashMap<WebhookId, usize> = HashMap::new();
        let mut sites: HashMap<SiteId, usize> = HashMap::new();
        for (id, lease) in held.iter() {
            if settling.contains(id) {
                continue;
            }
            *webhooks.entry(lease.webhook).or_default() += 1;
            *sites.entry(lease.site).or_default() += 1;
        }
        Live {
            ids: held.keys().copied().collect(),
            webhooks: webhooks.into_iter().collect(),
            sites: sites.into_iter().collect(),
        }
    }

    /// Leases each delivery of `claimed` (id, its webhook and site) for `duration`,
    /// unless it is leased already; returns the ids this call leased. A claim and an
    /// ingest's hand-off may both pick a delivery just committed: the first to lease it
    /// attempts it.
    pub fn take(
        &self,
        claimed: impl IntoIterator<Item = (DeliveryId, WebhookId, SiteId)>,
        duration: Duration,
    ) -> HashSet<DeliveryId> {
        let now = Instant::now();
        let until = now + duration;
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mut taken = HashSet::new();
        for (id, webhook, site) in claimed {
            if held.get(&id).is_some_and(|lease| lease.until > now) {
                continue;
            }
            held.insert(
                id,
                Lease {
                    until,
                    webhook,
                    site,
                },
            );
            taken.insert(id);
        }
        taken
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
        let t = crate::domain::time::Timestamp::EPOCH;
        let (a, b) = (DeliveryId::new(t), DeliveryId::new(t));
        let (webhook, site) = (WebhookId::new(t), SiteId::new(t));
        leases.take([(a, webhook, site)], Duration::ZERO);
        leases.take([(b, webhook, site)], Duration::from_secs(3600));
        assert!(
            leases
                .take([(b, webhook, site)], Duration::from_secs(3600))
                .is_empty(),
            "b is leased already"
        );
        assert_eq!(
            leases.take([(a, webhook, site)], Duration::ZERO),
            HashSet::from([a]),
            "a's lease had ended"
        );
        let live = leases.live(&[]);
        assert_eq!(live.ids, vec![b], "a expired at once");
        assert_eq!(live.webhooks, vec![(webhook, 1)]);
        assert_eq!(live.sites, vec![(site, 1)]);
        let settling = leases.live(&[b]);
        assert_eq!(
            settling.ids,
            vec![b],
            "a settling lease still holds its delivery"
        );
        assert!(settling.webhooks.is_empty() && settling.sites.is_empty());
        leases.release(&[b]);
        assert!(leases.live(&[]).ids.is_empty());
    }
}
