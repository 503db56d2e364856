//! One signed HTTP attempt.
//!
//! Redirects are never followed (a 3xx is a failure), no proxy is taken from the
//! environment, and at most 4 KiB of the answer is read, within
//! [`BODY_READ_TIMEOUT`] of its headers: the status is the answer, so a receiver that
//! drips its body does not hold a worker for the whole request timeout.

use std::time::{Duration, Instant};

use fullup_signature::{sign, sign_standard};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};

use super::DeliveryConfig;
use super::guard::{GuardError, OutboundGuard, PinnedClients};
use crate::domain::headers::{CustomHeaders, is_sensitive};
use crate::domain::models::ErrorKind;
use crate::domain::outcome::Verdict;
use crate::domain::retry::parse_retry_after;
use crate::domain::time::Timestamp;
use crate::domain::webhook::Secrets;
use crate::domain::webhook_url::WebhookUrl;
use crate::error_chain;
use crate::store::ClaimedDelivery;

/// The most of a response body kept in the attempt log.
pub const MAX_RESPONSE_BODY: usize = 4096;
/// The most of an attempt's request or response headers kept in the attempt log: the
/// service's own headers (about 1 KiB with ten rotated secrets) and a webhook's custom
/// ones (at most [`crate::domain::headers::MAX_HEADERS_BYTES`]) always fit.
pub const MAX_HEADERS_TEXT: usize = 8192;

/// How long the answer's body may take once its status line and headers are in: the
/// status decides the attempt, the body is only kept for the attempt log, so a receiver
/// that sends `200` and then drips its body frees the worker after this (or after
/// [`MAX_RESPONSE_BODY`] bytes, whichever comes first), not after the request timeout.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// `user-agent` of every delivery.
pub const USER_AGENT_VALUE: &str = concat!("fullup-webhooks/", env!("CARGO_PKG_VERSION"));

/// What an attempt found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// How it failed, if it did.
    pub error_kind: Option<ErrorKind>,
    /// A short description of the failure.
    pub error_message: Option<String>,
    /// Up to 4 KiB of the answer.
    pub response_body: String,
    /// The headers sent (see [`headers_text`]); empty when nothing was sent.
    pub request_headers: String,
    /// The answer's headers (see [`headers_text`]).
    pub response_headers: String,
    /// The receiver's `Retry-After` in seconds, if it sent one.
    pub retry_after: Option<Duration>,
    /// How long it took.
    pub duration: Duration,
}

impl AttemptResult {
    /// Whether the receiver took the delivery (any 2xx, whatever became of its body).
    pub fn succeeded(&self) -> bool {
        self.error_kind.is_none_or(ErrorKind::is_about_the_body)
            && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// What the delivery rules make of it (see [`crate::domain::outcome`]).
    pub fn verdict(&self) -> Verdict {
        if self.succeeded() {
            Verdict::Delivered
        } else if self.status == Some(410) {
            Verdict::Gone
        } else {
            Verdict::Failed {
                retry_after: self.retry_after,
                unreachable: matches!(
                    self.error_kind,
                    Some(ErrorKind::Timeout | ErrorKind::Connect)
                ),
            }
        }
    }
}

/// Sends deliveries, vetting every destination first.
#[derive(Debug, Clone)]
pub struct Sender {
    guard: OutboundGuard,
    clients: PinnedClients,
}

impl Sender {
    /// A sender with the configured timeouts that reaches only what `guard` allows.
    pub fn new(config: &DeliveryConfig, guard: OutboundGuard) -> reqwest::Result<Self> {
        Ok(Self {
            guard,
            clients: PinnedClients::new(config.connect_timeout, config.request_timeout)?,
        })
    }

    /// Vets the URL and returns the client pinned to its vetted addresses.
    async fn client_for(&self, url: &WebhookUrl) -> Result<reqwest::Client, AttemptResult> {
        let refused = |kind, message: String| AttemptResult {
            status: None,
            error_kind: Some(kind),
            error_message: Some(message),
            response_body: String::new(),
            request_headers: String::new(),
            response_headers: String::new(),
            retry_after: None,
            duration: Duration::ZERO,
        };
        let vetted = self.guard.vet(url.as_url()).await.map_err(|e| match e {
            GuardError::Dns { .. } => refused(ErrorKind::Dns, e.to_string()),
            other => refused(ErrorKind::Blocked, other.to_string()),
        })?;
        self.clients
            .client_for(&vetted)
            .map_err(|e| refused(ErrorKind::Other, error_chain(&e)))
    }

    /// Makes attempt number `attempt` (1-based) of `delivery` at `now`.
    pub async fn send(
        &self,
        delivery: &ClaimedDelivery,
        attempt: u32,
        now: Timestamp,
    ) -> AttemptResult {
        let started = Instant::now();
        let secrets = match delivery.webhook.secrets() {
            Ok(secrets) => secrets,
            Err(unreadable) => {
                return AttemptResult {
                    status: None,
                    error_kind: Some(ErrorKind::SecretUnreadable),
                    error_message: Some(unreadable.to_string()),
                    response_body: String::new(),
                    request_headers: String::new(),
                    response_headers: String::new(),
                    retry_after: None,
                    duration: started.elapsed(),
                };
            }
        };
        let client = match self.client_for(&delivery.webhook.url).await {
            Ok(client) => client,
            Err(mut refused) => {
                refused.duration = started.elapsed();
                return refused;
            }
        };
        let mut headers = signed_headers(delivery, secrets, attempt, now);
        add_custom_headers(&mut headers, &delivery.webhook.headers);
        let sent = sent_headers_text(&headers);
        let request = client
            .post(delivery.webhook.url.as_url().clone())
            .headers(headers)
            .body(delivery.payload.clone());
        let mut result = match request.send().await {
            Ok(response) => read_response(response).await,
            Err(err) => AttemptResult {
                status: None,
                error_kind: Some(classify(&err)),
                error_message: Some(request_error(err, &delivery.webhook.url)),
                response_body: String::new(),
                request_headers: String::new(),
                response_headers: String::new(),
                retry_after: None,
                duration: Duration::ZERO,
            },
        };
        result.request_headers = sent;
        result.duration = started.elapsed();
        result
    }
}

/// The delivery headers: both signature schemes and the event's metadata. During a
/// secret rotation's grace period `webhook-signature` holds one signature per valid
/// secret and `fullup-signature` the old secret's (see [`crate::domain::rotation`]).
pub fn signed_headers(
    delivery: &ClaimedDelivery,
    secrets: &Secrets,
    attempt: u32,
    now: Timestamp,
) -> HeaderMap {
    let body = delivery.payload.as_bytes();
    let timestamp = now.unix_secs();
    let event_id = delivery.event_id.to_string();
    let standard: Vec<String> = secrets
        .standard_signing_secrets(now)
        .into_iter()
        .map(|secret| sign_standard(secret, &event_id, timestamp, body))
        .collect();
    let mut h = HeaderMap::with_capacity(10);
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    put(
        "fullup-signature",
        sign(secrets.fullup_signing_secret(now), body).to_string(),
    );
    put("fullup-event-id", event_id.clone());
    put("fullup-event-type", delivery.event_type.to_string());
    put("fullup-timestamp", timestamp.to_string());
    put("fullup-attempt", attempt.to_string());
    put("webhook-signature", standard.join(" "));
    put("webhook-id", event_id);
    put("webhook-timestamp", timestamp.to_string());
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    h
}

/// Adds a webhook's custom headers, after the service's own (whose names they cannot
/// take: see [`crate::domain::headers`]).
pub fn add_custom_headers(headers: &mut HeaderMap, custom: &CustomHeaders) {
    for (name, value) in custom.iter() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
}

/// The headers sent, as the attempt log keeps them ([`headers_text`]), the values of
/// credentials ([`is_sensitive`]) shown as `[redacted]`.
pub fn sent_headers_text(headers: &HeaderMap) -> String {
    let mut shown = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let value = if is_sensitive(name.as_str()) {
            HeaderValue::from_static("[redacted]")
        } else {
            value.clone()
        };
        shown.append(name.clone(), value);
    }
    headers_text(&shown)
}

async fn read_response(mut response: reqwest::Response) -> AttemptResult {
    let status = response.status().as_u16();
    let retry_after = if status == 429 || status == 503 {
        response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after)
    } else {
        None
    };
    let response_headers = headers_text(response.headers());
    let (body, unread) = read_body(&mut response).await;
    let (error_kind, error_message) = match status {
        200..=299 => match &unread {
            Some(unread) => (Some(unread.kind()), Some(unread.describe(status, &body))),
            None => (None, None),
        },
        300..=399 => (
            Some(ErrorKind::Redirect),
            Some(format!(
                "answered {status}; redirects are not followed: register the final URL"
            )),
        ),
        _ => (
            Some(ErrorKind::Status),
            Some(match &unread {
                Some(unread) => unread.describe(status, &body),
                None => format!("answered {status}"),
            }),
        ),
    };
    AttemptResult {
        status: Some(status),
        error_kind,
        error_message,
        // Text as both stores hold it: PostgreSQL's text cannot hold NUL, which would
        // keep the attempt from ever being recorded.
        response_body: String::from_utf8_lossy(&body).replace('\0', "\u{fffd}"),
        request_headers: String::new(),
        response_headers,
        retry_after,
        duration: Duration::ZERO,
    }
}

/// Headers as `name: value` lines (values decoded lossily), cut at whole lines before
/// [`MAX_HEADERS_TEXT`] bytes, for the attempt log.
pub fn headers_text(headers: &HeaderMap) -> String {
    let mut text = String::new();
    for (name, value) in headers {
        let line = format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes()));
        if text.len() + line.len() > MAX_HEADERS_TEXT {
            break;
        }
        text.push_str(&line);
    }
    text
}

/// Why the answer's body was not read to its end (short of the 4 KiB kept).
#[derive(Debug)]
enum Unread {
    /// The connection closed or failed before the body's end.
    Cut(String),
    /// The body was not in within [`BODY_READ_TIMEOUT`] (or the request timeout).
    Slow,
}

impl Unread {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Cut(_) => ErrorKind::BodyCut,
            Self::Slow => ErrorKind::BodyTimeout,
        }
    }

    fn describe(&self, status: u16, body: &[u8]) -> String {
        let read = body.len();
        match self {
            Self::Cut(cause) => {
                format!("answered {status}; the body was cut after {read} bytes: {cause}")
            }
            Self::Slow => format!(
                "answered {status}; the body was still arriving {} ms after the headers, \
                 so reading stopped after {read} bytes",
                BODY_READ_TIMEOUT.as_millis()
            ),
        }
    }
}

/// Reads up to [`MAX_RESPONSE_BODY`] bytes of the body within [`BODY_READ_TIMEOUT`];
/// says why it stopped short of the body's end, if it did.
async fn read_body(response: &mut reqwest::Response) -> (Vec<u8>, Option<Unread>) {
    let deadline = tokio::time::Instant::now() + BODY_READ_TIMEOUT;
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BODY {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = MAX_RESPONSE_BODY - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(Ok(None)) => return (body, None),
            Ok(Err(err)) if err.is_timeout() => return (body, Some(Unread::Slow)),
            Ok(Err(err)) => return (body, Some(Unread::Cut(error_chain(&err.without_url())))),
            Err(_) => return (body, Some(Unread::Slow)),
        }
    }
    (body, None)
}

/// The message of a failed request: its causes and the receiver's host, never the full
/// URL, whose path and query often carry the receiver's token (issue 17, item 12). The
/// attempt log is shown to the site's users and kept for days.
fn request_error(err: reqwest::Error, url: &WebhookUrl) -> String {
    let host = url.as_url().host_str().unwrap_or("?").to_owned();
    format!("{} (host {host})", error_chain(&err.without_url()))
}

fn classify(err: &reqwest::Error) -> ErrorKind {
    if err.is_timeout() {
        return ErrorKind::Timeout;
    }
    // Only the causes: the top-level message names the URL, whose words must not
    // decide the kind (a refused `…/tls-setup` endpoint is not a TLS failure).
    let chain = std::error::Error::source(err)
        .map(error_chain)
        .unwrap_or_default()
        .to_ascii_lowercase();
    if chain.contains("dns error") || chain.contains("failed to lookup") {
        ErrorKind::Dns
    } else if chain.contains("tls") || chain.contains("certificate") || chain.contains("handshake")
    {
        ErrorKind::Tls
    } else if err.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, error_kind: Option<ErrorKind>) -> AttemptResult {
        AttemptResult {
            status: Some(status),
            error_kind,
            error_message: None,
            response_body: String::new(),
            request_headers: String::new(),
            response_headers: String::new(),
            retry_after: None,
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn a_two_hundred_is_a_delivery_whatever_became_of_its_body() {
        for kind in [None, Some(ErrorKind::BodyCut), Some(ErrorKind::BodyTimeout)] {
            assert!(answered(200, kind).succeeded(), "{kind:?}");
            assert_eq!(
                answered(204, kind).verdict(),
                Verdict::Delivered,
                "{kind:?}"
            );
        }
        assert!(!answered(500, Some(ErrorKind::Status)).succeeded());
        assert!(!answered(302, Some(ErrorKind::Redirect)).succeeded());
        assert!(!answered(200, Some(ErrorKind::Other)).succeeded());
    }
}
