//! Webhook secret rotation with a grace period, so receivers can switch without
//! dropping a single delivery.
//!
//! During the grace period `webhook-signature` carries one signature per valid secret
//! (Standard Webhooks receivers accept any), while `fullup-signature`, which holds one
//! signature only, keeps the oldest still-valid secret until every grace period has
//! ended. Receivers that verify `fullup-signature` with one secret therefore have a
//! single, announced cut-over time: [`Webhook::fullup_signature_switches_at`].

use fullup_signature::Secret;
use serde::{Deserialize, Serialize};

use super::models::Webhook;

/// Default grace period: a day, time enough for a deploy of every receiver.
pub const DEFAULT_GRACE_SECS: u64 = 24 * 3600;
/// Longest grace period: a week; a leaked secret must not stay valid for longer.
pub const MAX_GRACE_SECS: u64 = 7 * 24 * 3600;
/// Old secrets kept at most; the oldest is dropped first. Bounds the header size.
pub const MAX_OLD_SECRETS: usize = 10;

/// A secret replaced by a rotation, still signing until `valid_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldSecret {
    /// The replaced secret (Debug prints `[redacted]`).
    pub secret: Secret,
    /// Unix ms; from this time on the secret no longer signs.
    pub valid_until: i64,
}

/// The stored form of [`OldSecret`], sealed as one JSON list.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredOldSecret<'a> {
    /// The secret string.
    pub secret: std::borrow::Cow<'a, str>,
    /// Unix ms.
    pub valid_until: i64,
}

impl Webhook {
    /// The old secrets still valid at `now_ms`, newest first.
    pub fn valid_old_secrets(&self, now_ms: i64) -> impl Iterator<Item = &OldSecret> {
        self.old_secrets
            .iter()
            .filter(move |old| old.valid_until > now_ms)
    }

    /// Every secret `webhook-signature` is signed with at `now_ms`: the current one
    /// first, then the valid old ones, newest first.
    pub fn standard_signing_secrets(&self, now_ms: i64) -> Vec<&Secret> {
        std::iter::once(&self.secret)
            .chain(self.valid_old_secrets(now_ms).map(|old| &old.secret))
            .collect()
    }

    /// The secret `fullup-signature` is signed with at `now_ms`: the oldest valid old
    /// secret, or the current one when no grace period is running.
    pub fn fullup_signing_secret(&self, now_ms: i64) -> &Secret {
        self.valid_old_secrets(now_ms)
            .last()
            .map_or(&self.secret, |old| &old.secret)
    }

    /// When `fullup-signature` starts using the current secret: the end of the last
    /// running grace period, or `now_ms` when none runs.
    pub fn fullup_signature_switches_at(&self, now_ms: i64) -> i64 {
        self.valid_old_secrets(now_ms)
            .map(|old| old.valid_until)
            .max()
            .unwrap_or(now_ms)
    }

    /// Replaces the secret with `new`; the replaced one stays valid for `grace_ms`.
    /// Expired old secrets are dropped, and at most [`MAX_OLD_SECRETS`] are kept.
    pub fn rotate_secret(&mut self, new: Secret, now_ms: i64, grace_ms: i64) {
        let previous = std::mem::replace(&mut self.secret, new);
        self.old_secrets.retain(|old| old.valid_until > now_ms);
        if grace_ms > 0 {
            self.old_secrets.insert(
                0,
                OldSecret {
                    secret: previous,
                    valid_until: now_ms.saturating_add(grace_ms),
                },
            );
        }
        self.old_secrets.truncate(MAX_OLD_SECRETS);
        self.updated_at = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{SiteId, WebhookId};

    fn webhook(secret: &str) -> Webhook {
        Webhook {
            id: WebhookId::new(0),
            site_id: SiteId::new(0),
            url: "https://example.com/".to_owned(),
            event_types: Vec::new(),
            description: String::new(),
            enabled: true,
            disabled_reason: None,
            secret: Secret::parse(secret).expect("secret"),
            old_secrets: Vec::new(),
            created_at: 0,
            updated_at: 0,
            failing_since: None,
            paused: false,
        }
    }

    fn s(text: &str) -> Secret {
        Secret::parse(text).expect("secret")
    }

    #[test]
    fn fullup_signature_keeps_the_old_secret_until_the_grace_ends() {
        let mut w = webhook("secret-a");
        w.rotate_secret(s("secret-b"), 1000, 500);
        assert_eq!(w.fullup_signing_secret(1000), &s("secret-a"));
        assert_eq!(w.fullup_signing_secret(1499), &s("secret-a"));
        assert_eq!(w.fullup_signing_secret(1500), &s("secret-b"));
        assert_eq!(w.fullup_signature_switches_at(1000), 1500);
        assert_eq!(
            w.standard_signing_secrets(1499),
            vec![&s("secret-b"), &s("secret-a")]
        );
        assert_eq!(w.standard_signing_secrets(1500), vec![&s("secret-b")]);
    }

    #[test]
    fn chained_rotations_switch_fullup_signature_once_per_grace_end() {
        let mut w = webhook("secret-a");
        w.rotate_secret(s("secret-b"), 0, 1000);
        w.rotate_secret(s("secret-c"), 100, 2000);
        assert_eq!(w.fullup_signing_secret(500), &s("secret-a"));
        assert_eq!(w.fullup_signing_secret(1000), &s("secret-b"));
        assert_eq!(w.fullup_signing_secret(2100), &s("secret-c"));
        assert_eq!(w.fullup_signature_switches_at(100), 2100);
    }

    #[test]
    fn at_most_ten_old_secrets_are_kept_and_expired_ones_are_dropped() {
        let mut w = webhook("secret-0");
        for i in 1..=12 {
            w.rotate_secret(s(&format!("secret-{i}")), i, 1000);
        }
        assert_eq!(w.old_secrets.len(), MAX_OLD_SECRETS);
        assert_eq!(w.old_secrets[0].secret, s("secret-11"));
        assert_eq!(w.old_secrets[9].secret, s("secret-2"));
        w.rotate_secret(s("secret-13"), 5000, 1000);
        assert_eq!(w.old_secrets.len(), 1);
        w.rotate_secret(s("secret-14"), 5001, 0);
        assert_eq!(
            w.standard_signing_secrets(5001),
            vec![&s("secret-14"), &s("secret-12")]
        );
    }
}
