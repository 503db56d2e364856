//! What `fullup listen` prints for one request: a readable block, or one JSON line.
//!
//! The report shows what arrived (signature headers, body) and the verdict with its
//! reason, so a developer sees at once why a delivery did or did not verify. It never
//! holds a secret, only what came over the wire.

use std::time::SystemTime;

use base64::Engine as _;
use fullup_axum::{DeliveryInfo, Rejection};
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::value::RawValue;

/// Bodies up to this size are shown whole in the text output.
const SHOW_LIMIT: usize = 64 * 1024;
/// How much of a larger body the text output shows.
const PREVIEW_BYTES: usize = 1024;
/// How much of a binary body the text output shows, in hex.
const HEX_PREVIEW_BYTES: usize = 64;

/// The `code` of a [`Verdict::Replayed`] request, in its JSON answer and report.
pub const REPLAYED: &str = "replayed";

/// The outcome of one request.
#[derive(Debug)]
pub enum Verdict {
    /// The signature verified.
    Verified(DeliveryInfo),
    /// The request was refused; the rejection says why.
    Rejected(Rejection),
    /// The signature verified, but this `webhook-id` and `webhook-timestamp` were
    /// already received: a copy of an earlier delivery, refused.
    Replayed(DeliveryInfo),
    /// Not the listened method and path; the string says what is listened to.
    Ignored(String),
}

impl Verdict {
    /// The human reason: `verified with secret #2`, `mismatch`, `missing header: ...`.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Verified(delivery) => verified(delivery),
            Verdict::Rejected(rejection) => rejected(rejection),
            Verdict::Replayed(delivery) => format!(
                "replayed: webhook-id {} with webhook-timestamp {} was already received; a copy of an earlier delivery",
                delivery.event_id().unwrap_or_default(),
                delivery.timestamp().unwrap_or_default()
            ),
            Verdict::Ignored(expected) => format!("ignored: this listener receives {expected}"),
        }
    }
}

fn verified(delivery: &DeliveryInfo) -> String {
    let mut text = format!("verified with secret #{}", delivery.secret_index + 1);
    if let Some(timestamped) = &delivery.timestamped {
        text.push_str(&format!(
            " (timestamped: webhook-id {}, webhook-timestamp {})",
            timestamped.id, timestamped.timestamp
        ));
    }
    text
}

fn rejected(rejection: &Rejection) -> String {
    match rejection {
        Rejection::MissingSignature => "missing header: fullup-signature".to_owned(),
        Rejection::MissingTimestamped { header } => format!("missing header: {header}"),
        Rejection::Untimestamped => "missing headers: webhook-id, webhook-timestamp, webhook-signature (required against replays; --allow-untimestamped accepts a sender that signs only the body)".to_owned(),
        Rejection::MalformedSignature { header, reason } => {
            format!("malformed header: {header}: {reason}")
        }
        Rejection::Mismatch => "mismatch: no accepted secret signed these exact bytes".to_owned(),
        other => other.to_string(),
    }
}

/// What the forwarding target answered.
#[derive(Debug)]
pub struct Forwarded {
    /// Where the request was relayed.
    pub url: String,
    /// Its status and body, or why it could not be reached.
    pub outcome: Result<(StatusCode, axum::body::Bytes), String>,
}

/// Everything printed about one request.
pub struct Report<'a> {
    /// When the request arrived.
    pub received_at: SystemTime,
    /// Method, path and headers.
    pub parts: &'a Parts,
    /// The exact body bytes.
    pub body: &'a [u8],
    /// The verdict.
    pub verdict: &'a Verdict,
    /// The forwarding target's answer, when forwarding.
    pub forwarded: Option<&'a Forwarded>,
    /// What `fullup listen` answered.
    pub status: StatusCode,
}

impl Report<'_> {
    /// The readable block, ending with a blank line.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} {} {}\n",
            humantime::format_rfc3339_millis(self.received_at),
            self.parts.method,
            self.parts.uri
        );
        for (name, value) in shown_headers(&self.parts.headers) {
            out.push_str(&format!("  {name}: {value}\n"));
        }
        out.push_str(&body_text("body", self.body));
        out.push_str(&format!("  verdict: {}\n", self.verdict.describe()));
        if let Some(forwarded) = self.forwarded {
            out.push_str(&forwarded_text(forwarded));
        }
        out.push_str(&format!("  answered: {}\n\n", status_text(self.status)));
        out
    }

    /// One JSON object, on one line.
    pub fn json_line(&self) -> String {
        let (verified, secret, code, event_id, timestamp) = match self.verdict {
            Verdict::Verified(d) => (
                true,
                Some(d.secret_index + 1),
                None,
                d.event_id(),
                d.timestamp(),
            ),
            Verdict::Rejected(r) => (false, None, Some(r.code()), None, None),
            Verdict::Replayed(d) => (false, None, Some(REPLAYED), d.event_id(), d.timestamp()),
            Verdict::Ignored(_) => (false, None, Some("ignored"), None, None),
        };
        let line = JsonReport {
            time: humantime::format_rfc3339_millis(self.received_at).to_string(),
            method: self.parts.method.as_str(),
            path: self.parts.uri.to_string(),
            headers: shown_headers(&self.parts.headers)
                .map(|(name, value)| (name.to_owned(), value.into()))
                .collect(),
            body_bytes: self.body.len(),
            body: JsonBody::of(self.body),
            verdict: JsonVerdict {
                verified,
                secret,
                code,
                reason: self.verdict.describe(),
                event_id,
                timestamp,
            },
            forwarded: self.forwarded.map(JsonForwarded::of),
            status: self.status.as_u16(),
        };
        serde_json::to_string(&line).unwrap_or_else(|error| {
            serde_json::json!({ "error": format!("cannot serialize the report: {error}") })
                .to_string()
        })
    }
}

/// The headers worth showing: the signature schemes' and the body's type.
fn shown_headers(headers: &HeaderMap) -> impl Iterator<Item = (&str, String)> {
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            name.starts_with("fullup-") || name.starts_with("webhook-") || name == "content-type"
        })
        .map(|(name, value)| {
            (
                name.as_str(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
}

fn status_text(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_owned()
}

fn forwarded_text(forwarded: &Forwarded) -> String {
    match &forwarded.outcome {
        Ok((status, body)) => format!(
            "  forwarded to {}: answered {}\n{}",
            forwarded.url,
            status_text(*status),
            body_text("its body", body)
        ),
        Err(error) => format!("  forwarded to {}: failed: {error}\n", forwarded.url),
    }
}

/// A labelled, indented summary of a body: JSON pretty-printed (keys in the order
/// sent), text as is, binary and huge bodies abbreviated.
fn body_text(label: &str, body: &[u8]) -> String {
    let size = body.len();
    let (summary, shown) = if body.is_empty() {
        ("empty".to_owned(), None)
    } else if size > SHOW_LIMIT {
        let head = String::from_utf8_lossy(&body[..PREVIEW_BYTES]).into_owned();
        (
            format!("{size} bytes, too large to show; its first {PREVIEW_BYTES} bytes"),
            Some(head),
        )
    } else if let Some(pretty) = transcode(body, true) {
        (
            format!(
                "{size} bytes, JSON (re-indented for display; the signature covers the bytes as sent)"
            ),
            Some(pretty),
        )
    } else if let Ok(text) = std::str::from_utf8(body) {
        (format!("{size} bytes, text"), Some(text.to_owned()))
    } else {
        let hex = hex_preview(&body[..size.min(HEX_PREVIEW_BYTES)]);
        (
            format!(
                "{size} bytes, binary; the first {} in hex",
                size.min(HEX_PREVIEW_BYTES)
            ),
            Some(hex),
        )
    };
    let mut out = format!("  {label}: {summary}\n");
    for line in shown.iter().flat_map(|text| text.lines()) {
        out.push_str(&format!("    {line}\n"));
    }
    out
}

fn hex_preview(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.chunks(16)
        .map(|row| row.join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Re-serializes JSON pretty or compact, keeping keys in the order they were sent.
fn transcode(body: &[u8], pretty: bool) -> Option<String> {
    let mut input = serde_json::Deserializer::from_slice(body);
    let mut output = Vec::with_capacity(body.len() * 2);
    let written = if pretty {
        serde_transcode::transcode(&mut input, &mut serde_json::Serializer::pretty(&mut output))
    } else {
        serde_transcode::transcode(&mut input, &mut serde_json::Serializer::new(&mut output))
    };
    written.ok()?;
    input.end().ok()?;
    String::from_utf8(output).ok()
}

#[derive(Serialize)]
struct JsonReport<'a> {
    time: String,
    method: &'a str,
    path: String,
    headers: serde_json::Map<String, serde_json::Value>,
    body_bytes: usize,
    #[serde(flatten)]
    body: JsonBody,
    verdict: JsonVerdict<'a>,
    forwarded: Option<JsonForwarded>,
    status: u16,
}

/// The body as JSON when it is JSON, as a string when it is text, else as base64.
#[derive(Serialize)]
enum JsonBody {
    #[serde(rename = "body")]
    Json(Box<RawValue>),
    #[serde(rename = "body_text")]
    Text(String),
    #[serde(rename = "body_base64")]
    Base64(String),
}

impl JsonBody {
    /// JSON on one line is embedded byte for byte (numbers keep their spelling);
    /// multi-line JSON is re-serialized compactly, keeping its key order.
    fn of(body: &[u8]) -> JsonBody {
        let one_line = !body.iter().any(|b| matches!(b, b'\n' | b'\r'));
        let compact = match one_line {
            true => std::str::from_utf8(body).ok().map(str::to_owned),
            false => transcode(body, false),
        };
        if let Some(raw) = compact.and_then(|json| RawValue::from_string(json).ok()) {
            return JsonBody::Json(raw);
        }
        match std::str::from_utf8(body) {
            Ok(text) => JsonBody::Text(text.to_owned()),
            Err(_) => JsonBody::Base64(base64::engine::general_purpose::STANDARD.encode(body)),
        }
    }
}

#[derive(Serialize)]
struct JsonVerdict<'a> {
    verified: bool,
    /// 1-based, as in the text output.
    secret: Option<usize>,
    code: Option<&'static str>,
    reason: String,
    event_id: Option<&'a str>,
    timestamp: Option<i64>,
}

#[derive(Serialize)]
struct JsonForwarded {
    url: String,
    status: Option<u16>,
    #[serde(flatten)]
    body: Option<JsonBody>,
    error: Option<String>,
}

impl JsonForwarded {
    fn of(forwarded: &Forwarded) -> JsonForwarded {
        let (status, body, error) = match &forwarded.outcome {
            Ok((status, body)) => (Some(status.as_u16()), Some(JsonBody::of(body)), None),
            Err(error) => (None, None, Some(error.clone())),
        };
        JsonForwarded {
            url: forwarded.url.clone(),
            status,
            body,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_keep_their_key_order() {
        let shown = body_text("body", b"{\"z\":1,\"a\":{\"y\":2,\"b\":3}}");
        let (z, a, y, b) = ["\"z\"", "\"a\"", "\"y\"", "\"b\""]
            .map(|k| shown.find(k).expect("key shown"))
            .into();
        assert!(z < a && a < y && y < b, "{shown}");
        assert!(shown.contains("JSON"), "{shown}");
    }

    #[test]
    fn binary_bodies_are_summarized_in_hex() {
        let body: Vec<u8> = (0..=255u8).collect();
        let shown = body_text("body", &body);
        assert!(shown.contains("256 bytes, binary"), "{shown}");
        assert!(shown.contains("00 01 02 03"), "{shown}");
        assert!(
            !shown.contains("40 41 42"),
            "only the first 64 bytes: {shown}"
        );
    }

    #[test]
    fn huge_bodies_show_only_their_start() {
        let mut body = vec![b'a'; SHOW_LIMIT + 1];
        body[PREVIEW_BYTES] = b'Z';
        let shown = body_text("body", &body);
        assert!(shown.contains("too large to show"), "{}", &shown[..200]);
        assert!(!shown.contains('Z'));
    }

    #[test]
    fn text_and_empty_bodies() {
        assert!(body_text("body", b"").contains("body: empty"));
        let shown = body_text("body", b"a=1&b=2");
        assert!(
            shown.contains("7 bytes, text") && shown.contains("    a=1&b=2"),
            "{shown}"
        );
    }

    #[test]
    fn multi_line_json_is_embedded_compact_in_order() {
        let JsonBody::Json(raw) = JsonBody::of(b"{\n  \"z\": 1,\n  \"a\": 2\n}\n") else {
            panic!("JSON body expected");
        };
        assert_eq!(raw.get(), "{\"z\":1,\"a\":2}");
    }
}
