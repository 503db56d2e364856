//! Why a delivery was refused, as a status code and a stable JSON error.
//!
//! Senders retry on some statuses and not others, and developers read the message while
//! wiring a receiver, so each failure gets its own variant, status and `code`. Messages
//! never quote the body or a secret: they are also what the crate logs.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fullup_signature::VerifyError;
use fullup_signature::standard::StandardError;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;

/// A delivery the receiver refused, before its handler ran.
///
/// Answered as `{"error": {"code": <Self::code>, "message": <Display>}}`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The `fullup-signature` header is absent (400).
    #[error("missing fullup-signature header: sign the exact body bytes with HMAC-SHA256")]
    MissingSignature,
    /// A signature header is present but cannot be a signature (400).
    #[error("malformed {header} header: {reason}")]
    MalformedSignature {
        /// The header at fault.
        header: &'static str,
        /// What is wrong with its value.
        reason: &'static str,
    },
    /// The signature does not match the body under any accepted secret (403).
    #[error(
        "signature mismatch: sign the exact bytes sent (not re-serialized JSON) with this endpoint's secret"
    )]
    Mismatch,
    /// A Standard Webhooks header is absent while another is present (400).
    #[error(
        "missing {header} header: timestamped signatures need webhook-id, webhook-timestamp and webhook-signature"
    )]
    MissingTimestamped {
        /// The absent header.
        header: &'static str,
    },
    /// None of the Standard Webhooks headers is present, and the config requires a
    /// timestamped signature, as it does by default (400).
    #[error(
        "missing webhook-id, webhook-timestamp and webhook-signature headers: this receiver requires a timestamped signature so that a captured delivery cannot be replayed; for a sender that signs only the body, opt out with VerifyConfig::allow_untimestamped (fullup listen --allow-untimestamped)"
    )]
    Untimestamped,
    /// The `webhook-timestamp` is further from now than the tolerance, either way (403).
    #[error(
        "webhook-timestamp {timestamp} is more than 5 minutes from now ({now}): a replayed or delayed delivery, or a wrong clock"
    )]
    StaleTimestamp {
        /// The delivery's timestamp, Unix seconds.
        timestamp: i64,
        /// The receiver's clock, Unix seconds.
        now: i64,
    },
    /// The body is larger than the configured limit (413).
    #[error("body larger than the {limit}-byte limit of this endpoint")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body could not be read, e.g. the client disconnected (400).
    #[error("could not read the request body: the connection failed while sending it")]
    BodyRead,
    /// The body verified but is not UTF-8, and the handler asked for a `String` (400).
    #[error("verified body is not valid UTF-8 text")]
    InvalidUtf8,
    /// The body verified but is not JSON of the shape the handler expects (422).
    #[error(
        "verified body is not valid JSON for this endpoint ({category} error at line {line}, column {column})"
    )]
    InvalidJson {
        /// `syntax`, `data` (wrong shape) or `eof` (truncated).
        category: &'static str,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
}

impl Rejection {
    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Mismatch | Rejection::StaleTimestamp { .. } => StatusCode::FORBIDDEN,
            Rejection::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::InvalidJson { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::MissingSignature
            | Rejection::MalformedSignature { .. }
            | Rejection::MissingTimestamped { .. }
            | Rejection::Untimestamped
            | Rejection::BodyRead
            | Rejection::InvalidUtf8 => StatusCode::BAD_REQUEST,
        }
    }

    /// The stable, machine-readable `error.code` of the JSON answer.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::MissingSignature => "missing_signature",
            Rejection::MalformedSignature { .. } => "malformed_signature",
            Rejection::Mismatch => "signature_mismatch",
            Rejection::MissingTimestamped { .. } | Rejection::Untimestamped => {
                "missing_timestamped_signature"
            }
            Rejection::StaleTimestamp { .. } => "stale_timestamp",
            Rejection::BodyTooLarge { .. } => "body_too_large",
            Rejection::BodyRead => "body_read_failed",
            Rejection::InvalidUtf8 => "invalid_utf8",
            Rejection::InvalidJson { .. } => "invalid_json",
        }
    }

    /// The JSON error document, `{"error": {"code": ..., "message": ...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } })
    }

    /// The full HTTP answer, with a body type any hyper or tower stack accepts.
    pub fn to_http_response(&self) -> http::Response<Full<Bytes>> {
        let mut response = http::Response::new(Full::new(Bytes::from(self.to_json().to_string())));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    /// Logs the refusal without the body or any secret: only the code and the message.
    pub(crate) fn log(&self) {
        tracing::warn!(
            code = self.code(),
            status = self.status().as_u16(),
            "webhook rejected: {self}"
        );
    }

    pub(crate) fn from_json_error(error: &serde_json::Error) -> Rejection {
        let category = match error.classify() {
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
            serde_json::error::Category::Io => "io",
        };
        Rejection::InvalidJson {
            category,
            line: error.line(),
            column: error.column(),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.to_http_response().map(Body::new)
    }
}

impl From<VerifyError> for Rejection {
    fn from(error: VerifyError) -> Self {
        match error {
            VerifyError::Missing => Rejection::MissingSignature,
            VerifyError::Malformed { reason } => Rejection::MalformedSignature {
                header: fullup_signature::SIGNATURE_HEADER,
                reason,
            },
            _ => Rejection::Mismatch,
        }
    }
}

impl From<StandardError> for Rejection {
    fn from(error: StandardError) -> Self {
        match error {
            StandardError::MissingHeader(header) => Rejection::MissingTimestamped { header },
            StandardError::Malformed { header, reason } => {
                Rejection::MalformedSignature { header, reason }
            }
            StandardError::TooOld { timestamp, now } | StandardError::TooNew { timestamp, now } => {
                Rejection::StaleTimestamp { timestamp, now }
            }
            _ => Rejection::Mismatch,
        }
    }
}
