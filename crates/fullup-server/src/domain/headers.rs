//! Custom headers a webhook sends with every attempt, such as a receiver's API gateway
//! key: parsed once, so a webhook can only hold headers that are valid HTTP, none that
//! would change how the request travels (hop-by-hop headers) and none the service sets
//! itself (its signatures, the event's metadata, the body's framing).
//!
//! They are not signed: the signatures cover the body only (see `docs/protocol.md`).

use std::collections::BTreeMap;
use std::fmt;

/// Custom headers a webhook may hold at most.
pub const MAX_HEADERS: usize = 20;
/// The longest value of one custom header, in bytes.
pub const MAX_HEADER_VALUE: usize = 1024;
/// The most bytes all of a webhook's custom headers may take (names and values): with
/// the service's own headers they stay within the attempt log's 8 KiB, so every header
/// sent is shown there.
pub const MAX_HEADERS_BYTES: usize = 4096;

/// Hop-by-hop headers (RFC 9110 §7.6.1, and `proxy-*`): they describe one connection,
/// not the request, and the HTTP client manages them.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers the service sets on every attempt (besides the `fullup-*` and `webhook-*`
/// families): a custom one of these names would contradict the service's own.
const OURS: [&str; 4] = ["content-type", "content-length", "host", "user-agent"];

/// Why custom headers were refused; each names the header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The name is not an HTTP token.
    #[error(
        "header name `{0}` is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
    )]
    InvalidName(String),
    /// The value holds a character HTTP does not allow (a control character, a line
    /// break, or non-ASCII).
    #[error("the value of header `{0}` must be visible ASCII characters, spaces and tabs only")]
    InvalidValue(String),
    /// A hop-by-hop header, which the HTTP client manages.
    #[error(
        "header `{0}` is hop-by-hop (it describes one connection); the service's HTTP client sets it"
    )]
    HopByHop(String),
    /// A header the service sets itself.
    #[error(
        "header `{0}` is set by the service on every delivery (fullup-*, webhook-*, content-type, content-length, host, user-agent) and cannot be replaced"
    )]
    Reserved(String),
    /// The same name twice (names are case-insensitive).
    #[error("header `{0}` is given twice (header names are case-insensitive)")]
    Duplicate(String),
    /// A value longer than [`MAX_HEADER_VALUE`].
    #[error("the value of header `{0}` is longer than {MAX_HEADER_VALUE} bytes")]
    ValueTooLong(String),
    /// More than [`MAX_HEADERS`] headers.
    #[error("a webhook may have at most {MAX_HEADERS} custom headers")]
    TooMany,
    /// More than [`MAX_HEADERS_BYTES`] bytes of names and values in all.
    #[error("custom headers may take at most {MAX_HEADERS_BYTES} bytes in all (names and values)")]
    TooLarge,
}

/// A webhook's custom headers, valid and allowed, by lowercase name.
///
/// `Debug` shows the names only: values often carry a receiver's credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CustomHeaders(BTreeMap<String, String>);

impl CustomHeaders {
    /// Parses `name: value` pairs; names are kept lowercase (HTTP/2 sends them so).
    pub fn parse<I, N, V>(pairs: I) -> Result<Self, HeaderError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<str>,
        V: Into<String>,
    {
        let mut headers = BTreeMap::new();
        let mut bytes = 0;
        for (name, value) in pairs {
            let (name, value) = (name.as_ref(), value.into());
            let shown = || name.chars().take(64).collect::<String>();
            let lower = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HeaderError::InvalidName(shown()))?
                .as_str()
                .to_owned();
            refuse_forbidden(&lower)?;
            if value.len() > MAX_HEADER_VALUE {
                return Err(HeaderError::ValueTooLong(lower));
            }
            // Visible ASCII, space and tab: what `HeaderValue::from_str` takes, less the
            // obsolete non-ASCII bytes, which receivers decode differently.
            if !value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            {
                return Err(HeaderError::InvalidValue(lower));
            }
            bytes += lower.len() + value.len();
            if headers.insert(lower.clone(), value).is_some() {
                return Err(HeaderError::Duplicate(lower));
            }
            if headers.len() > MAX_HEADERS {
                return Err(HeaderError::TooMany);
            }
        }
        if bytes > MAX_HEADERS_BYTES {
            return Err(HeaderError::TooLarge);
        }
        Ok(Self(headers))
    }

    /// The headers, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The stored form: a JSON object of name to value.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads the stored form back, applying the rules again.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let map: BTreeMap<String, String> =
            serde_json::from_str(json).map_err(|e| e.to_string())?;
        Self::parse(map).map_err(|e| e.to_string())
    }
}

impl fmt::Debug for CustomHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

fn refuse_forbidden(lower: &str) -> Result<(), HeaderError> {
    if HOP_BY_HOP.contains(&lower) || lower.starts_with("proxy-") {
        return Err(HeaderError::HopByHop(lower.to_owned()));
    }
    if OURS.contains(&lower) || lower.starts_with("fullup-") || lower.starts_with("webhook-") {
        return Err(HeaderError::Reserved(lower.to_owned()));
    }
    Ok(())
}

/// Whether a header's value is a credential, shown as `[redacted]` in the attempt log:
/// `authorization`, `cookie`, and names that say `token`, `secret`, `key`, `password`
/// or `auth`.
pub fn is_sensitive(lower_name: &str) -> bool {
    lower_name == "cookie"
        || ["auth", "token", "secret", "key", "password"]
            .iter()
            .any(|word| lower_name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> Result<CustomHeaders, HeaderError> {
        CustomHeaders::parse([(name, value)])
    }

    #[test]
    fn valid_headers_are_kept_lowercase() {
        let h = CustomHeaders::parse([("X-Tenant", "acme"), ("Authorization", "Bearer t")])
            .expect("valid");
        let pairs: Vec<_> = h.iter().collect();
        assert_eq!(pairs, [("authorization", "Bearer t"), ("x-tenant", "acme")]);
        assert_eq!(CustomHeaders::from_json(&h.to_json()), Ok(h.clone()));
        assert_eq!(format!("{h:?}"), r#"{"authorization", "x-tenant"}"#);
    }

    #[test]
    fn forbidden_and_invalid_headers_are_refused_by_name() {
        for name in [
            "Connection",
            "keep-alive",
            "Proxy-Authorization",
            "TE",
            "trailer",
            "Transfer-Encoding",
            "upgrade",
        ] {
            assert_eq!(
                one(name, "x"),
                Err(HeaderError::HopByHop(name.to_lowercase()))
            );
        }
        for name in [
            "Fullup-Signature",
            "webhook-id",
            "Content-Type",
            "content-length",
            "Host",
            "User-Agent",
        ] {
            assert_eq!(
                one(name, "x"),
                Err(HeaderError::Reserved(name.to_lowercase()))
            );
        }
        assert!(matches!(
            one("bad name", "x"),
            Err(HeaderError::InvalidName(_))
        ));
        assert!(matches!(one("", "x"), Err(HeaderError::InvalidName(_))));
        for value in ["a\r\nx-injected: 1", "nul\0", "é"] {
            assert_eq!(
                one("x-a", value),
                Err(HeaderError::InvalidValue("x-a".into()))
            );
        }
        assert_eq!(
            CustomHeaders::parse([("X-A", "1"), ("x-a", "2")]),
            Err(HeaderError::Duplicate("x-a".into()))
        );
    }

    #[test]
    fn count_and_size_are_bounded() {
        let long = "v".repeat(MAX_HEADER_VALUE);
        assert!(one("x-a", &long).is_ok());
        assert_eq!(
            one("x-a", &format!("{long}v")),
            Err(HeaderError::ValueTooLong("x-a".into()))
        );
        let many = |n: usize| (0..n).map(|i| (format!("x-{i}"), "v".to_owned()));
        assert!(CustomHeaders::parse(many(MAX_HEADERS)).is_ok());
        assert_eq!(
            CustomHeaders::parse(many(MAX_HEADERS + 1)),
            Err(HeaderError::TooMany)
        );
        let big = (0..5).map(|i| (format!("x-{i}"), long.clone()));
        assert_eq!(CustomHeaders::parse(big), Err(HeaderError::TooLarge));
    }

    #[test]
    fn credentials_are_recognised() {
        for name in [
            "authorization",
            "cookie",
            "x-api-key",
            "x-auth-token",
            "x-secret",
        ] {
            assert!(is_sensitive(name), "{name}");
        }
        assert!(!is_sensitive("x-tenant"));
    }
}
