//! Ordered (FIFO) webhooks: a webhook may ask for its deliveries to leave in ingest
//! order, one at a time. These are the rules both stores apply; each store keeps only
//! the SQL of "the head" (the pending delivery with the lowest sequence number).
//!
//! What order means: each delivery to an ordered webhook gets the next number of that
//! webhook's sequence inside the ingest's own transaction, under the webhook row's lock
//! (PostgreSQL) or the single writer (SQLite), so sequence order is the order in which
//! the ingests committed, on any number of nodes. Only the head of an ordered webhook
//! is ever claimed, and only while none of its deliveries is leased: a head waiting for
//! its retry holds back that webhook alone, and once it succeeds or fails for good
//! (exhausted, shown as `failed`), the next number is the head. Deliveries made pending
//! again (a manual retry, a recovery) take their old place: lower numbers go first.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ids::WebhookId;

/// How a webhook's deliveries are ordered.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// No order: deliveries leave as they become due, several at once (up to the
    /// webhook's concurrency limit), a failing one never holding back the others.
    #[default]
    None,
    /// Ingest order, one request at a time: the next delivery leaves only once the one
    /// before it succeeded or was given up.
    Fifo,
}

/// A stored or requested ordering that is neither `none` nor `fifo`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ordering must be \"none\" or \"fifo\", not {0:?}")]
pub struct UnknownOrdering(pub String);

impl Ordering {
    /// `none` or `fifo`.
    pub fn parse(s: &str) -> Result<Self, UnknownOrdering> {
        match s {
            "none" => Ok(Self::None),
            "fifo" => Ok(Self::Fifo),
            other => Err(UnknownOrdering(other.to_owned())),
        }
    }

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Fifo => "fifo",
        }
    }

    /// Whether deliveries are numbered and leave in that order.
    pub fn is_fifo(self) -> bool {
        self == Self::Fifo
    }

    /// Whether an ingest may hand a fresh delivery straight to its node's dispatcher
    /// (see `crate::store::HandOff`): not for an ordered webhook, whose next delivery
    /// is only ever the head a claim finds.
    pub fn hands_off(self) -> bool {
        !self.is_fifo()
    }

    /// The most attempts the webhook may have in flight, given its own `limit`: one
    /// when ordered, whatever the limit.
    pub fn concurrency(self, limit: u32) -> u32 {
        match self {
            Self::None => limit,
            Self::Fifo => limit.min(1),
        }
    }
}

/// Numbers the deliveries one ingest transaction creates for ordered webhooks, in the
/// order they are created, each webhook's numbers continuing from the last one its row
/// held when it was read under lock. Deliveries to other webhooks get 0 (they have no
/// place in an order, and a webhook switched to `fifo` sends its unnumbered pending
/// deliveries first, oldest first).
#[derive(Debug, Default)]
pub struct Sequence {
    last: HashMap<WebhookId, i64>,
}

impl Sequence {
    /// Numbers continuing after `last` (each ordered webhook's stored last number).
    pub fn after(last: impl IntoIterator<Item = (WebhookId, i64)>) -> Self {
        Self {
            last: last.into_iter().collect(),
        }
    }

    /// The number of the next delivery to `webhook`: the next of its sequence when it
    /// is ordered (and was read), else 0.
    pub fn next(&mut self, webhook: WebhookId, ordering: Ordering) -> i64 {
        match (ordering, self.last.get_mut(&webhook)) {
            (Ordering::Fifo, Some(last)) => {
                *last += 1;
                *last
            }
            _ => 0,
        }
    }

    /// Each webhook's last number now, to store back in the same transaction.
    pub fn last(&self) -> impl Iterator<Item = (WebhookId, i64)> + '_ {
        self.last.iter().map(|(w, n)| (*w, *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;

    #[test]
    fn ordering_parses_its_two_names_only() {
        assert_eq!(Ordering::parse("fifo"), Ok(Ordering::Fifo));
        assert_eq!(Ordering::parse("none"), Ok(Ordering::None));
        assert!(Ordering::parse("FIFO").is_err());
        assert_eq!(Ordering::default().as_str(), "none");
    }

    #[test]
    fn an_ordered_webhook_has_one_attempt_at_a_time_and_no_hand_off() {
        assert_eq!(Ordering::Fifo.concurrency(32), 1);
        assert_eq!(Ordering::None.concurrency(32), 32);
        assert!(!Ordering::Fifo.hands_off());
        assert!(Ordering::None.hands_off());
    }

    #[test]
    fn numbers_continue_per_webhook_in_creation_order() {
        let t = Timestamp::EPOCH;
        let (a, b, c) = (WebhookId::new(t), WebhookId::new(t), WebhookId::new(t));
        let mut seq = Sequence::after([(a, 7), (b, 0)]);
        assert_eq!(seq.next(a, Ordering::Fifo), 8);
        assert_eq!(seq.next(b, Ordering::Fifo), 1);
        assert_eq!(seq.next(a, Ordering::Fifo), 9);
        assert_eq!(seq.next(c, Ordering::None), 0, "not ordered");
        assert_eq!(seq.next(c, Ordering::Fifo), 0, "not read under lock");
        let mut last: Vec<_> = seq.last().collect();
        last.sort();
        let mut want = vec![(a, 9), (b, 1)];
        want.sort();
        assert_eq!(last, want);
    }
}
