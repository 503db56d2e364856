//! Remembering the `webhook-id`s of the tolerance window, so a copied delivery is
//! refused even while its timestamp is still fresh.
//!
//! A timestamped signature bounds a replay to the tolerance window (5 minutes either
//! way); within it, the only defence is to remember what was already received. A sender
//! signs `webhook-id` and `webhook-timestamp` together, so a byte-for-byte copy repeats
//! both, while the sender's own retry of the same message repeats the id with a new
//! timestamp. [`SeenIds`] tells the two apart, in bounded memory, with no clock of its
//! own (the caller passes `now`, as to [`StandardVerifier::verify_at`](crate::standard::StandardVerifier::verify_at)).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::standard::DEFAULT_TOLERANCE;

/// What [`SeenIds::check`] found about a verified delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Seen {
    /// The id was not seen within the window: a new message.
    First,
    /// The id was seen with another timestamp: the sender sent the message again (a
    /// retry); process it idempotently.
    Retry {
        /// The `webhook-timestamp` the id was last seen with, Unix seconds.
        previous_timestamp: i64,
    },
    /// The id was seen with this very timestamp: a copy of a delivery already received.
    /// Refuse it.
    Replay,
}

/// A bounded, in-memory set of the `webhook-id`s received within the tolerance window.
///
/// An entry expires when its timestamp leaves the window, i.e. once a replay of it would
/// be refused as stale anyway. When [`Self::capacity`] deliveries are remembered, the oldest
/// is forgotten first: size the capacity above the deliveries expected in 5 minutes. One
/// process only: receivers running several instances need a shared store instead.
///
/// ```
/// use fullup_signature::{Seen, SeenIds};
///
/// let seen = SeenIds::new(SeenIds::DEFAULT_CAPACITY);
/// assert_eq!(seen.check("msg_1", 1_700_000_000, 1_700_000_001), Seen::First);
/// assert_eq!(seen.check("msg_1", 1_700_000_000, 1_700_000_002), Seen::Replay);
/// ```
#[derive(Debug)]
pub struct SeenIds {
    capacity: usize,
    window_secs: i64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Each remembered id and the timestamps it came with (one per retry).
    timestamps: HashMap<String, Vec<i64>>,
    /// Every remembered (id, timestamp) in the order received: what expires (or is
    /// evicted) first is at the front.
    order: VecDeque<(String, i64)>,
}

impl SeenIds {
    /// 100 000 ids of ~30 bytes hold a few MiB and cover 300 deliveries a second over
    /// the 5-minute window.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// Remembers up to `capacity` deliveries (at least one) for [`DEFAULT_TOLERANCE`].
    pub fn new(capacity: usize) -> SeenIds {
        SeenIds {
            capacity: capacity.max(1),
            window_secs: i64::try_from(DEFAULT_TOLERANCE.as_secs()).unwrap_or(i64::MAX),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The most deliveries (id and timestamp pairs) remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Records a verified delivery's `webhook-id` and `webhook-timestamp` (Unix seconds)
    /// at `now_unix_secs`, and says whether it was already received.
    ///
    /// Call it only after the signature verified: ids of forged requests must not fill
    /// the set.
    pub fn check(&self, id: &str, timestamp: i64, now_unix_secs: i64) -> Seen {
        let mut inner = self.lock();
        inner.expire(now_unix_secs.saturating_sub(self.window_secs));
        let seen = match inner.timestamps.get(id) {
            Some(earlier) if earlier.contains(&timestamp) => return Seen::Replay,
            Some(earlier) => Seen::Retry {
                previous_timestamp: earlier.iter().copied().max().unwrap_or(timestamp),
            },
            None => Seen::First,
        };
        while inner.order.len() >= self.capacity {
            inner.evict_oldest();
        }
        inner
            .timestamps
            .entry(id.to_owned())
            .or_default()
            .push(timestamp);
        inner.order.push_back((id.to_owned(), timestamp));
        seen
    }

    /// How many deliveries (id and timestamp pairs) are remembered now.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Inner {
    /// Forgets, from the front, the deliveries timestamped before `oldest_fresh`.
    fn expire(&mut self, oldest_fresh: i64) {
        while self
            .order
            .front()
            .is_some_and(|(_, timestamp)| *timestamp < oldest_fresh)
        {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        let Some((id, timestamp)) = self.order.pop_front() else {
            return;
        };
        if let Some(earlier) = self.timestamps.get_mut(&id) {
            earlier.retain(|t| *t != timestamp);
            if earlier.is_empty() {
                self.timestamps.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000;

    #[test]
    fn a_copy_is_a_replay_and_a_new_timestamp_a_retry() {
        let seen = SeenIds::new(10);
        assert_eq!(seen.check("msg_1", T, T), Seen::First);
        assert_eq!(seen.check("msg_1", T, T + 10), Seen::Replay);
        assert_eq!(
            seen.check("msg_1", T + 5, T + 10),
            Seen::Retry {
                previous_timestamp: T
            }
        );
        assert_eq!(seen.check("msg_1", T + 5, T + 11), Seen::Replay);
        assert_eq!(
            seen.check("msg_1", T, T + 12),
            Seen::Replay,
            "a copy of the first attempt, after a retry"
        );
        assert_eq!(seen.check("msg_2", T, T + 11), Seen::First);
    }

    #[test]
    fn ids_expire_when_their_timestamp_leaves_the_window() {
        let seen = SeenIds::new(10);
        assert_eq!(seen.check("msg_1", T, T), Seen::First);
        assert_eq!(seen.check("msg_1", T, T + 300), Seen::Replay);
        assert_eq!(seen.check("msg_2", T + 301, T + 301), Seen::First);
        assert_eq!(seen.len(), 1, "msg_1 expired");
    }

    #[test]
    fn memory_is_bounded_by_the_capacity() {
        let seen = SeenIds::new(3);
        for n in 0..10 {
            assert_eq!(seen.check(&format!("msg_{n}"), T, T), Seen::First);
        }
        assert_eq!(seen.len(), 3);
        assert_eq!(seen.check("msg_9", T, T), Seen::Replay);
        assert_eq!(
            seen.check("msg_0", T, T),
            Seen::First,
            "the oldest went first"
        );
    }
}
