//! The API's resources as the service sends them, and the bodies the client sends.
//!
//! Answers ignore fields they do not know, so a service that adds one does not break
//! a client built before it. Ids are the service's strings (`site_` + ULID, ...).

use chrono::{DateTime, Utc};
use fullup_signature::Secret;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A site: one tenant of the service, owner of webhooks, events and deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Site {
    /// `site_` + ULID.
    pub id: String,
    /// The human name it was given.
    pub name: String,
    /// Days its events are kept before retention prunes them; None: the server's
    /// `--retention`.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A site API key: a token that reaches one site only, for a platform's backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiKey {
    /// `key_` + ULID.
    pub id: String,
    /// The site it reaches.
    pub site_id: String,
    /// Its label, such as `production backend`.
    pub name: String,
    /// What it may do on its site.
    pub scopes: Vec<ApiKeyScope>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What a site API key may do on its site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ApiKeyScope {
    /// Send events; read the site's events, deliveries and attempts. What a backend
    /// that only sends events needs, and all a leaked key then allows.
    Ingest,
    /// Everything on the site: webhooks, their secrets, retries, API keys, portal links.
    Manage,
}

/// An API key just created, with its token: the only answer that carries it (the
/// service keeps only its hash).
#[derive(Debug, Clone)]
pub struct CreatedApiKey {
    /// The key.
    pub key: ApiKey,
    /// The bearer token; `Debug` prints `[redacted]`.
    pub token: Secret,
}

/// A webhook secret rotation's outcome.
#[derive(Debug, Clone)]
pub struct RotatedSecret {
    /// The new secret; `webhook-signature` carries its signature from now on.
    pub secret: Secret,
    /// Until then the replaced secret also signs `webhook-signature`.
    pub previous_secret_valid_until: DateTime<Utc>,
    /// `fullup-signature` is keyed with the replaced secret until then, with the new
    /// one after.
    pub fullup_signature_switches_at: DateTime<Utc>,
}

/// A webhook: a receiver URL, the event types it wants, and its state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    /// `wh_` + ULID.
    pub id: String,
    /// The site it belongs to.
    pub site_id: String,
    /// The receiver's URL.
    pub url: String,
    /// Its filters: `*`, prefixes such as `form.*`, or exact types.
    pub event_types: Vec<String>,
    /// Free text.
    pub description: String,
    /// Whether it receives deliveries.
    pub enabled: bool,
    /// Why the service disabled it, when it did.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// Whether its deliveries queue without being attempted.
    #[serde(default)]
    pub paused: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A webhook just created, with its signing secret: the only answer that carries it
/// (later, [`Client::webhook_secret`](crate::Client::webhook_secret)).
#[derive(Debug, Clone)]
pub struct CreatedWebhook {
    /// The webhook.
    pub webhook: Webhook,
    /// The secret its receiver verifies signatures with; `Debug` prints `[redacted]`.
    pub secret: Secret,
}

/// A webhook to create; [`NewWebhook::new`] takes the URL, the rest has defaults.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewWebhook {
    /// The receiver's http(s) URL.
    pub url: String,
    /// Filters: `*`, prefixes such as `form.*`, or exact types; empty means `["*"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_types: Vec<String>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The secret to sign with (`whsec_` + base64 of at least 24 bytes, or 16
    /// characters or more in another form), for a receiver that already
    /// holds one; by default the service generates a `whsec_` secret.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_secret"
    )]
    pub secret: Option<Secret>,
    /// Create it paused: deliveries queue, unattempted, until it is resumed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Headers sent with every delivery besides the service's own (not signed), such
    /// as a receiver's gateway key; `Debug` prints their names only.
    #[serde(skip_serializing_if = "CustomHeaders::is_empty")]
    pub headers: CustomHeaders,
}

/// Custom headers of a webhook, name to value; `Debug` prints the names only (values
/// often carry a receiver's credentials).
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CustomHeaders(pub std::collections::BTreeMap<String, String>);

impl CustomHeaders {
    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for CustomHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl NewWebhook {
    /// A webhook to `url` for every event type, with a generated secret.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

fn expose_secret<S: serde::Serializer>(
    secret: &Option<Secret>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_some(secret.expose()),
        None => serializer.serialize_none(),
    }
}

/// Changes to a webhook; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WebhookUpdate {
    /// A new receiver URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// New filters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// A new description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Enable (clears the reason it was disabled) or disable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Pause (deliveries queue) or resume (the queue drains).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// An event to send: its type and its data, which the service delivers unchanged.
#[derive(Debug, Clone, Serialize)]
pub struct NewEvent {
    /// Such as `form.submitted`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Any JSON value, already serialized (integers within ±(2^53−1)).
    pub data: Box<RawValue>,
    /// Sent as the `Idempotency-Key` header: the service accepts an event with a key
    /// it has seen for this site once, and answers the same id to every retry.
    #[serde(skip)]
    pub idempotency_key: Option<String>,
}

impl NewEvent {
    /// An event of `event_type` carrying `data`, without an idempotency key.
    pub fn new(event_type: impl Into<String>, data: &impl Serialize) -> Result<Self, crate::Error> {
        let data = serde_json::value::to_raw_value(data).map_err(crate::Error::Encode)?;
        Ok(Self::from_raw(event_type, data))
    }

    /// An event whose data is JSON text already (sent as is, not parsed again).
    pub fn from_raw(event_type: impl Into<String>, data: Box<RawValue>) -> Self {
        Self {
            event_type: event_type.into(),
            data,
            idempotency_key: None,
        }
    }

    /// Sets the idempotency key, such as the id of the change the event reports, so
    /// that a retried send cannot make a second event.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// An event as listed: what it is, without its data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EventSummary {
    /// `evt_` + ULID.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the service accepted it.
    pub created_at: DateTime<Utc>,
    /// The idempotency key it was sent with.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The size of its payload in bytes, when the service reports it.
    #[serde(default)]
    pub payload_bytes: Option<u64>,
}

/// An event with the exact body its deliveries carry.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `evt_` + ULID.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the service accepted it.
    pub created_at: DateTime<Utc>,
    /// The idempotency key it was sent with.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The body its deliveries carry, `{"id","type","created_at","data"}`, byte for
    /// byte as signed.
    pub payload: Box<RawValue>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Succeeded,
    /// Every scheduled attempt failed, or the receiver answered 410.
    Failed,
    /// Will not be attempted again (its webhook was deleted).
    Cancelled,
    /// A state this client does not know (a newer service).
    #[serde(other)]
    Unknown,
}

impl DeliveryState {
    /// The API's name: `pending`, `succeeded`, `failed`, `cancelled` (`unknown` for
    /// [`DeliveryState::Unknown`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event on its way to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Delivery {
    /// `dlv_` + ULID.
    pub id: String,
    /// The event delivered.
    pub event_id: String,
    /// The webhook delivered to.
    pub webhook_id: String,
    /// Whether that webhook was deleted (its history is kept until retention prunes
    /// it; a pending delivery became `cancelled`). False from services before it.
    #[serde(default)]
    pub webhook_deleted: bool,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempt_count: u32,
    /// When the next attempt is due (pending deliveries only).
    #[serde(default)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// Which deliveries [`Client::deliveries`](crate::Client::deliveries) lists; the
/// default is all of the site's.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this event's.
    pub event_id: Option<String>,
    /// Only this webhook's.
    pub webhook_id: Option<String>,
    /// Only those in this state.
    pub state: Option<DeliveryState>,
}

/// One HTTP request of a delivery to its receiver.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attempt {
    /// `att_` + ULID.
    pub id: String,
    /// Its delivery.
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub attempt_number: u32,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// The receiver's HTTP status, when it answered.
    #[serde(default)]
    pub status_code: Option<u16>,
    /// How it failed: `timeout`, `connect`, `dns`, `tls`, `redirect`, `status`,
    /// `blocked` or `other`.
    #[serde(default)]
    pub error_kind: Option<String>,
    /// Details of the failure.
    #[serde(default)]
    pub error_message: Option<String>,
    /// The start of the receiver's answer (4 KiB at most).
    #[serde(default)]
    pub response_body: String,
}
