//! A webhook: where a site's events go, which of them, signed with which secret, and
//! how healthy its receiver is; with the rules of secret rotation.
//!
//! Secret rotation has a grace period, so receivers can switch without dropping a single
//! delivery. During the grace period `webhook-signature` carries one signature per valid
//! secret (Standard Webhooks receivers accept any), while `fullup-signature`, which holds
//! one signature only, keeps the oldest still-valid secret until every grace period has
//! ended. Receivers that verify `fullup-signature` with one secret therefore have a
//! single, announced cut-over time: [`Webhook::fullup_signature_switches_at`].

use std::time::Duration;

use fullup_signature::Secret;
use serde::{Deserialize, Serialize};

use super::event_type::{EventFilter, EventType, any_matches};
use super::headers::CustomHeaders;
use super::health::{Health, HealthPolicy};
use super::ids::{SiteId, WebhookId};
use super::operational::is_operational;
use super::ordering::Ordering;
use super::throttle::RateLimit;
use super::time::Timestamp;
use super::webhook_url::WebhookUrl;

/// A receiver: where to deliver, what to deliver, and the secret that signs it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `wh_` + ULID, sorts by creation.
    pub id: WebhookId,
    /// The site it belongs to; it never moves.
    pub site_id: SiteId,
    /// The receiver URL as registered (its destination is re-vetted at every delivery).
    pub url: WebhookUrl,
    /// Which event types it receives; at least one.
    pub event_types: Vec<EventFilter>,
    /// Free text for humans, at most 1000 characters.
    pub description: String,
    /// Enabled or disabled (and why), and since when every attempt has failed.
    pub health: Health,
    /// Headers sent with every attempt besides the service's own (not signed).
    pub headers: CustomHeaders,
    /// Paused webhooks still get deliveries, queued until it is resumed (planned
    /// receiver maintenance: nothing is attempted, so nothing fails or is lost).
    pub paused: bool,
    /// At most this many requests per second to the receiver, on all nodes together
    /// (see [`super::throttle`]); None: no limit.
    pub rate_limit: Option<RateLimit>,
    /// Whether its deliveries leave in ingest order, one at a time
    /// ([`super::ordering`]).
    pub ordering: Ordering,
    /// The signing secrets, or why they do not open on this node (sealed under a key
    /// it does not hold, moved to another site, or altered): such a webhook is still
    /// listed and shown, but its deliveries fail with `secret_unreadable` and reading
    /// its secret answers an error, while every other webhook works.
    pub secrets: Result<Secrets, Unreadable>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed (not counting its failing streak).
    pub updated_at: Timestamp,
}

/// Default grace period: a day, time enough for a deploy of every receiver.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// Longest grace period: a week; a leaked secret must not stay valid for longer.
pub const MAX_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Old secrets kept at most. Bounds the header size. The service refuses a rotation
/// with a grace period while this many are in theirs, so none is dropped before its
/// announced end; the truncation in [`Webhook::rotate_secret`] only backs that up.
pub const MAX_OLD_SECRETS: usize = 10;

/// A webhook's signing secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    /// The signing secret (Debug prints `[redacted]`).
    pub current: Secret,
    /// Secrets replaced by rotations, newest first; each signs until its grace ends.
    pub old: Vec<OldSecret>,
}

/// Why a webhook's stored secrets did not open (the message names no secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the secrets of webhook {webhook} do not open: {reason}")]
pub struct Unreadable {
    /// The webhook.
    pub webhook: WebhookId,
    /// What failed: the key id, the binding, or the format.
    pub reason: String,
}

/// A secret replaced by a rotation, still signing until `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldSecret {
    /// The replaced secret (Debug prints `[redacted]`).
    pub secret: Secret,
    /// From this time on the secret no longer signs.
    pub valid_until: Timestamp,
}

/// The stored form of [`OldSecret`], sealed as one JSON list.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredOldSecret<'a> {
    /// The secret string.
    pub secret: std::borrow::Cow<'a, str>,
    /// Unix ms.
    pub valid_until: Timestamp,
}

impl Webhook {
    /// Attempts it may have in flight now: its adaptive concurrency limit
    /// ([`Health::concurrency_limit`]), and a second's worth of its rate limit
    /// ([`RateLimit::in_flight`]).
    pub fn in_flight_limit(&self, policy: &HealthPolicy) -> u32 {
        in_flight_limit(self.health.concurrency_limit(policy), self.rate_limit)
    }

    /// The secrets, or why they do not open.
    pub fn secrets(&self) -> Result<&Secrets, Unreadable> {
        self.secrets.as_ref().map_err(Clone::clone)
    }

    /// Replaces the secret with `new`; the replaced one stays valid for `grace` (see
    /// [`Secrets::rotate`]). Fails when the secrets do not open.
    pub fn rotate_secret(
        &mut self,
        new: Secret,
        now: Timestamp,
        grace: Duration,
    ) -> Result<(), Unreadable> {
        self.secrets
            .as_mut()
            .map_err(|e| e.clone())?
            .rotate(new, now, grace);
        self.updated_at = now;
        Ok(())
    }
}

impl Secrets {
    /// Only `current`, no old secret.
    pub fn new(current: Secret) -> Self {
        Self {
            current,
            old: Vec::new(),
        }
    }

    /// The old secrets still valid at `now`, newest first.
    pub fn valid_old_secrets(&self, now: Timestamp) -> impl Iterator<Item = &OldSecret> {
        self.old.iter().filter(move |old| old.valid_until > now)
    }

    /// Every secret `webhook-signature` is signed with at `now`: the current one
    /// first, then the valid old ones, newest first.
    pub fn standard_signing_secrets(&self, now: Timestamp) -> Vec<&Secret> {
        std::iter::once(&self.current)
            .chain(self.valid_old_secrets(now).map(|old| &old.secret))
            .collect()
    }

    /// The secret `fullup-signature` is signed with at `now`: the oldest valid old
    /// secret, or the current one when no grace period is running.
    pub fn fullup_signing_secret(&self, now: Timestamp) -> &Secret {
        self.valid_old_secrets(now)
            .last()
            .map_or(&self.current, |old| &old.secret)
    }

    /// When `fullup-signature` starts using the current secret: the end of the last
    /// running grace period, or `now` when none runs.
    pub fn fullup_signature_switches_at(&self, now: Timestamp) -> Timestamp {
        self.valid_old_secrets(now)
            .map(|old| old.valid_until)
            .max()
            .unwrap_or(now)
    }

    /// Replaces the secret with `new`; the replaced one stays valid for `grace`.
    /// Expired old secrets are dropped, and at most [`MAX_OLD_SECRETS`] are kept.
    pub fn rotate(&mut self, new: Secret, now: Timestamp, grace: Duration) {
        let previous = std::mem::replace(&mut self.current, new);
        self.old.retain(|old| old.valid_until > now);
        if !grace.is_zero() {
            self.old.insert(
                0,
                OldSecret {
                    secret: previous,
                    valid_until: now + grace,
                },
            );
        }
        self.old.truncate(MAX_OLD_SECRETS);
    }
}

/// Deliveries of a webhook a node may hold leased per request it may send at once
/// ([`Webhook::in_flight_limit`]). Those beyond its requests wait on the node, parked,
/// for a request slot (holding no worker), so that a request that ends is followed at
/// once by the next, not by the claim that fetches it: held to its limit of leases, a
/// fast receiver's 16 slots each waited for a claim (a few milliseconds on a busy node)
/// between two requests, and one webhook got about 60 % of what was ingested for it;
/// with 2 leases per request 85 %, with 4 all of it (`docs/benchmarks.md`).
pub const LEASES_PER_REQUEST: u32 = 4;

/// The deliveries a node may hold leased for a webhook with the concurrency limit
/// `concurrency` and the rate limit `rate`: [`LEASES_PER_REQUEST`] per request of its
/// concurrency, and at most a second's worth of its rate limit. The claim statements
/// apply the same bound in SQL.
pub fn lease_limit(concurrency: u32, rate: Option<RateLimit>, per_request: u32) -> u32 {
    in_flight_limit(concurrency.saturating_mul(per_request.max(1)), rate)
}

/// The attempts a webhook with the concurrency limit `concurrency` and the rate limit
/// `rate` may have in flight (see [`Webhook::in_flight_limit`]). The claim statements
/// apply the same bound in SQL: `MIN(concurrency, rate_limit_per_second)`.
pub fn in_flight_limit(concurrency: u32, rate: Option<RateLimit>) -> u32 {
    rate.map_or(concurrency, |r| concurrency.min(r.in_flight()))
}

/// The webhooks an event goes to, of the site's enabled `candidates` (id and filters):
/// `only` alone when given (a test ping reaches its webhook whatever its filters),
/// otherwise every one whose filters let `event_type` through; the service's own events
/// ([`super::operational`]) only through a filter that names them exactly.
pub fn targets<'a>(
    candidates: impl IntoIterator<Item = (WebhookId, &'a [EventFilter])>,
    event_type: &EventType,
    only: Option<WebhookId>,
) -> Vec<WebhookId> {
    candidates
        .into_iter()
        .filter(|(id, filters)| match only {
            Some(only) => only == *id,
            None if is_operational(event_type.as_str()) => filters
                .iter()
                .any(|f| matches!(f, EventFilter::Exact(name) if name == event_type.as_str())),
            None => any_matches(filters, event_type.as_str()),
        })
        .map(|(id, _)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(secret: &str) -> Secrets {
        Secrets::new(s(secret))
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_unix_ms(ms)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn s(text: &str) -> Secret {
        Secret::parse(text).expect("secret")
    }

    #[test]
    fn an_event_targets_matching_webhooks_or_only_the_one_asked_for() {
        let (a, b) = (WebhookId::new(t(1)), WebhookId::new(t(2)));
        let form = [EventFilter::parse("form.*").expect("filter")];
        let all = [EventFilter::All];
        let candidates = || [(a, &form[..]), (b, &all[..])];
        let submitted = EventType::parse("form.submitted").expect("type");
        let ping = EventType::parse("ping").expect("type");
        assert_eq!(targets(candidates(), &submitted, None), vec![a, b]);
        assert_eq!(targets(candidates(), &ping, None), vec![b]);
        assert_eq!(targets(candidates(), &ping, Some(a)), vec![a]);
    }

    #[test]
    fn fullup_signature_keeps_the_old_secret_until_the_grace_ends() {
        let mut w = webhook("secret-a");
        w.rotate(s("secret-b"), t(1000), ms(500));
        assert_eq!(w.fullup_signing_secret(t(1000)), &s("secret-a"));
        assert_eq!(w.fullup_signing_secret(t(1499)), &s("secret-a"));
        assert_eq!(w.fullup_signing_secret(t(1500)), &s("secret-b"));
        assert_eq!(w.fullup_signature_switches_at(t(1000)), t(1500));
        assert_eq!(
            w.standard_signing_secrets(t(1499)),
            vec![&s("secret-b"), &s("secret-a")]
        );
        assert_eq!(w.standard_signing_secrets(t(1500)), vec![&s("secret-b")]);
    }

    #[test]
    fn chained_rotations_switch_fullup_signature_once_per_grace_end() {
        let mut w = webhook("secret-a");
        w.rotate(s("secret-b"), t(0), ms(1000));
        w.rotate(s("secret-c"), t(100), ms(2000));
        assert_eq!(w.fullup_signing_secret(t(500)), &s("secret-a"));
        assert_eq!(w.fullup_signing_secret(t(1000)), &s("secret-b"));
        assert_eq!(w.fullup_signing_secret(t(2100)), &s("secret-c"));
        assert_eq!(w.fullup_signature_switches_at(t(100)), t(2100));
    }

    #[test]
    fn at_most_ten_old_secrets_are_kept_and_expired_ones_are_dropped() {
        let mut w = webhook("secret-0");
        for i in 1..=12 {
            w.rotate(s(&format!("secret-{i}")), t(i), ms(1000));
        }
        assert_eq!(w.old.len(), MAX_OLD_SECRETS);
        assert_eq!(w.old[0].secret, s("secret-11"));
        assert_eq!(w.old[9].secret, s("secret-2"));
        w.rotate(s("secret-13"), t(5000), ms(1000));
        assert_eq!(w.old.len(), 1);
        w.rotate(s("secret-14"), t(5001), ms(0));
        assert_eq!(
            w.standard_signing_secrets(t(5001)),
            vec![&s("secret-14"), &s("secret-12")]
        );
    }
}
