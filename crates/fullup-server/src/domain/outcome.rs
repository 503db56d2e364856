//! What an attempt's result means: for its delivery (done, retry when, or give up) and
//! for its webhook's health. A pure function of the result, the schedule and the time,
//! so the dispatcher only reports what happened and the stores only record the verdict.

use std::time::Duration;

use super::health::HealthEffect;
use super::models::ErrorKind;
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

/// What became of a delivery after one attempt, as the metrics count it
/// (`fullup_deliveries_total{outcome}`): each attempt counts once, under exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// The receiver took it (2xx): the delivery is done.
    Succeeded,
    /// It failed and will be tried again on the schedule.
    FailedRetryable,
    /// It failed and the schedule is used up: the delivery is failed for good.
    Exhausted,
    /// The receiver answered 410 Gone: the delivery failed and its webhook is disabled.
    Gone,
    /// The SSRF guard refused the destination before connecting (whatever the schedule
    /// does next): a webhook whose address moved to a denied range.
    Refused,
}

impl DeliveryOutcome {
    /// Every outcome, so each series exists (at 0) before it first happens.
    pub const ALL: [Self; 5] = [
        Self::Succeeded,
        Self::FailedRetryable,
        Self::Exhausted,
        Self::Gone,
        Self::Refused,
    ];

    /// The outcome of an attempt judged `verdict`, whose delivery goes on to `next`;
    /// `refused` when the guard refused the destination.
    pub fn of(verdict: Verdict, next: NextStep, refused: bool) -> Self {
        match (verdict, next) {
            (Verdict::Delivered, _) | (_, NextStep::Succeeded) => Self::Succeeded,
            _ if refused => Self::Refused,
            (Verdict::Gone, _) => Self::Gone,
            (_, NextStep::RetryAt(_)) => Self::FailedRetryable,
            (_, NextStep::Failed) => Self::Exhausted,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::FailedRetryable => "failed_retryable",
            Self::Exhausted => "exhausted",
            Self::Gone => "gone",
            Self::Refused => "refused",
        }
    }
}

/// What an attempt got back, in the few classes an operator watches
/// (`fullup_attempts_total{status_class}`): the receiver's status class when it
/// answered, else how the attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptClass {
    /// 2xx.
    Success,
    /// 3xx (redirects are not followed).
    Redirect,
    /// 4xx.
    ClientError,
    /// 5xx.
    ServerError,
    /// No complete answer within the request timeout.
    Timeout,
    /// The connection could not be made.
    ConnectError,
    /// The host name did not resolve.
    DnsError,
    /// The TLS handshake failed.
    TlsError,
    /// The SSRF guard refused the destination.
    Refused,
    /// The webhook's sealed secrets did not open on this node (nothing was sent).
    SecretUnreadable,
    /// Anything else (an informational status, an unexpected client error).
    Other,
}

impl AttemptClass {
    /// Every class, so each series exists (at 0) before it first happens.
    pub const ALL: [Self; 11] = [
        Self::Success,
        Self::Redirect,
        Self::ClientError,
        Self::ServerError,
        Self::Timeout,
        Self::ConnectError,
        Self::DnsError,
        Self::TlsError,
        Self::Refused,
        Self::SecretUnreadable,
        Self::Other,
    ];

    /// The class of an attempt that got `status` (when the receiver answered) or
    /// failed with `error`.
    pub fn of(status: Option<u16>, error: Option<ErrorKind>) -> Self {
        match (status, error) {
            (Some(200..=299), _) => Self::Success,
            (Some(300..=399), _) => Self::Redirect,
            (Some(400..=499), _) => Self::ClientError,
            (Some(500..=599), _) => Self::ServerError,
            (Some(_), _) => Self::Other,
            (None, Some(ErrorKind::Timeout)) => Self::Timeout,
            (None, Some(ErrorKind::Connect)) => Self::ConnectError,
            (None, Some(ErrorKind::Dns)) => Self::DnsError,
            (None, Some(ErrorKind::Tls)) => Self::TlsError,
            (None, Some(ErrorKind::Blocked)) => Self::Refused,
            (None, Some(ErrorKind::SecretUnreadable)) => Self::SecretUnreadable,
            (None, _) => Self::Other,
        }
    }

    /// The label value (and the log field `class`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "2xx",
            Self::Redirect => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
            Self::Timeout => "timeout",
            Self::ConnectError => "connect_error",
            Self::DnsError => "dns_error",
            Self::TlsError => "tls_error",
            Self::Refused => "refused",
            Self::SecretUnreadable => "secret_unreadable",
            Self::Other => "other",
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

    #[test]
    fn each_attempt_counts_under_one_outcome() {
        let failed = Verdict::Failed {
            retry_after: None,
            unreachable: false,
        };
        let later = NextStep::RetryAt(Timestamp::from_unix_ms(1));
        let of = DeliveryOutcome::of;
        assert_eq!(
            of(Verdict::Delivered, NextStep::Succeeded, false),
            DeliveryOutcome::Succeeded
        );
        assert_eq!(of(failed, later, false), DeliveryOutcome::FailedRetryable);
        assert_eq!(
            of(failed, NextStep::Failed, false),
            DeliveryOutcome::Exhausted
        );
        assert_eq!(
            of(Verdict::Gone, NextStep::Failed, false),
            DeliveryOutcome::Gone
        );
        assert_eq!(of(failed, later, true), DeliveryOutcome::Refused);
        assert_eq!(of(failed, NextStep::Failed, true), DeliveryOutcome::Refused);
    }

    #[test]
    fn attempts_are_classed_by_status_then_by_error() {
        let class = |s, e| AttemptClass::of(s, e).as_str();
        assert_eq!(class(Some(204), None), "2xx");
        assert_eq!(class(Some(302), Some(ErrorKind::Redirect)), "3xx");
        assert_eq!(class(Some(403), Some(ErrorKind::Status)), "4xx");
        assert_eq!(class(Some(503), Some(ErrorKind::Status)), "5xx");
        assert_eq!(class(None, Some(ErrorKind::Timeout)), "timeout");
        assert_eq!(class(None, Some(ErrorKind::Connect)), "connect_error");
        assert_eq!(class(None, Some(ErrorKind::Dns)), "dns_error");
        assert_eq!(class(None, Some(ErrorKind::Tls)), "tls_error");
        assert_eq!(class(None, Some(ErrorKind::Blocked)), "refused");
        assert_eq!(class(None, Some(ErrorKind::Other)), "other");
    }
}
