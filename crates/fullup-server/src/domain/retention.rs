//! Retention: how long a site's events, with their deliveries and attempts, are kept.
//!
//! The server has a default (`--retention`, off unless set: kept forever) and each site
//! may override it with a number of days of its own. What is older is pruned, an event
//! with its deliveries and their attempts at once, but never an event one of whose
//! deliveries has not finished (pending, or with an attempt in flight): retention never
//! takes work the dispatcher still has to do.

use std::time::Duration;

use super::ids::EventId;
use super::time::Timestamp;

/// One day, the unit of a site's retention.
pub const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest retention a site may set: ten years, far past any dispute window, short
/// enough that the cutoff stays a meaningful time.
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// Why a site's retention was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("retention_days must be 1 to {MAX_RETENTION_DAYS}, or null for the server's default")]
pub struct InvalidRetention;

/// A site's retention in days, checked: 1 to [`MAX_RETENTION_DAYS`].
pub fn parse_days(days: i64) -> Result<u32, InvalidRetention> {
    u32::try_from(days)
        .ok()
        .filter(|d| (1..=MAX_RETENTION_DAYS).contains(d))
        .ok_or(InvalidRetention)
}

/// How long a site's events are kept: its own days when it has some, otherwise the
/// server's `default`; None: forever.
pub fn period(site_days: Option<u32>, default: Option<Duration>) -> Option<Duration> {
    site_days
        .map(|days| DAY * days)
        .or(default)
        .filter(|d| !d.is_zero())
}

/// The events of a site that retention may prune at `now`: those whose id sorts below
/// this one (created before `now - period`; see [`EventId::floor`]). None: keep all.
pub fn prune_below(
    now: Timestamp,
    site_days: Option<u32>,
    default: Option<Duration>,
) -> Option<EventId> {
    period(site_days, default).map(|keep| EventId::floor(now - keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_unix_ms(1_800_000_000_000);

    #[test]
    fn a_site_override_wins_over_the_default_and_none_keeps_everything() {
        let month = Some(DAY * 30);
        assert_eq!(period(Some(7), month), Some(DAY * 7));
        assert_eq!(period(None, month), month);
        assert_eq!(period(None, None), None);
        assert_eq!(period(Some(2), None), Some(DAY * 2));
        assert_eq!(period(None, Some(Duration::ZERO)), None);
    }

    #[test]
    fn the_bound_is_the_lowest_id_of_the_cutoff_millisecond() {
        let below = prune_below(NOW, Some(1), None).expect("a bound");
        let before = EventId::from_parts(NOW - DAY - Duration::from_millis(1), u128::MAX >> 48);
        let at = EventId::from_parts(NOW - DAY, 0);
        assert!(before < below);
        assert_eq!(at, below, "an event of the cutoff millisecond is kept");
        assert!(EventId::new(NOW - DAY) >= below);
    }

    #[test]
    fn days_out_of_range_are_refused() {
        assert_eq!(parse_days(30), Ok(30));
        assert_eq!(parse_days(0), Err(InvalidRetention));
        assert_eq!(parse_days(-1), Err(InvalidRetention));
        assert_eq!(
            parse_days(i64::from(MAX_RETENTION_DAYS) + 1),
            Err(InvalidRetention)
        );
    }
}
