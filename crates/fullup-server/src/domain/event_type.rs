//! Event type names and the filters webhooks subscribe with.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest event type name accepted.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// Why an event type or filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventTypeError {
    /// The name was empty.
    #[error("event type is empty: use a name such as `form.submitted`")]
    Empty,
    /// The name was longer than [`MAX_EVENT_TYPE_LEN`].
    #[error("event type is longer than {MAX_EVENT_TYPE_LEN} characters")]
    TooLong,
    /// The name held a character outside `A-Z a-z 0-9 . _ -`.
    #[error(
        "event type `{0}` may only hold letters, digits, `.`, `_` and `-`, with no empty segment"
    )]
    Invalid(String),
}

/// A valid event type name, such as `form.submitted`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventType(String);

impl EventType {
    /// Parses a name: dot-separated non-empty segments of `A-Z a-z 0-9 _ -`.
    pub fn parse(s: &str) -> Result<Self, EventTypeError> {
        validate_segments(s, false)?;
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate_segments(s: &str, allow_trailing_star: bool) -> Result<(), EventTypeError> {
    if s.is_empty() {
        return Err(EventTypeError::Empty);
    }
    if s.len() > MAX_EVENT_TYPE_LEN {
        return Err(EventTypeError::TooLong);
    }
    let body = match s.strip_suffix(".*") {
        Some(prefix) if allow_trailing_star => prefix,
        _ => s,
    };
    let ok = body.split('.').all(|seg| {
        !seg.is_empty()
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(EventTypeError::Invalid(s.chars().take(64).collect()))
    }
}

/// One entry of a webhook's event filter: `*`, a prefix such as `form.*`, or an exact name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventFilter {
    /// Every event type.
    All,
    /// Every type starting with this prefix followed by a dot (`form.*` keeps `form.`).
    Prefix(String),
    /// Exactly this type.
    Exact(String),
}

impl EventFilter {
    /// Parses `*`, `segment.*` or an exact event type.
    pub fn parse(s: &str) -> Result<Self, EventTypeError> {
        if s == "*" {
            return Ok(Self::All);
        }
        validate_segments(s, true)?;
        Ok(match s.strip_suffix('*') {
            Some(prefix) => Self::Prefix(prefix.to_owned()),
            None => Self::Exact(s.to_owned()),
        })
    }

    /// Whether an event of type `event_type` passes this filter.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
            Self::Exact(name) => name == event_type,
        }
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
            Self::Exact(name) => f.write_str(name),
        }
    }
}

impl Serialize for EventFilter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EventFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether any filter of a webhook lets `event_type` through.
pub fn any_matches(filters: &[EventFilter], event_type: &str) -> bool {
    filters.iter().any(|f| f.matches(event_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_as_documented() {
        let all = EventFilter::parse("*").expect("star");
        let form = EventFilter::parse("form.*").expect("prefix");
        let exact = EventFilter::parse("form.submitted").expect("exact");
        assert!(all.matches("anything"));
        assert!(form.matches("form.submitted"));
        assert!(form.matches("form.a.b"));
        assert!(!form.matches("formula.x"));
        assert!(!form.matches("form"));
        assert!(exact.matches("form.submitted"));
        assert!(!exact.matches("form.submitted.v2"));
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "a..b", ".a", "a.", "a b", "a*", "*.a", "é", "a.*.b"] {
            assert!(EventFilter::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(EventType::parse("form.*").is_err());
        assert!(EventType::parse(&"a".repeat(129)).is_err());
        assert!(EventType::parse("user-signed_up.v2").is_ok());
    }
}
