//! Per-caller rate limit on ingest, so one runaway client (a loop, a leaked API key)
//! cannot fill the database or starve other sites' deliveries.
//!
//! Each credential has its own token bucket (GCRA, from `governor`): the admin token is
//! one bucket, each site API key another, so a site's keys do not share one budget and a
//! noisy key cannot use up another's. Callers are authenticated before they are
//! counted; unauthenticated requests get 401 and cost nothing. An exhausted bucket
//! answers 429 `rate_limited` with `Retry-After` in whole seconds (at least 1).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::AppState;
use super::auth::{Authenticated, Credential};
use super::error::ApiError;
use crate::config::ApiLimits;

/// Buckets kept before idle ones (full again, so equivalent to absent) are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// The ingest rate limiter: one bucket per credential, or nothing when disabled.
#[derive(Debug, Clone)]
pub struct IngestLimiter {
    limiter: Option<Arc<DefaultKeyedRateLimiter<Credential>>>,
    clock: DefaultClock,
}

impl IngestLimiter {
    /// A limiter following `limits`; a rate of 0 disables it, a burst of 0 counts as 1.
    pub fn new(limits: &ApiLimits) -> Self {
        let clock = DefaultClock::default();
        let limiter = NonZeroU32::new(limits.ingest_rate).map(|rate| {
            let burst = NonZeroU32::new(limits.ingest_burst).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::per_second(rate).allow_burst(burst);
            Arc::new(DefaultKeyedRateLimiter::dashmap_with_clock(
                quota,
                clock.clone(),
            ))
        });
        Self { limiter, clock }
    }

    /// Takes one token from `credential`'s bucket, or says how long until one is back.
    pub fn check(&self, credential: Credential) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let outcome = limiter
            .check_key(&credential)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()));
        if limiter.len() > PRUNE_ABOVE {
            limiter.retain_recent();
        }
        outcome
    }
}

/// Middleware of the ingest route: authenticates the caller, then takes a token from
/// its bucket (429 when empty).
pub async fn limit_ingest(
    State((state, limiter)): State<(AppState, IngestLimiter)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let auth = match Authenticated::from_request_parts(&mut parts, &state).await {
        Ok(auth) => auth,
        Err(err) => return err.into_response(),
    };
    if let Err(wait) = limiter.check(auth.credential) {
        return rate_limited(wait);
    }
    next.run(Request::from_parts(parts, body)).await
}

/// 429 with `Retry-After` rounded up to whole seconds, at least 1.
fn rate_limited(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "this credential sent events faster than its ingest rate limit; retry after {seconds} s"
        ),
    )
    .into_response();
    response.headers_mut().insert(RETRY_AFTER, seconds.into());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ApiKeyId;

    fn limits(rate: u32, burst: u32) -> ApiLimits {
        ApiLimits {
            ingest_rate: rate,
            ingest_burst: burst,
            ..ApiLimits::default()
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait() {
        let limiter = IngestLimiter::new(&limits(1, 3));
        for _ in 0..3 {
            assert_eq!(limiter.check(Credential::Admin), Ok(()));
        }
        let wait = limiter
            .check(Credential::Admin)
            .expect_err("burst exhausted");
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
    }

    #[test]
    fn each_credential_has_its_own_bucket() {
        let limiter = IngestLimiter::new(&limits(1, 1));
        let key = Credential::ApiKey(ApiKeyId::new(crate::domain::time::Timestamp::EPOCH));
        assert_eq!(limiter.check(Credential::Admin), Ok(()));
        assert!(limiter.check(Credential::Admin).is_err());
        assert_eq!(limiter.check(key), Ok(()));
        assert!(limiter.check(key).is_err());
    }

    #[test]
    fn a_zero_rate_disables_the_limit() {
        let limiter = IngestLimiter::new(&limits(0, 0));
        for _ in 0..10_000 {
            assert_eq!(limiter.check(Credential::Admin), Ok(()));
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        for (wait, expected) in [
            (Duration::ZERO, "1"),
            (Duration::from_millis(1), "1"),
            (Duration::from_secs(1), "1"),
            (Duration::from_millis(1001), "2"),
            (Duration::from_secs(7), "7"),
        ] {
            let response = rate_limited(wait);
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()[RETRY_AFTER], expected, "{wait:?}");
        }
    }
}
