//! Which due deliveries a claim takes, fairly: within each webhook's room (its limit
//! less its attempts in flight) and each site's room, round-robin across sites (every
//! site's first delivery, then every site's second, …) and, within a site, across its
//! webhooks, oldest due first at each step. So one site's backlog, however old and
//! large, never stands in front of another site's due deliveries.
//!
//! The SQLite store applies this to the candidates it reads; the PostgreSQL store ranks
//! the same way in its claim statement (one statement, so that it leases only what it
//! takes), and the store conformance tests hold both to the same results.

use std::collections::HashMap;

use super::ids::{DeliveryId, SiteId, WebhookId};
use super::time::Timestamp;

/// A due delivery a claim may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The delivery.
    pub delivery: DeliveryId,
    /// Its webhook.
    pub webhook: WebhookId,
    /// Its webhook's site.
    pub site: SiteId,
    /// When it became due.
    pub due_at: Timestamp,
}

/// Takes at most `limit` of `candidates`, at most `webhook_room(w)` of webhook `w` and
/// `site_room(s)` of site `s`, in the fair order of the module doc; returns them in that
/// order.
pub fn pick(
    mut candidates: Vec<Candidate>,
    limit: usize,
    webhook_room: impl Fn(WebhookId) -> usize,
    site_room: impl Fn(SiteId) -> usize,
) -> Vec<Candidate> {
    candidates.sort_by_key(|c| (c.webhook, c.due_at, c.delivery));
    let mut webhook_rank: HashMap<WebhookId, usize> = HashMap::new();
    let mut ranked: Vec<(usize, Candidate)> = candidates
        .into_iter()
        .filter_map(|c| {
            let rank = webhook_rank.entry(c.webhook).or_default();
            *rank += 1;
            (*rank <= webhook_room(c.webhook)).then_some((*rank, c))
        })
        .collect();
    ranked.sort_by_key(|(rank, c)| (c.site, *rank, c.due_at, c.delivery));
    let mut site_rank: HashMap<SiteId, usize> = HashMap::new();
    let mut fair: Vec<(usize, Candidate)> = ranked
        .into_iter()
        .filter_map(|(_, c)| {
            let rank = site_rank.entry(c.site).or_default();
            *rank += 1;
            (*rank <= site_room(c.site)).then_some((*rank, c))
        })
        .collect();
    fair.sort_by_key(|(rank, c)| (*rank, c.due_at, c.delivery));
    fair.into_iter().take(limit).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_unix_ms(ms)
    }

    fn candidate(webhook: WebhookId, site: SiteId, due: i64) -> Candidate {
        Candidate {
            delivery: DeliveryId::new(t(due)),
            webhook,
            site,
            due_at: t(due),
        }
    }

    #[test]
    fn sites_take_turns_and_so_do_a_sites_webhooks() {
        let (a, b) = (SiteId::new(t(1)), SiteId::new(t(2)));
        let (a1, a2, b1) = (
            WebhookId::new(t(1)),
            WebhookId::new(t(2)),
            WebhookId::new(t(3)),
        );
        let mut all = Vec::new();
        for due in 0..10 {
            all.push(candidate(a1, a, due));
            all.push(candidate(a2, a, due));
        }
        all.push(candidate(b1, b, 1_000));
        let picked = pick(all, 3, |_| 16, |_| 16);
        let order: Vec<(SiteId, WebhookId)> = picked.iter().map(|c| (c.site, c.webhook)).collect();
        assert_eq!(
            order,
            [(a, a1), (b, b1), (a, a2)],
            "B's newer delivery comes second"
        );
    }

    #[test]
    fn rooms_bound_each_webhook_and_site() {
        let site = SiteId::new(t(1));
        let (w1, w2) = (WebhookId::new(t(1)), WebhookId::new(t(2)));
        let all: Vec<Candidate> = (0..10)
            .flat_map(|due| [candidate(w1, site, due), candidate(w2, site, due)])
            .collect();
        let picked = pick(all.clone(), 100, |w| if w == w1 { 1 } else { 16 }, |_| 16);
        assert_eq!(picked.iter().filter(|c| c.webhook == w1).count(), 1);
        assert_eq!(picked.len(), 11);
        assert_eq!(pick(all, 100, |_| 16, |_| 4).len(), 4, "the site's room");
    }
}
