//! The records the service keeps besides webhooks (`webhook.rs`): sites, API keys,
//! events, deliveries, attempts.

use std::time::Duration;

use super::event_type::EventType;
use super::ids::{ApiKeyId, AttemptId, DeliveryId, EventId, SiteId, WebhookId};
use super::time::Timestamp;

/// A tenant: owns webhooks, events and API keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Its id.
    pub id: SiteId,
    /// A human name, 1 to 200 characters.
    pub name: String,
    /// Strict mode: its webhooks only subscribe to, and its events only use, the types
    /// of its event-type catalog (see [`super::catalog`]).
    pub strict_event_types: bool,
    /// How many days its events (with their deliveries and attempts) are kept, 1 to
    /// [`super::retention::MAX_RETENTION_DAYS`]; None: the server's `--retention`.
    pub retention_days: Option<u32>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// What a site API key may do on its site. A leaked `ingest` key sends and reads
/// events; it cannot read a secret or repoint a webhook.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send events, and read the site's events, deliveries and attempts.
    Ingest,
    /// Everything on the site: webhooks, their secrets, retries, recovery, API keys,
    /// portal links (which open the console, where secrets are shown), and all `ingest`
    /// may do.
    Manage,
}

impl Scope {
    /// Every scope, in the order they are stored and shown.
    pub const ALL: [Self; 2] = [Self::Ingest, Self::Manage];

    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Manage => "manage",
        }
    }

    /// The scope named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The scopes of an API key: a non-empty set, stored as space-separated names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scope {
    fn bit(self) -> u8 {
        match self {
            Self::Ingest => 1,
            Self::Manage => 2,
        }
    }
}

impl Scopes {
    /// The set of `scopes`; None when empty.
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Option<Self> {
        let bits = scopes.into_iter().fold(0, |bits, s| bits | s.bit());
        (bits != 0).then_some(Self(bits))
    }

    /// Whether a key with these scopes may do what `needed` allows (`manage` allows
    /// everything).
    pub fn allow(self, needed: Scope) -> bool {
        self.0 & (Scope::Manage.bit() | needed.bit()) != 0
    }

    /// The scopes, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.0 & s.bit() != 0)
    }

    /// Space-separated names, the database's form.
    pub fn to_text(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    /// Parses [`Scopes::to_text`]'s form; None for an unknown or no name.
    pub fn from_text(text: &str) -> Option<Self> {
        let parsed: Option<Vec<Scope>> = text.split_whitespace().map(Scope::parse).collect();
        Self::new(parsed?)
    }
}

impl Default for Scopes {
    /// `ingest` alone: a new key may do no more unless asked for.
    fn default() -> Self {
        Self(Scope::Ingest.bit())
    }
}

/// A site-scoped API key. Only a keyed hash of the token is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The only site it may touch.
    pub site_id: SiteId,
    /// A human label.
    pub name: String,
    /// What it may do there.
    pub scopes: Scopes,
    /// HMAC-SHA256 of the token under the token-hash key ([`crate::tokens`]); the token
    /// itself is shown once and never stored.
    pub token_hash: [u8; 32],
    /// When it was created.
    pub created_at: Timestamp,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("site_id", &self.site_id)
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("token_hash", &"[redacted]")
            .finish()
    }
}

/// An accepted event, with the exact body every receiver of it gets.
///
/// `Debug` shows the payload's length only: event data is customer data.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    /// Its id, also the envelope's `id` and the `webhook-id` header.
    pub id: EventId,
    /// The site it was sent to.
    pub site_id: SiteId,
    /// Its type, such as `form.submitted`.
    pub event_type: EventType,
    /// The JavaScript-canonical envelope `{"id","type","created_at","data"}`.
    pub payload: String,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id)
            .field("site_id", &self.site_id)
            .field("event_type", &self.event_type)
            .field("payload", &Redacted(self.payload.len()))
            .field("created_at", &self.created_at)
            .field("idempotency_key", &self.idempotency_key)
            .finish()
    }
}

/// An event without its payload: what the event list shows, read without the payload
/// column (up to the ingest limit, 256 KiB by default, an event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSummary {
    /// Its id.
    pub id: EventId,
    /// The site it was sent to.
    pub site_id: SiteId,
    /// Its type, such as `form.submitted`.
    pub event_type: EventType,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
    /// Size in bytes of its payload (UTF-8).
    pub payload_bytes: u64,
}

/// Stands for customer data in `Debug` output: says how long it was, never what.
pub struct Redacted(pub usize);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[redacted, {} bytes]", self.0)
    }
}

/// Where a delivery stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answer was received.
    Succeeded,
    /// Every scheduled attempt failed, or the webhook answered 410.
    Failed,
    /// Will not be attempted again (its webhook was deleted).
    Cancelled,
}

impl DeliveryState {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored or query-string name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

/// One event's delivery to one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The site both belong to.
    pub site_id: SiteId,
    /// The event delivered.
    pub event_id: EventId,
    /// The webhook delivered to.
    pub webhook_id: WebhookId,
    /// Whether that webhook was deleted: its deliveries stay readable until retention
    /// prunes them, and none of them is attempted again.
    pub webhook_deleted: bool,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made, as many as its attempt log holds: those whose outcome was lost
    /// included (logged as `interrupted`), the one in flight once it is recorded.
    pub attempt_count: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// How an attempt failed, for the attempt log and for filtering.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No complete answer within the request timeout.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed.
    Tls,
    /// The receiver answered 3xx; redirects are never followed.
    Redirect,
    /// The receiver answered with a status outside 2xx and 3xx.
    Status,
    /// The URL is not allowed (refused before connecting).
    Blocked,
    /// A 2xx answer whose body ended before its end (the connection closed or failed
    /// mid-way). The delivery counts as done: the status is the answer.
    BodyCut,
    /// A 2xx answer whose body was not in within the body's own bound (1 s after the
    /// headers), so its reading stopped. The delivery counts as done: the status is
    /// the answer.
    BodyTimeout,
    /// The attempt was made (its request may have reached the receiver) but its
    /// outcome was never recorded: the node was killed, stopped past its shutdown
    /// timeout, or lost its database during it. Recorded when the delivery is taken up
    /// again; not a failure of the receiver (no effect on the webhook's health, no
    /// retry delay).
    Interrupted,
    /// The webhook's sealed secrets did not open on this node (sealed under a key it
    /// does not hold, moved to another site, or altered): nothing was sent.
    SecretUnreadable,
    /// Anything else (the message says what).
    Other,
}

impl ErrorKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Redirect => "redirect",
            Self::Status => "status",
            Self::Blocked => "blocked",
            Self::BodyCut => "body_cut",
            Self::BodyTimeout => "body_timeout",
            Self::Interrupted => "interrupted",
            Self::SecretUnreadable => "secret_unreadable",
            Self::Other => "other",
        }
    }

    /// Whether the kind is about the answer's body only, after a status that decides
    /// the attempt on its own (a 2xx with a cut or slow body is still a delivery).
    pub fn is_about_the_body(self) -> bool {
        matches!(self, Self::BodyCut | Self::BodyTimeout)
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "timeout" => Self::Timeout,
            "connect" => Self::Connect,
            "dns" => Self::Dns,
            "tls" => Self::Tls,
            "redirect" => Self::Redirect,
            "status" => Self::Status,
            "blocked" => Self::Blocked,
            "body_cut" => Self::BodyCut,
            "body_timeout" => Self::BodyTimeout,
            "interrupted" => Self::Interrupted,
            "secret_unreadable" => Self::SecretUnreadable,
            "other" => Self::Other,
            _ => return None,
        })
    }
}

/// One HTTP attempt of a delivery.
///
/// `Debug` shows the response body's length only: receivers may echo customer data.
#[derive(Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Its id.
    pub id: AttemptId,
    /// The delivery it belongs to.
    pub delivery_id: DeliveryId,
    /// The webhook it went to.
    pub webhook_id: WebhookId,
    /// 1 for the first attempt.
    pub attempt_number: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// How long it took (stored to the millisecond).
    pub duration: Duration,
    /// The receiver's status, when it answered.
    pub status_code: Option<u16>,
    /// How it failed, when it did.
    pub error_kind: Option<ErrorKind>,
    /// A short description of the failure.
    pub error_message: Option<String>,
    /// The first 4 KiB of the response body, decoded lossily as UTF-8.
    pub response_body: String,
    /// The headers sent, as `name: value` lines (at most 8 KiB): signatures, the
    /// event's metadata and the webhook's custom headers, never a secret (a custom
    /// header that looks like a credential shows `[redacted]`). Empty when nothing was
    /// sent.
    pub request_headers: String,
    /// The receiver's answer's headers, as `name: value` lines (at most 4 KiB).
    pub response_headers: String,
}

impl Attempt {
    /// The record of attempt `number` of `delivery` (to `webhook`), started at
    /// `started_at`, whose outcome was never recorded (see [`ErrorKind::Interrupted`]).
    pub fn interrupted(
        delivery: DeliveryId,
        webhook: WebhookId,
        number: u32,
        started_at: Timestamp,
    ) -> Self {
        Self {
            id: AttemptId::new(started_at),
            delivery_id: delivery,
            webhook_id: webhook,
            attempt_number: number,
            started_at,
            duration: Duration::ZERO,
            status_code: None,
            error_kind: Some(ErrorKind::Interrupted),
            error_message: Some(
                "the outcome of this attempt was never recorded (the node was killed, stopped \
                 past its shutdown timeout, or lost its database during it); the receiver may \
                 have got it"
                    .to_owned(),
            ),
            response_body: String::new(),
            request_headers: String::new(),
            response_headers: String::new(),
        }
    }
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("id", &self.id)
            .field("delivery_id", &self.delivery_id)
            .field("webhook_id", &self.webhook_id)
            .field("attempt_number", &self.attempt_number)
            .field("started_at", &self.started_at)
            .field("duration", &self.duration)
            .field("status_code", &self.status_code)
            .field("error_kind", &self.error_kind)
            .field("error_message", &self.error_message)
            .field("response_body", &Redacted(self.response_body.len()))
            .field("request_headers", &Redacted(self.request_headers.len()))
            .field("response_headers", &Redacted(self.response_headers.len()))
            .finish()
    }
}
