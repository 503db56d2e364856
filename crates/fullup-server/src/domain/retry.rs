//! When a failed delivery is tried again.
//!
//! The default schedule spreads eight attempts over about 28 hours, as Svix does, so a
//! receiver that is down for a deploy or a day still gets every event; jitter keeps
//! retries of one outage from arriving as one burst.

use std::time::Duration;

use rand::Rng;

/// Delays after the first failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_DELAYS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// Each delay moves by up to this fraction either way.
pub const DEFAULT_JITTER: f64 = 0.2;

/// The delays between attempts and their jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            delays: DEFAULT_DELAYS.to_vec(),
            jitter: DEFAULT_JITTER,
        }
    }
}

impl RetrySchedule {
    /// A schedule with these delays (after attempt 1, 2, …) and jitter fraction in `[0, 1)`.
    pub fn new(delays: Vec<Duration>, jitter: f64) -> Self {
        Self {
            delays,
            jitter: jitter.clamp(0.0, 0.99),
        }
    }

    /// How many attempts a delivery gets in all.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// The delay before the next attempt after `attempts_made` attempts failed, or
    /// `None` when the delivery has used them all.
    ///
    /// `retry_after` is the receiver's `Retry-After` (429 and 503 only): it is honoured
    /// but clamped to `[scheduled, 2 × scheduled]`, so a receiver can slow us down but
    /// cannot park a delivery for a year or make us hammer it.
    pub fn next_delay(
        &self,
        attempts_made: u32,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let index = usize::try_from(attempts_made).ok()?.checked_sub(1)?;
        let base = *self.delays.get(index)?;
        let jittered = if self.jitter > 0.0 {
            let factor = rand::thread_rng().gen_range(1.0 - self.jitter..=1.0 + self.jitter);
            base.mul_f64(factor)
        } else {
            base
        };
        Some(match retry_after {
            Some(asked) => asked.clamp(jittered, jittered.saturating_mul(2)),
            None => jittered,
        })
    }
}

/// Parses a `Retry-After` value given in seconds (the HTTP-date form is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_has_eight_attempts_and_stays_within_jitter() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 8);
        for (i, base) in DEFAULT_DELAYS.iter().enumerate() {
            let attempts = u32::try_from(i + 1).expect("small");
            let d = s.next_delay(attempts, None).expect("within schedule");
            assert!(
                d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2),
                "{d:?} vs {base:?}"
            );
        }
        assert_eq!(s.next_delay(8, None), None);
        assert_eq!(s.next_delay(0, None), None);
    }

    /// The documented schedule (module doc, docs/design.md), written out by hand so a
    /// change to `DEFAULT_DELAYS` is a change to this list too.
    #[test]
    fn default_schedule_is_the_documented_list() {
        let secs = |s| Duration::from_secs(s);
        assert_eq!(
            DEFAULT_DELAYS,
            [
                secs(5),
                secs(300),
                secs(1800),
                secs(7200),
                secs(18_000),
                secs(36_000),
                secs(36_000)
            ]
        );
        assert!((DEFAULT_JITTER - 0.2).abs() < f64::EPSILON);
        assert_eq!(
            RetrySchedule::default(),
            RetrySchedule::new(DEFAULT_DELAYS.to_vec(), 0.2)
        );
    }

    /// Over many draws, every delay stays within ±20 % and the draws spread over that
    /// range: both fifths at the edges are reached, and no single value repeats much (a
    /// jitter stuck at 0, or drawn once, would fail).
    #[test]
    fn jitter_stays_in_bounds_and_spreads_over_them() {
        const DRAWS: usize = 2000;
        let s = RetrySchedule::default();
        let base = DEFAULT_DELAYS[1]; // 5 minutes
        let factors: Vec<f64> = (0..DRAWS)
            .map(|_| {
                let d = s.next_delay(2, None).expect("within schedule");
                d.as_secs_f64() / base.as_secs_f64()
            })
            .collect();
        for f in &factors {
            assert!((0.8..=1.2).contains(f), "factor {f} outside ±20 %");
        }
        // With uniform draws, each of 5 equal bands holds ~400 of 2000; the chance of one
        // holding under 200 is negligible (more than 10 standard deviations).
        let mut bands = [0usize; 5];
        for f in &factors {
            let band = ((f - 0.8) / 0.4 * 5.0).floor() as usize;
            bands[band.min(4)] += 1;
        }
        assert!(
            bands.iter().all(|&n| n >= 200),
            "draws do not spread over ±20 %: {bands:?}"
        );
        let mut distinct = factors.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        assert!(
            distinct.len() > DRAWS / 2,
            "only {} distinct delays",
            distinct.len()
        );
    }

    #[test]
    fn no_jitter_gives_the_delay_exactly() {
        let s = RetrySchedule::new(DEFAULT_DELAYS.to_vec(), 0.0);
        for (i, base) in DEFAULT_DELAYS.iter().enumerate() {
            let attempts = u32::try_from(i + 1).expect("small");
            assert_eq!(s.next_delay(attempts, None), Some(*base));
        }
    }

    #[test]
    fn retry_after_is_clamped_to_between_one_and_two_schedules() {
        let s = RetrySchedule::new(vec![Duration::from_secs(10)], 0.0);
        let asked = |secs| s.next_delay(1, Some(Duration::from_secs(secs)));
        assert_eq!(asked(1), Some(Duration::from_secs(10)));
        assert_eq!(asked(15), Some(Duration::from_secs(15)));
        assert_eq!(asked(3600), Some(Duration::from_secs(20)));
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
