//! Webhooks: where a site's events go, with what filter, signed with which secret; and
//! the use cases that change their health (enable, disable) or their secret.

use std::time::Duration;

use fullup_signature::Secret;

use super::{AUDIT_TARGET, Actor, Service, ServiceError, ServiceResult};
use crate::delivery::guard::GuardError;
use crate::domain::event_type::EventFilter;
use crate::domain::headers::CustomHeaders;
use crate::domain::health::Health;
use crate::domain::ids::WebhookId;
use crate::domain::models::Site;
use crate::domain::ordering::Ordering;
use crate::domain::throttle::RateLimit;
use crate::domain::time::Timestamp;
use crate::domain::webhook::{MAX_GRACE, MAX_OLD_SECRETS, Secrets, Webhook};
use crate::domain::webhook_url::WebhookUrl;
use crate::metrics::StoreOp;
use crate::store::{AttemptStats, Page, PageRequest, SecretRotation, StoreError};

/// The window of a webhook's recent health ([`Service::recent_attempts`]).
pub const HEALTH_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// A site may hold at most this many webhooks; fan-out cost grows with each.
pub const MAX_WEBHOOKS_PER_SITE: u64 = 100;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 1000;
/// Shortest secret a client may choose in a free form (not `whsec_`), for receivers
/// that already hold one, such as the seed programs' `your_shared_secret_key`; the
/// fullup scheme keys with its UTF-8 bytes. Generated ones are 32 random bytes.
pub const MIN_CHOSEN_SECRET_LEN: usize = 16;
/// Fewest key bytes a chosen `whsec_` secret may decode to: 192 bits, past any
/// guessing (generated ones have 32).
pub const MIN_WHSEC_KEY_BYTES: usize = 24;

/// A receiver URL, parsed (its destination is vetted by the use case).
pub fn parse_url(url: &str) -> ServiceResult<WebhookUrl> {
    WebhookUrl::parse(url).map_err(|e| ServiceError::invalid("invalid_url", e.to_string()))
}

/// Event filters: at least one; `["*"]` when absent.
pub fn parse_filters(raw: Option<Vec<String>>) -> ServiceResult<Vec<EventFilter>> {
    let raw = raw.unwrap_or_else(|| vec!["*".to_owned()]);
    if raw.is_empty() {
        return Err(ServiceError::invalid(
            "invalid_event_types",
            "event_types must list at least one filter; use [\"*\"] for every event",
        ));
    }
    raw.iter()
        .map(|f| {
            EventFilter::parse(f)
                .map_err(|e| ServiceError::invalid("invalid_event_types", e.to_string()))
        })
        .collect()
}

/// A description of at most [`MAX_DESCRIPTION_LEN`] characters, without control
/// characters but tab and line breaks (PostgreSQL's text cannot hold NUL); empty when
/// absent.
pub fn parse_description(raw: Option<String>) -> ServiceResult<String> {
    let d = raw.unwrap_or_default();
    if d.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ServiceError::invalid(
            "invalid_description",
            format!("description must be at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    if d.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(ServiceError::invalid(
            "invalid_description",
            "description must not contain control characters other than tab and line breaks",
        ));
    }
    Ok(d)
}

/// Custom headers (see [`CustomHeaders::parse`]); none when absent. A refusal is 422
/// `invalid_headers` naming the header.
pub fn parse_headers(
    raw: Option<std::collections::BTreeMap<String, String>>,
) -> ServiceResult<CustomHeaders> {
    CustomHeaders::parse(raw.unwrap_or_default())
        .map_err(|e| ServiceError::invalid("invalid_headers", e.to_string()))
}

/// A rate limit of 1 to [`crate::domain::throttle::MAX_PER_SECOND`] requests per
/// second; None (no limit) when absent. A refusal is 422 `invalid_rate_limit`.
pub fn parse_rate_limit(raw: Option<i64>) -> ServiceResult<Option<RateLimit>> {
    raw.map(RateLimit::new)
        .transpose()
        .map_err(|e| ServiceError::invalid("invalid_rate_limit", e.to_string()))
}

/// A chosen secret, or a generated one when none is given. A `whsec_` secret must be
/// `whsec_` + standard base64 of at least [`MIN_WHSEC_KEY_BYTES`] bytes, not all alike
/// (it claims to be a random key, and keys the Standard Webhooks scheme with the
/// decoded bytes); a secret in another form, at least [`MIN_CHOSEN_SECRET_LEN`]
/// characters.
pub fn parse_secret(raw: Option<String>) -> ServiceResult<Secret> {
    let Some(raw) = raw else {
        return Ok(Secret::generate());
    };
    let invalid = |message: String| ServiceError::invalid("invalid_secret", message);
    let secret = Secret::parse(&raw).map_err(|e| invalid(e.to_string()))?;
    if raw.starts_with(fullup_signature::SECRET_PREFIX) {
        let generated = "omit it to get a generated one, or use `fullup secret new`";
        let key = secret.whsec_key().ok_or_else(|| {
            invalid(format!(
                "a whsec_ secret must be `whsec_` followed by standard base64 of at least \
                 {MIN_WHSEC_KEY_BYTES} random bytes; this one is not base64; {generated}"
            ))
        })?;
        let uniform = key.iter().all(|&b| b == key[0]);
        if key.len() < MIN_WHSEC_KEY_BYTES || uniform {
            let what = match uniform {
                true => format!("{} byte(s), all the same", key.len()),
                false => format!("{} byte(s)", key.len()),
            };
            return Err(invalid(format!(
                "a whsec_ secret must encode at least {MIN_WHSEC_KEY_BYTES} random bytes; this \
                 one has {what}; {generated}"
            )));
        }
        return Ok(secret);
    }
    if raw.chars().count() < MIN_CHOSEN_SECRET_LEN {
        return Err(invalid(format!(
            "secret must be at least {MIN_CHOSEN_SECRET_LEN} characters; omit it to get a generated one"
        )));
    }
    Ok(secret)
}

/// An ordering, `none` (the default when absent) or `fifo`.
pub fn parse_ordering(raw: Option<&str>) -> ServiceResult<Ordering> {
    raw.map_or(Ok(Ordering::None), |raw| {
        Ordering::parse(raw).map_err(|e| ServiceError::invalid("invalid_ordering", e.to_string()))
    })
}

/// A grace period of at most [`MAX_GRACE`].
pub fn parse_grace(secs: u64) -> ServiceResult<Duration> {
    let grace = Duration::from_secs(secs);
    if grace > MAX_GRACE {
        return Err(ServiceError::invalid(
            "invalid_grace_period",
            format!(
                "grace_period_secs must be at most {} (7 days)",
                MAX_GRACE.as_secs()
            ),
        ));
    }
    Ok(grace)
}

/// A new webhook, parsed.
#[derive(Debug)]
pub struct NewWebhook {
    /// Where to deliver.
    pub url: WebhookUrl,
    /// What to deliver.
    pub event_types: Vec<EventFilter>,
    /// Free text.
    pub description: String,
    /// Headers sent with every attempt.
    pub headers: CustomHeaders,
    /// The signing secret.
    pub secret: Secret,
    /// Whether it starts enabled.
    pub enabled: bool,
    /// Whether it starts paused.
    pub paused: bool,
    /// At most this many requests per second; None: no limit.
    pub rate_limit: Option<RateLimit>,
    /// Whether its deliveries leave in ingest order, one at a time.
    pub ordering: Ordering,
}

/// Changes to a webhook; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct WebhookChanges {
    /// A new URL.
    pub url: Option<WebhookUrl>,
    /// New filters.
    pub event_types: Option<Vec<EventFilter>>,
    /// A new description.
    pub description: Option<String>,
    /// New custom headers, replacing all the old ones.
    pub headers: Option<CustomHeaders>,
    /// Enable (forgetting the failing streak) or disable.
    pub enabled: Option<bool>,
    /// Pause or resume.
    pub paused: Option<bool>,
    /// A new rate limit (`Some(None)` removes it).
    pub rate_limit: Option<Option<RateLimit>>,
    /// Order its deliveries (from the next claim on: see [`crate::domain::ordering`])
    /// or stop ordering them.
    pub ordering: Option<Ordering>,
}

/// What a secret rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// The webhook with its new secret.
    pub webhook: Webhook,
    /// Until then the replaced secret also signs `webhook-signature`.
    pub previous_valid_until: Timestamp,
    /// When `fullup-signature` starts using the new secret.
    pub fullup_signature_switches_at: Timestamp,
}

impl Service {
    /// Vets a receiver URL as a delivery would (the same guard, one lookup). A name
    /// that does not resolve yet is accepted (its DNS may be set up after the webhook):
    /// nothing is connected to here, and every delivery vets it again.
    async fn vet(&self, url: WebhookUrl) -> ServiceResult<WebhookUrl> {
        match self.guard.vet(url.as_url()).await {
            Ok(_) | Err(GuardError::Dns { .. }) => Ok(url),
            Err(e) => Err(ServiceError::invalid("invalid_url", e.to_string())),
        }
    }

    /// Creates a webhook of `site`.
    pub async fn create_webhook(&self, site: &Site, new: NewWebhook) -> ServiceResult<Webhook> {
        self.check_subscription(site, &new.event_types).await?;
        let url = self.vet(new.url).await?;
        if self.counted(StoreOp::Read, self.store.count_webhooks(site.id).await)?
            >= MAX_WEBHOOKS_PER_SITE
        {
            return Err(ServiceError::conflict(
                "limit_reached",
                format!(
                    "a site may hold at most {MAX_WEBHOOKS_PER_SITE} webhooks; delete one first"
                ),
            ));
        }
        let now = self.clock.now();
        let webhook = Webhook {
            id: WebhookId::new(now),
            site_id: site.id,
            url,
            event_types: new.event_types,
            description: new.description,
            headers: new.headers,
            health: Health {
                enabled: new.enabled,
                ..Health::default()
            },
            paused: new.paused,
            rate_limit: new.rate_limit,
            ordering: new.ordering,
            secrets: Ok(Secrets::new(new.secret)),
            created_at: now,
            updated_at: now,
        };
        self.counted(StoreOp::Write, self.store.create_webhook(&webhook).await)?;
        Ok(webhook)
    }

    /// The webhook `id` of `site`.
    pub async fn webhook(&self, site: &Site, id: WebhookId) -> ServiceResult<Webhook> {
        self.counted(StoreOp::Read, self.store.get_webhook(site.id, id).await)?
            .ok_or_else(|| ServiceError::NotFound(format!("webhook {id}")))
    }

    /// A site's webhooks, newest first.
    pub async fn webhooks(&self, site: &Site, page: &PageRequest) -> ServiceResult<Page<Webhook>> {
        Ok(self.counted(StoreOp::Read, self.store.list_webhooks(site.id, page).await)?)
    }

    /// What the attempts of `webhook` did over the last [`HEALTH_WINDOW`] (24 h): its
    /// success ratio.
    pub async fn recent_attempts(&self, webhook: &Webhook) -> ServiceResult<AttemptStats> {
        let since = self.clock.now() - HEALTH_WINDOW;
        Ok(self.counted(
            StoreOp::Read,
            self.store
                .attempt_stats(webhook.site_id, webhook.id, since)
                .await,
        )?)
    }

    /// Applies `changes` to `webhook`; resuming or enabling may make deliveries due. New
    /// filters are checked against the site's catalog in strict mode.
    pub async fn update_webhook(
        &self,
        mut webhook: Webhook,
        changes: WebhookChanges,
    ) -> ServiceResult<Webhook> {
        if let Some(url) = changes.url {
            webhook.url = self.vet(url).await?;
        }
        if let Some(filters) = changes.event_types {
            let site = self
                .counted(StoreOp::Read, self.store.get_site(webhook.site_id).await)?
                .ok_or_else(|| ServiceError::NotFound(format!("site {}", webhook.site_id)))?;
            self.check_subscription(&site, &filters).await?;
            webhook.event_types = filters;
        }
        if let Some(description) = changes.description {
            webhook.description = description;
        }
        if let Some(headers) = changes.headers {
            webhook.headers = headers;
        }
        if let Some(enabled) = changes.enabled {
            webhook.health = webhook.health.switched(enabled);
        }
        if let Some(paused) = changes.paused {
            webhook.paused = paused;
        }
        if let Some(rate_limit) = changes.rate_limit {
            webhook.rate_limit = rate_limit;
        }
        if let Some(ordering) = changes.ordering {
            webhook.ordering = ordering;
        }
        webhook.updated_at = self.clock.now();
        // `false`: the webhook was deleted since it was read; answering with the changes
        // as if they were stored would be a lie.
        if !self.counted(StoreOp::Write, self.store.update_webhook(&webhook).await)? {
            return Err(ServiceError::NotFound(format!("webhook {}", webhook.id)));
        }
        self.wake_dispatcher();
        Ok(webhook)
    }

    /// Deletes `webhook`, keeping its history (see [`crate::store::Store::delete_webhook`]):
    /// its pending deliveries are cancelled, and its deliveries and attempts stay
    /// readable, marked `webhook_deleted`, until retention prunes them.
    pub async fn delete_webhook(&self, webhook: &Webhook) -> ServiceResult<()> {
        let now = self.clock.now();
        self.counted(
            StoreOp::Write,
            self.store
                .delete_webhook(webhook.site_id, webhook.id, now)
                .await,
        )?;
        Ok(())
    }

    /// The secret of `webhook`, shown to `actor`: an audit line (target
    /// [`AUDIT_TARGET`]) names who read which webhook's secret, never the secret.
    pub fn reveal_secret<'w>(
        &self,
        webhook: &'w Webhook,
        actor: Actor,
    ) -> ServiceResult<&'w Secret> {
        let secrets = webhook.secrets().map_err(StoreError::from)?;
        audit(actor, webhook, "webhook secret read");
        Ok(&secrets.current)
    }

    /// Replaces the secret of `webhook` with `new` for `actor` (who is shown the new
    /// one; an audit line records it); the replaced one keeps signing for `grace`, so
    /// receivers can switch without a failed delivery.
    pub async fn rotate_secret(
        &self,
        webhook: &Webhook,
        new: Secret,
        grace: Duration,
        actor: Actor,
    ) -> ServiceResult<Rotated> {
        let now = self.clock.now();
        let secrets = webhook.secrets().map_err(StoreError::from)?;
        if secrets.standard_signing_secrets(now).contains(&&new) {
            return Err(ServiceError::invalid(
                "invalid_secret",
                "the new secret is already in use by this webhook; choose another or omit it",
            ));
        }
        refuse_an_early_drop(secrets, now, grace)?;
        let rotated = self
            .counted(
                StoreOp::Write,
                self.store
                    .rotate_webhook_secret(&SecretRotation {
                        site: webhook.site_id,
                        webhook: webhook.id,
                        new,
                        grace,
                        now,
                    })
                    .await,
            )?
            .ok_or_else(|| ServiceError::NotFound(format!("webhook {}", webhook.id)))?;
        let switches_at = rotated
            .secrets()
            .map_err(StoreError::from)?
            .fullup_signature_switches_at(now);
        audit(actor, webhook, "webhook secret rotated");
        Ok(Rotated {
            fullup_signature_switches_at: switches_at,
            previous_valid_until: now + grace,
            webhook: rotated,
        })
    }
}

/// Logs that `actor` was shown a secret of `webhook` (`what` says how), at info under
/// [`AUDIT_TARGET`]; never the secret.
fn audit(actor: Actor, webhook: &Webhook, what: &'static str) {
    tracing::info!(
        target: AUDIT_TARGET,
        actor = %actor,
        site = %webhook.site_id,
        webhook = %webhook.id,
        "{what}"
    );
}

/// Refuses a rotation that would push a secret still in its grace period out of the
/// bounded list before the end announced for it (the oldest carries `fullup-signature`).
fn refuse_an_early_drop(secrets: &Secrets, now: Timestamp, grace: Duration) -> ServiceResult<()> {
    let in_grace = secrets.valid_old_secrets(now).count();
    let oldest_end = secrets
        .valid_old_secrets(now)
        .map(|old| old.valid_until)
        .min();
    match oldest_end {
        Some(end) if in_grace >= MAX_OLD_SECRETS && !grace.is_zero() => {
            Err(ServiceError::conflict(
                "too_many_rotations",
                format!(
                    "this webhook already has {MAX_OLD_SECRETS} replaced secrets in their grace period; \
                     rotate again after {} (when the oldest stops signing), or with grace_period_secs 0",
                    end.to_rfc3339()
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Refuses work that a disabled webhook would never carry out.
pub fn require_enabled(webhook: &Webhook) -> ServiceResult<()> {
    if webhook.health.enabled {
        return Ok(());
    }
    Err(ServiceError::conflict(
        "webhook_disabled",
        format!(
            "webhook {} is disabled; enable it (PATCH enabled=true) first",
            webhook.id
        ),
    ))
}
