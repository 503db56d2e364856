//! Reading rows back into records where both dialects store the same types, and the one
//! way list pages are cut; each store keeps only the mappers its column types need.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Page, StoreError, StoreResult};
use crate::domain::ids::{ApiKeyId, EventId, SiteId};
use crate::domain::models::{ApiKey, Event, Site};

/// A stored value that does not read back (corruption or a newer schema).
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A text column parsed into an id.
pub(crate) fn parse_id<R, T, E>(
    row: &R,
    col: &str,
    parse: fn(&str) -> Result<T, E>,
) -> StoreResult<T>
where
    R: Row,
    E: std::fmt::Display,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let text: String = row.try_get(col)?;
    parse(&text).map_err(corrupt)
}

/// A `sites` row.
pub(crate) fn site_from_row<R>(row: &R) -> StoreResult<Site>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Site {
        id: parse_id(row, "id", SiteId::parse)?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// An `api_keys` row.
pub(crate) fn api_key_from_row<R>(row: &R) -> StoreResult<ApiKey>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let hash: Vec<u8> = row.try_get("token_hash")?;
    Ok(ApiKey {
        id: parse_id(row, "id", ApiKeyId::parse)?,
        site_id: parse_id(row, "site_id", SiteId::parse)?,
        name: row.try_get("name")?,
        token_hash: hash
            .try_into()
            .map_err(|_| corrupt("token hash is not 32 bytes"))?,
        created_at: row.try_get("created_at")?,
    })
}

/// An `events` row.
pub(crate) fn event_from_row<R>(row: &R) -> StoreResult<Event>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Event {
        id: parse_id(row, "id", EventId::parse)?,
        site_id: parse_id(row, "site_id", SiteId::parse)?,
        event_type: row.try_get("type")?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
        idempotency_key: row.try_get("idempotency_key")?,
    })
}

/// A page from `items`, which holds up to one more than `limit` (the query asks for one
/// more to learn whether a next page exists).
pub(crate) fn page_of<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(id)
    } else {
        None
    };
    Page { items, next_cursor }
}
