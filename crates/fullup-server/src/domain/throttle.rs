//! A webhook's throttle: at most N requests per second to its receiver, on any number
//! of nodes, by GCRA (the generic cell rate algorithm, a leaky bucket kept as one
//! number per webhook).
//!
//! The number is the webhook's *theoretical arrival time* (`tat`): the earliest time
//! its next request may leave. A request asks for a slot just before it is sent
//! ([`grant`]): it gets `max(tat, now)` and moves `tat` one [`RateLimit::spacing`]
//! past that, so slots never come closer than a spacing, whoever asks (burst 1: an
//! idle webhook gets one request at once, then one per spacing). The sender waits for
//! its slot, then sends. Each store keeps `tat` where its nodes share it (PostgreSQL: a
//! row of `throttles`, moved by one atomic statement on the database's clock; SQLite,
//! one process: in memory, on the monotonic clock) and applies this rule there.
//!
//! The bound at the receiver: slots are spaced `S = 1.02 / N` s, so a 1-second window
//! holds at most `floor(N / 1.02) + 1 <= N` slots. A request arrives at its slot plus a
//! delay (waking up, connecting, the network); if those delays differ by less than
//! `(N + 1) · S − 1 s` (40 ms at 50/s: [`RateLimit::jitter_budget`]), any 1-second
//! window at the receiver holds at most N + 1 requests. A sender woken later than a
//! quarter of that budget after its slot asks for a fresh slot instead of sending late
//! ([`RateLimit::lateness_allowed`]): a late request would bunch with the next one.
//!
//! Waiting deliveries are neither failed nor counted: a delivery's attempt starts (and
//! is counted) once its slot has come, and the claims keep at most a second's worth of
//! a throttled webhook's deliveries in flight ([`RateLimit::in_flight`]), so the wait
//! for a slot stays about a second and the rest stay queued, unclaimed.

use std::num::NonZeroU32;
use std::time::Duration;

/// The highest rate a webhook may be limited to, per second: a slot every 102 µs. A
/// receiver that takes more needs no throttle.
pub const MAX_PER_SECOND: u32 = 10_000;

/// Slots are spaced this many per mille of `1 / N` apart: 2 % wider than the rate, a
/// margin for the jitter between a slot and its request's arrival (see the module doc).
const SPACING_PER_MILLE: i64 = 1_020;

/// Microseconds in a second.
const SECOND_US: i64 = 1_000_000;

/// Why a rate limit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// Not between 1 and [`MAX_PER_SECOND`].
    #[error(
        "rate_limit_per_second must be between 1 and {MAX_PER_SECOND} requests per second, or null for no limit; got {0}"
    )]
    OutOfRange(i64),
}

/// At most this many requests per second to one webhook's receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit(NonZeroU32);

impl RateLimit {
    /// The limit of `per_second` requests a second, 1 to [`MAX_PER_SECOND`].
    pub fn new(per_second: i64) -> Result<Self, RateLimitError> {
        u32::try_from(per_second)
            .ok()
            .filter(|&n| n <= MAX_PER_SECOND)
            .and_then(NonZeroU32::new)
            .map(Self)
            .ok_or(RateLimitError::OutOfRange(per_second))
    }

    /// Requests per second.
    pub fn per_second(self) -> u32 {
        self.0.get()
    }

    /// The time between two slots: `1.02 / N` s, rounded up to the microsecond.
    pub fn spacing(self) -> Micros {
        let n = i64::from(self.per_second());
        Micros((SECOND_US * SPACING_PER_MILLE / 1_000 + n - 1) / n)
    }

    /// Attempts a throttled webhook may have in flight (waiting for their slots
    /// included), besides its concurrency limit: a second's worth, N. So a claimed
    /// delivery waits about a second for its slot at most, far within its lease, and
    /// the rest of the backlog stays queued, unclaimed and uncounted.
    pub fn in_flight(self) -> u32 {
        self.per_second()
    }

    /// How much the delays between slots and arrivals may differ while any 1-second
    /// window at the receiver still holds at most N + 1 requests: `(N + 1) · S − 1 s`.
    pub fn jitter_budget(self) -> Duration {
        let span = self.spacing().0 * (i64::from(self.per_second()) + 1) - SECOND_US;
        Duration::from_micros(u64::try_from(span).unwrap_or(0))
    }

    /// How late after its slot a sender may still send: a quarter of the jitter budget;
    /// a sender woken later asks for a fresh slot.
    pub fn lateness_allowed(self) -> Duration {
        self.jitter_budget() / 4
    }
}

/// A point on a store's throttle clock, in microseconds (PostgreSQL: since the Unix
/// epoch on the database server's clock; SQLite: since the store opened, on the
/// monotonic clock). Only differences of two of one store mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Micros(pub i64);

impl Micros {
    /// `d` as a count of microseconds, saturating.
    pub fn of(d: Duration) -> Self {
        Self(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    /// How long from `earlier` to this; zero when it is not after it.
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_micros(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

/// A slot granted by [`grant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// When the request may leave: now, or later.
    pub slot: Micros,
    /// The webhook's theoretical arrival time after this grant.
    pub tat: Micros,
}

/// The slot of a request asking at `now`, given the webhook's theoretical arrival time
/// (None when it has none yet): `max(tat, now)`, and `tat` moves one spacing past it.
/// PostgreSQL's throttle statement (`store/postgres/writes.rs`) applies exactly this.
pub fn grant(tat: Option<Micros>, now: Micros, limit: RateLimit) -> Grant {
    let slot = tat.map_or(now, |tat| tat.max(now));
    Grant {
        slot,
        tat: Micros(slot.0.saturating_add(limit.spacing().0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(n: i64) -> RateLimit {
        RateLimit::new(n).expect("limit")
    }

    #[test]
    fn a_limit_is_between_one_and_the_maximum() {
        assert!(RateLimit::new(0).is_err());
        assert!(RateLimit::new(-1).is_err());
        assert!(RateLimit::new(i64::from(MAX_PER_SECOND) + 1).is_err());
        assert_eq!(limit(1).per_second(), 1);
        assert_eq!(limit(10_000).per_second(), 10_000);
    }

    #[test]
    fn slots_are_spaced_two_percent_wider_than_the_rate_in_whole_microseconds() {
        assert_eq!(limit(50).spacing(), Micros(20_400));
        assert_eq!(limit(1).spacing(), Micros(1_020_000));
        assert_eq!(limit(3).spacing(), Micros(340_000));
        assert_eq!(limit(7).spacing(), Micros(145_715), "rounded up");
        assert_eq!(limit(10_000).spacing(), Micros(102));
        assert_eq!(limit(50).jitter_budget(), Duration::from_micros(40_400));
        assert_eq!(limit(50).lateness_allowed(), Duration::from_micros(10_100));
    }

    #[test]
    fn an_idle_webhook_sends_at_once_then_one_per_spacing() {
        let l = limit(50);
        let first = grant(None, Micros(1_000), l);
        assert_eq!(first.slot, Micros(1_000));
        let second = grant(Some(first.tat), Micros(1_000), l);
        assert_eq!(second.slot, Micros(21_400));
        let later = grant(Some(second.tat), Micros(900_000), l);
        assert_eq!(later.slot, Micros(900_000), "an idle gap is not saved up");
    }

    /// Every 1-second window (closed at both ends) over the slots of requests asking at
    /// any times holds at most N slots, and N + 1 arrivals when each arrives within the
    /// jitter budget after its slot.
    #[test]
    fn any_one_second_window_holds_at_most_n_slots_and_n_plus_one_arrivals() {
        for n in [1, 2, 7, 50, 333, 10_000] {
            let l = limit(n);
            let mut tat = None;
            let mut slots = Vec::new();
            // Asks in bursts and lulls: 3 per millisecond, pausing every 200.
            let mut now = 0;
            for i in 0..(3 * n + 20) {
                now += if i % 200 == 199 { 700_000 } else { 333 };
                let g = grant(tat, Micros(now), l);
                tat = Some(g.tat);
                slots.push(g.slot.0);
            }
            let budget = i64::try_from(l.jitter_budget().as_micros()).expect("small");
            // The worst arrivals: alternately on time and as late as allowed.
            let late = |i: usize, s: i64| {
                if i.is_multiple_of(2) {
                    s + budget - 1
                } else {
                    s
                }
            };
            let mut arrivals: Vec<i64> =
                slots.iter().enumerate().map(|(i, &s)| late(i, s)).collect();
            arrivals.sort_unstable();
            let n = usize::try_from(n).expect("small");
            assert!(max_in_window(&slots) <= n, "slots at {n}/s");
            assert!(max_in_window(&arrivals) <= n + 1, "arrivals at {n}/s");
        }
    }

    /// The most of `times` (sorted, µs) in any closed window of one second.
    fn max_in_window(times: &[i64]) -> usize {
        let mut max = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] > SECOND_US {
                start += 1;
            }
            max = max.max(end - start + 1);
        }
        max
    }
}
