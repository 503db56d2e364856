//! Prefixed, time-sortable identifiers (`site_01J…`, `wh_01J…`).
//!
//! A ULID after a type prefix: ids sort by creation time (cursor pagination relies on
//! it), a glance tells what an id names, and one kind cannot be passed where another is
//! expected.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

use super::time::Timestamp;

/// Why a string is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind} id: expected `{prefix}` followed by a 26-character ULID")]
pub struct IdError {
    /// What kind of id was expected.
    pub kind: &'static str,
    /// The prefix that id kind carries.
    pub prefix: &'static str,
    /// The rejected input, cut to 64 characters.
    pub value: String,
}

/// One generator for the process: within a millisecond it increments the random part
/// instead of drawing a new one, so "newest first" is creation order.
static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());

fn next_ulid(at: Timestamp) -> Ulid {
    let ms = u64::try_from(at.unix_ms()).unwrap_or(0);
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    GENERATOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .generate_from_datetime(time)
        .unwrap_or_else(|_| Ulid::from_parts(ms, rand::random()))
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Ulid);

        impl $name {
            /// The prefix this kind of id carries.
            pub const PREFIX: &'static str = $prefix;

            /// A new id for something created at `at`; ids made in one
            /// millisecond by this process still sort in creation order.
            pub fn new(at: Timestamp) -> Self {
                Self(next_ulid(at))
            }

            /// The lowest id of the millisecond `at`: an id made at `at` or later sorts
            /// at or above it, so `id < floor(t)` selects things created before `t`
            /// from an index range (never a later one: an id's time is its creation
            /// time, or later when the clock stepped back).
            pub fn floor(at: Timestamp) -> Self {
                Self(Ulid::from_parts(u64::try_from(at.unix_ms()).unwrap_or(0), 0))
            }

            /// The id of time `at` with `random` as its random part, bypassing the
            /// process's generator: for seeding a store with rows of a chosen age
            /// (benchmarks, tests), never for new records of the service.
            pub fn from_parts(at: Timestamp, random: u128) -> Self {
                Self(Ulid::from_parts(u64::try_from(at.unix_ms()).unwrap_or(0), random))
            }

            /// Parses `site_01J…`-style text.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                s.strip_prefix($prefix)
                    .and_then(|rest| Ulid::from_string(rest).ok())
                    .map(Self)
                    .ok_or_else(|| IdError {
                        kind: $kind,
                        prefix: $prefix,
                        value: s.chars().take(64).collect(),
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!("A ", $kind, " id: `", $prefix, "` followed by a ULID.")))
                    .examples([concat!($prefix, "01JDQ3W5Z8K9T2M4N6P8R0S2V4")])
                    .pattern(Some(concat!("^", $prefix, "[0-7][0-9A-HJKMNP-TV-Z]{25}$")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

prefixed_id!(
    /// A site: the tenant that owns webhooks, events and API keys.
    SiteId, "site_", "site"
);
prefixed_id!(
    /// A webhook: one receiver URL with its secret and event filter.
    WebhookId, "wh_", "webhook"
);
prefixed_id!(
    /// An event ingested for a site.
    EventId, "evt_", "event"
);
prefixed_id!(
    /// One event's delivery to one webhook.
    DeliveryId, "dlv_", "delivery"
);
prefixed_id!(
    /// One HTTP attempt of a delivery.
    AttemptId, "att_", "attempt"
);
prefixed_id!(
    /// A site-scoped API key.
    ApiKeyId, "key_", "API key"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_time() {
        let a = EventId::new(Timestamp::from_unix_ms(1_000));
        let b = EventId::new(Timestamp::from_unix_ms(2_000));
        assert!(a < b);
        assert!(a.to_string().starts_with("evt_"));
        assert_eq!(EventId::parse(&a.to_string()), Ok(a));
        let same_ms: Vec<EventId> = (0..100)
            .map(|_| EventId::new(Timestamp::from_unix_ms(5_000)))
            .collect();
        assert!(
            same_ms.windows(2).all(|w| w[0] < w[1]),
            "ids of one millisecond sort in creation order"
        );
    }

    #[test]
    fn wrong_prefix_is_refused_with_the_expected_kind() {
        let site = SiteId::new(Timestamp::from_unix_ms(1)).to_string();
        let err = WebhookId::parse(&site).expect_err("a site id is not a webhook id");
        assert!(err.to_string().contains("webhook id"), "{err}");
        assert!(WebhookId::parse("wh_not-a-ulid").is_err());
    }
}
