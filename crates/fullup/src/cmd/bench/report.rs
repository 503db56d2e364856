//! The pieces every scenario's report is made of: delivery counts that decide the exit
//! code, latency percentiles, and the table printed at the end.

use serde::Serialize;

use super::receiver::Counts;

/// What arrived against what should have: the exit code is 0 only when every tally of
/// the run is [`exact`](Tally::exact).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tally {
    /// Deliveries that should arrive verified.
    pub deliveries_expected: usize,
    /// Requests whose signature verified, duplicates included.
    pub deliveries_verified: usize,
    /// Distinct expected deliveries among them.
    pub deliveries_distinct: usize,
    /// Verified deliveries the run did not expect (unknown event, wrong webhook).
    pub deliveries_unexpected: usize,
    /// Requests whose signature did not verify.
    pub signature_failures: usize,
}

impl Tally {
    /// The receiver's counts against `expected`.
    pub fn new(expected: usize, counts: Counts) -> Self {
        Self {
            deliveries_expected: expected,
            deliveries_verified: counts.verified,
            deliveries_distinct: counts.distinct,
            deliveries_unexpected: counts.unexpected,
            signature_failures: counts.failures,
        }
    }

    /// Every expected delivery arrived verified, and nothing else did.
    pub fn exact(&self) -> bool {
        self.deliveries_distinct == self.deliveries_expected
            && self.deliveries_unexpected == 0
            && self.signature_failures == 0
    }

    /// One line for the table.
    pub fn describe(&self) -> String {
        format!(
            "{} of {} ({} duplicates), {} signature failures, {} unexpected",
            self.deliveries_distinct,
            self.deliveries_expected,
            self.deliveries_verified
                .saturating_sub(self.deliveries_distinct + self.deliveries_unexpected),
            self.signature_failures,
            self.deliveries_unexpected
        )
    }
}

/// Latency percentiles, in milliseconds, from every sample (nearest rank, no histogram
/// buckets: a run holds at most a few hundred thousand samples).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Samples the figures come from.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of `nanos`.
    pub fn of(mut nanos: Vec<u64>) -> Self {
        nanos.sort_unstable();
        let at = |p: f64| {
            if nanos.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * nanos.len() as f64).ceil() as usize;
            nanos[rank.clamp(1, nanos.len()) - 1] as f64 / 1e6
        };
        Self {
            samples: nanos.len(),
            p50_ms: at(50.0),
            p95_ms: at(95.0),
            p99_ms: at(99.0),
            max_ms: at(100.0),
        }
    }

    /// `p50 / p95 / p99 / max ms`.
    pub fn describe(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2} ms",
            self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        )
    }
}

/// When each event of a run was sent and each of its deliveries verified: the
/// ingest-to-receipt latency of every delivery that arrived.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Per event, when it was sent, in ns since the receiver's epoch (0: never).
    pub sent_at: Vec<u64>,
    /// Per slot, when its first copy was verified, likewise; slot `i` is event
    /// `i / per_event`.
    pub receipts: Vec<u64>,
    /// Slots per event.
    pub per_event: usize,
}

impl Timings {
    /// The latency of every delivery that arrived.
    pub fn latency(&self) -> Latency {
        Latency::of(self.samples().map(|(_, nanos)| nanos).collect())
    }

    /// The latency of the deliveries of each `events` consecutive events (the last
    /// group may hold fewer): at a fixed rate, one window of send time each.
    pub fn by_window(&self, events: usize) -> Vec<Latency> {
        let events = events.max(1);
        let mut windows = vec![Vec::new(); self.sent_at.len().div_ceil(events)];
        for (event, nanos) in self.samples() {
            windows[event / events].push(nanos);
        }
        windows.into_iter().map(Latency::of).collect()
    }

    /// For each slot that arrived: its event, and its receipt time minus the event's
    /// send time.
    fn samples(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let per_event = self.per_event.max(1);
        self.receipts
            .iter()
            .enumerate()
            .filter(|&(_, &at)| at != 0)
            .filter_map(move |(slot, &at)| {
                let event = slot / per_event;
                let sent = *self.sent_at.get(event)?;
                (sent != 0).then(|| (event, at.saturating_sub(sent)))
            })
    }
}

/// A row of the table: label, value.
pub type Row = (&'static str, String);

/// Prints rows as two aligned columns.
pub fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    for (label, value) in rows {
        println!("{label:<width$}  {value}");
    }
}

/// A share as a percentage.
pub fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

/// `a / b`, 0 when `b` is 0 (JSON has no infinity).
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Bytes as MiB, or "n/a".
pub fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "n/a (service not started by the bench)".to_owned(),
        |b| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let latency = Latency::of((1..=100).rev().map(|ms| ms * 1_000_000).collect());
        assert_eq!(latency.samples, 100);
        assert_eq!(latency.p50_ms, 50.0);
        assert_eq!(latency.p99_ms, 99.0);
        assert_eq!(latency.max_ms, 100.0);
        assert_eq!(Latency::of(Vec::new()).p99_ms, 0.0);
    }

    #[test]
    fn latency_pairs_each_slot_with_its_events_send_time() {
        // Two events fanned out to two webhooks; slot 3 never arrived.
        let timings = Timings {
            sent_at: vec![1_000_000, 2_000_000],
            receipts: vec![3_000_000, 4_000_000, 5_000_000, 0],
            per_event: 2,
        };
        let latency = timings.latency();
        assert_eq!(latency.samples, 3);
        assert_eq!(latency.max_ms, 3.0);
    }

    #[test]
    fn windows_group_deliveries_by_their_events_position() {
        // Five events, one webhook, two events per window: windows {0,1}, {2,3}, {4};
        // event 3's delivery never arrived.
        let ms = |v: [u64; 5]| v.into_iter().map(|ms| ms * 1_000_000).collect();
        let timings = Timings {
            sent_at: ms([1, 2, 3, 4, 5]),
            receipts: ms([2, 3, 13, 0, 25]),
            per_event: 1,
        };
        let windows = timings.by_window(2);
        let samples: Vec<usize> = windows.iter().map(|w| w.samples).collect();
        assert_eq!(samples, [2, 1, 1]);
        assert_eq!(windows[0].max_ms, 1.0);
        assert_eq!(windows[1].p99_ms, 10.0);
        assert_eq!(windows[2].p50_ms, 20.0);
    }
}
