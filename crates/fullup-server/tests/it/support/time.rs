//! Time in the tests' own terms: tests compute expected times as Unix milliseconds
//! (`t0 + 5_000`), so these adapters read and move the service's clocks in them.

use fullup_server::domain::clock::{Clock, ManualClock};
use fullup_server::domain::time::Timestamp;

/// Unix milliseconds as the API shows times (RFC 3339 with milliseconds).
pub fn format_rfc3339(unix_ms: i64) -> String {
    Timestamp::from_unix_ms(unix_ms).to_rfc3339()
}

/// Reads any clock in Unix milliseconds.
pub trait NowMs {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> i64;
}

impl<C: Clock + ?Sized> NowMs for C {
    fn now_ms(&self) -> i64 {
        self.now().unix_ms()
    }
}

/// Moves a manual clock by milliseconds.
pub trait AdvanceMs {
    /// Moves the clock forward by `ms` milliseconds (at least 0).
    fn advance_ms(&self, ms: i64);
}

impl AdvanceMs for ManualClock {
    fn advance_ms(&self, ms: i64) {
        let ms = u64::try_from(ms).expect("clocks only move forward");
        self.advance(std::time::Duration::from_millis(ms));
    }
}
