//! Points in time as the service keeps them: Unix milliseconds in a type of their own,
//! so that time is added to with a [`Duration`] and never confused with a count, and the
//! overflow rules (saturate, never wrap or panic) live in one place.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point in time to the millisecond, stored as Unix milliseconds (`BIGINT`/`INTEGER`).
///
/// Arithmetic saturates at the ends of `i64`: a retry delay or grace period cannot wrap
/// a time into the past.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);

    /// The time `ms` milliseconds after the Unix epoch.
    pub const fn from_unix_ms(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch: the stored form.
    pub const fn unix_ms(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch, rounded down (signature timestamps).
    pub const fn unix_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// How long after `earlier` this is; zero when it is not after it.
    pub fn since(self, earlier: Self) -> Duration {
        u64::try_from(self.0.saturating_sub(earlier.0))
            .map_or(Duration::ZERO, Duration::from_millis)
    }

    /// RFC 3339 UTC with milliseconds (`2026-11-29T01:02:03.004Z`), as the API shows times.
    pub fn to_rfc3339(self) -> String {
        self.datetime()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// RFC 3339 UTC to the second (`2026-11-29T01:02:03Z`), as messages name times.
    pub fn to_rfc3339_secs(self) -> String {
        self.datetime()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// Parses an RFC 3339 time with any offset (`2026-01-31T12:00:00+01:00`).
    pub fn parse_rfc3339(text: &str) -> Result<Self, chrono::ParseError> {
        chrono::DateTime::parse_from_rfc3339(text).map(|t| Self(t.timestamp_millis()))
    }

    fn datetime(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }
}

/// Milliseconds of `d`, saturating at `i64::MAX`.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Self;

    fn add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(millis(d)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Self;

    fn sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(millis(d)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl<DB: sqlx::Database> sqlx::Type<DB> for Timestamp
where
    i64: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <i64 as sqlx::Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <i64 as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for Timestamp
where
    i64: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        self.0.encode_by_ref(buf)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for Timestamp
where
    i64: sqlx::Decode<'r, DB>,
{
    fn decode(
        value: <DB as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        i64::decode(value).map(Self)
    }
}

impl rusqlite::ToSql for Timestamp {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.0.into())
    }
}

impl rusqlite::types::FromSql for Timestamp {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        i64::column_result(value).map(Self)
    }
}

impl From<Timestamp> for rusqlite::types::Value {
    fn from(t: Timestamp) -> Self {
        Self::Integer(t.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Timestamp::from_unix_ms(1_000);
        assert_eq!(t + Duration::from_secs(1), Timestamp::from_unix_ms(2_000));
        assert_eq!(t - Duration::from_secs(2), Timestamp::from_unix_ms(-1_000));
        assert_eq!(
            t + Duration::MAX,
            Timestamp::from_unix_ms(i64::MAX),
            "a huge delay parks at the end of time, not before the epoch"
        );
        assert_eq!(
            Timestamp::from_unix_ms(i64::MIN) - Duration::from_secs(1),
            Timestamp::from_unix_ms(i64::MIN)
        );
    }

    #[test]
    fn since_is_zero_for_a_later_time() {
        let (a, b) = (
            Timestamp::from_unix_ms(1_000),
            Timestamp::from_unix_ms(3_500),
        );
        assert_eq!(b.since(a), Duration::from_millis(2_500));
        assert_eq!(a.since(b), Duration::ZERO);
    }

    #[test]
    fn formats_and_parses_rfc3339() {
        let t = Timestamp::from_unix_ms(1_700_000_000_123);
        assert_eq!(t.to_rfc3339(), "2023-11-14T22:13:20.123Z");
        assert_eq!(t.to_rfc3339_secs(), "2023-11-14T22:13:20Z");
        assert_eq!(t.unix_secs(), 1_700_000_000);
        assert_eq!(
            Timestamp::parse_rfc3339("2023-11-14T23:13:20.123+01:00"),
            Ok(t)
        );
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }
}
