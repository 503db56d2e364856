//! What a receiver checks, and the one function that checks it.
//!
//! [`VerifyConfig`] lives in the router state (or in a [`VerifyLayer`](crate::VerifyLayer))
//! and holds the precomputed keys for every accepted secret, so rotating secrets means
//! building a new config with the old and the new secret, not changing handlers.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use fullup_signature::standard::{self, StandardVerifier};
use fullup_signature::{Secret, SecretError, Verifier};
use http::{HeaderMap, HeaderName};

use crate::Rejection;

/// How a receiver verifies deliveries: its secrets, body limit and replay policy.
///
/// Cheap to clone (the keys are shared), as axum's `FromRef` requires. Put it in the
/// router state directly, or in a field of your state with `#[derive(FromRef)]`.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    keys: Arc<Keys>,
    body_limit: usize,
    require_timestamped: bool,
}

#[derive(Debug)]
struct Keys {
    fullup: Verifier,
    standard: StandardVerifier,
}

impl VerifyConfig {
    /// Webhook bodies are small JSON documents; 1 MiB leaves room for large batches
    /// while bounding the memory a client can make the receiver hold.
    pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

    /// Accepts deliveries signed with any of `secrets` (more than one during a rotation).
    ///
    /// Fails when `secrets` is empty. The body limit is [`Self::DEFAULT_BODY_LIMIT`] and
    /// a valid, fresh timestamped signature is required, so a captured delivery stripped
    /// of its `webhook-*` headers is refused; see [`Self::allow_untimestamped`].
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Result<Self, SecretError> {
        let secrets: Vec<Secret> = secrets.into_iter().collect();
        let standard = StandardVerifier::new(secrets.iter().cloned())?;
        let fullup = Verifier::new(secrets)?;
        Ok(VerifyConfig {
            keys: Arc::new(Keys { fullup, standard }),
            body_limit: Self::DEFAULT_BODY_LIMIT,
            require_timestamped: true,
        })
    }

    /// Sets the largest body accepted, in bytes; larger ones are rejected with 413.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// When `true` (the default), also requires a valid Standard Webhooks signature
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`) whose timestamp is within
    /// 5 minutes of now either way: the receiver's protection against replayed
    /// deliveries. `false` is [`Self::allow_untimestamped`].
    pub fn require_timestamped(mut self, required: bool) -> Self {
        self.require_timestamped = required;
        self
    }

    /// Accepts deliveries that carry only `fullup-signature`, for a sender that signs
    /// the body alone (`webhook-*` headers that are present are still checked).
    ///
    /// Such a receiver has no replay protection: anyone who captured one delivery can
    /// send it again, forever. Opt out only for such a sender; Fullup itself always
    /// sends the timestamped headers.
    pub fn allow_untimestamped(self) -> Self {
        self.require_timestamped(false)
    }

    /// The largest body accepted, in bytes.
    pub fn body_limit(&self) -> usize {
        self.body_limit
    }

    /// Whether deliveries without a valid timestamped signature are rejected.
    pub fn requires_timestamped(&self) -> bool {
        self.require_timestamped
    }

    /// Verifies a delivery's headers against its exact body bytes, now.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<DeliveryInfo, Rejection> {
        self.verify_at(headers, body, unix_now())
    }

    /// Verifies as [`Self::verify`] does, with the clock at `now_unix_secs`.
    ///
    /// `fullup-signature` is always required. The Standard Webhooks headers, when any of
    /// them is present, must form a valid, fresh signature: a receiver that was sent one
    /// never ignores it. When none is present, the delivery is refused unless
    /// [`Self::allow_untimestamped`] was called.
    pub fn verify_at(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_unix_secs: i64,
    ) -> Result<DeliveryInfo, Rejection> {
        let signature = header(headers, &FULLUP_SIGNATURE)?;
        let verified = self.keys.fullup.verify(signature, body)?;
        let timestamped = self.verify_standard(headers, body, now_unix_secs)?;
        Ok(DeliveryInfo {
            secret_index: verified.secret_index,
            timestamped,
        })
    }

    fn verify_standard(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_unix_secs: i64,
    ) -> Result<Option<Timestamped>, Rejection> {
        let id = header(headers, &WEBHOOK_ID)?;
        let timestamp = header(headers, &WEBHOOK_TIMESTAMP)?;
        let signature = header(headers, &WEBHOOK_SIGNATURE)?;
        if id.is_none() && timestamp.is_none() && signature.is_none() {
            return match self.require_timestamped {
                true => Err(Rejection::Untimestamped),
                false => Ok(None),
            };
        }
        let verified =
            self.keys
                .standard
                .verify_at(id, timestamp, signature, body, now_unix_secs)?;
        Ok(Some(Timestamped {
            id: id.unwrap_or_default().to_owned(),
            timestamp: verified.timestamp,
            secret_index: verified.secret_index,
        }))
    }
}

/// A header name validated once, at compile time: looking a header up by `&str`
/// re-parses the name on every request.
struct Name {
    key: HeaderName,
    text: &'static str,
}

impl Name {
    const fn new(text: &'static str) -> Name {
        Name {
            key: HeaderName::from_static(text),
            text,
        }
    }
}

static FULLUP_SIGNATURE: Name = Name::new(fullup_signature::SIGNATURE_HEADER);
static WEBHOOK_ID: Name = Name::new(standard::ID_HEADER);
static WEBHOOK_TIMESTAMP: Name = Name::new(standard::TIMESTAMP_HEADER);
static WEBHOOK_SIGNATURE: Name = Name::new(standard::SIGNATURE_HEADER);

/// One header as text; a value that is not visible ASCII is malformed, not missing.
fn header<'h>(headers: &'h HeaderMap, name: &Name) -> Result<Option<&'h str>, Rejection> {
    headers
        .get(&name.key)
        .map(|value| value.to_str())
        .transpose()
        .map_err(|_| Rejection::MalformedSignature {
            header: name.text,
            reason: "the header value is not visible ASCII",
        })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// What verification established about a delivery.
///
/// [`Verified`](crate::Verified) carries it; [`VerifyLayer`](crate::VerifyLayer) inserts
/// it into the request extensions (read it with `axum::Extension<DeliveryInfo>`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryInfo {
    /// 0-based index, in the order given to [`VerifyConfig::new`], of the secret whose
    /// key produced `fullup-signature`. During a rotation it tells which secret the
    /// sender still uses.
    pub secret_index: usize,
    /// The Standard Webhooks signature, when the delivery carried a valid one.
    pub timestamped: Option<Timestamped>,
}

impl DeliveryInfo {
    /// The `webhook-id` of a timestamped delivery: the key to deduplicate retries with.
    pub fn event_id(&self) -> Option<&str> {
        self.timestamped.as_ref().map(|t| t.id.as_str())
    }

    /// The verified `webhook-timestamp` (Unix seconds) of a timestamped delivery.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamped.as_ref().map(|t| t.timestamp)
    }
}

/// A verified Standard Webhooks signature: its message id and fresh timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timestamped {
    /// The `webhook-id` header: unique per message, identical across its retries.
    pub id: String,
    /// The `webhook-timestamp` header, in Unix seconds, checked to be within tolerance.
    pub timestamp: i64,
    /// 0-based index of the secret that produced `webhook-signature`.
    pub secret_index: usize,
}
