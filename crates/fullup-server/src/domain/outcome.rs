//! What an attempt's result means: for its delivery (done, retry when, or give up) and
//! for its webhook's health. A pure function of the result, the schedule and the time,
//! so the dispatcher only reports what happened and the stores only record the verdict.

use std::time::Duration;

use super::health::HealthEffect;
use super::retry::RetrySchedule;
use super::time::Timestamp;

/// What an attempt found, as far as the delivery rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver answered 410 Gone: it asks never to be called again.
    Gone,
    /// Anything else: an error status, a timeout, a refused or failed connection.
    Failed {
        /// The receiver's `Retry-After` (429 and 503 only).
        retry_after: Option<Duration>,
        /// It timed out or refused the connection: its receiver cannot take more now.
        unreachable: bool,
    },
}

/// What an attempt changes in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered.
    Succeeded,
    /// Try again at this time.
    RetryAt(Timestamp),
    /// Give up.
    Failed,
}

/// The consequences of attempt number `attempt` (1-based), judged at `now`: what
/// happens to the delivery and what it says about the webhook.
pub fn consequences(
    verdict: Verdict,
    attempt: u32,
    schedule: &RetrySchedule,
    now: Timestamp,
) -> (NextStep, HealthEffect) {
    match verdict {
        Verdict::Delivered => (NextStep::Succeeded, HealthEffect::Healthy),
        Verdict::Gone => (NextStep::Failed, HealthEffect::Gone),
        Verdict::Failed {
            retry_after,
            unreachable,
        } => {
            let next = schedule
                .next_delay(attempt, retry_after)
                .map_or(NextStep::Failed, |delay| NextStep::RetryAt(now + delay));
            let health = if unreachable {
                HealthEffect::Unreachable
            } else {
                HealthEffect::Failing
            };
            (next, health)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_follow_the_schedule_then_give_up() {
        let schedule = RetrySchedule::new(vec![Duration::from_secs(5)], 0.0);
        let now = Timestamp::from_unix_ms(1_000);
        let failed = Verdict::Failed {
            retry_after: None,
            unreachable: false,
        };
        assert_eq!(
            consequences(failed, 1, &schedule, now),
            (
                NextStep::RetryAt(Timestamp::from_unix_ms(6_000)),
                HealthEffect::Failing
            )
        );
        assert_eq!(
            consequences(failed, 2, &schedule, now),
            (NextStep::Failed, HealthEffect::Failing)
        );
        let timed_out = Verdict::Failed {
            retry_after: None,
            unreachable: true,
        };
        assert_eq!(
            consequences(timed_out, 2, &schedule, now),
            (NextStep::Failed, HealthEffect::Unreachable)
        );
        assert_eq!(
            consequences(Verdict::Gone, 1, &schedule, now),
            (NextStep::Failed, HealthEffect::Gone)
        );
        assert_eq!(
            consequences(Verdict::Delivered, 1, &schedule, now),
            (NextStep::Succeeded, HealthEffect::Healthy)
        );
    }
}
