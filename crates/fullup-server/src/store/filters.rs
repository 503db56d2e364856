//! The list queries' filters, written once for every SQL dialect (sqlx's
//! `QueryBuilder` numbers the placeholders as each database wants them).

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::{DeliveryFilter, EventFilterQuery, PageRequest};
use crate::domain::ids::SiteId;
use crate::domain::time::Timestamp;

/// Event summaries: the columns of `events` but the payload, which a page of 250
/// could make 64 MiB, and its size in bytes (`OCTET_LENGTH`: PostgreSQL, and SQLite
/// since 3.43; a `BIGINT`, which both read as `i64`), `WHERE site_id = … AND …`, ready
/// for paging.
pub(crate) fn events<'q, DB: Database>(site: SiteId, f: &EventFilterQuery) -> QueryBuilder<'q, DB>
where
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let equal = [("type", f.event_type.clone())];
    of_site(
        "SELECT id, site_id, type, created_at, idempotency_key, \
         CAST(OCTET_LENGTH(payload) AS BIGINT) AS payload_bytes FROM events WHERE site_id = ",
        site,
        equal,
        f.since,
        f.until,
    )
}

/// What a delivery read selects: its row, and whether its webhook was deleted (one
/// probe of the webhook's primary key per delivery).
pub(crate) const DELIVERY_COLUMNS: &str = "SELECT deliveries.*, EXISTS (SELECT 1 FROM webhooks w \
     WHERE w.id = deliveries.webhook_id AND w.deleted_at IS NOT NULL) AS webhook_deleted \
     FROM deliveries WHERE site_id = ";

/// The deliveries of `site` matching `f` (`WHERE site_id = … AND …`), ready for paging.
pub(crate) fn deliveries<'q, DB: Database>(site: SiteId, f: &DeliveryFilter) -> QueryBuilder<'q, DB>
where
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    deliveries_as(DELIVERY_COLUMNS, site, f)
}

/// The delivery `id` of `site`.
pub(crate) fn delivery<'q, DB: Database>(
    site: SiteId,
    id: crate::domain::ids::DeliveryId,
) -> QueryBuilder<'q, DB>
where
    String: Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(DELIVERY_COLUMNS);
    q.push_bind(site.to_string())
        .push(" AND id = ")
        .push_bind(id.to_string());
    q
}

/// The deliveries of `site` older than `before` (all when None) that a scan window of
/// `window` rows ends with: `SELECT id … ORDER BY id DESC LIMIT 1 OFFSET window - 1`,
/// None when the site has fewer.
pub(crate) fn window_end<'q, DB: Database>(
    site: SiteId,
    before: Option<&str>,
    window: u32,
) -> QueryBuilder<'q, DB>
where
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new("SELECT id FROM deliveries WHERE site_id = ");
    q.push_bind(site.to_string());
    if let Some(before) = before {
        q.push(" AND id < ").push_bind(before.to_owned());
    }
    q.push(" ORDER BY id DESC LIMIT 1 OFFSET ")
        .push_bind(i64::from(window.max(1)) - 1);
    q
}

/// How many deliveries match `f`, counting at most `cap` (one index range, bounded
/// whatever the backlog).
pub(crate) fn count_deliveries<'q, DB: Database>(
    site: SiteId,
    f: &DeliveryFilter,
    cap: u32,
) -> QueryBuilder<'q, DB>
where
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let mut q = deliveries_as(
        "SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE site_id = ",
        site,
        f,
    );
    q.push(" LIMIT ")
        .push_bind(i64::from(cap))
        .push(") counted");
    q
}

/// `select` (which ends with `WHERE site_id = `) then the site and `f`'s conditions.
fn deliveries_as<'q, DB: Database>(
    select: &str,
    site: SiteId,
    f: &DeliveryFilter,
) -> QueryBuilder<'q, DB>
where
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let equal = [
        ("event_id", f.event_id.map(|e| e.to_string())),
        ("webhook_id", f.webhook_id.map(|w| w.to_string())),
        ("state", f.state.map(|s| s.as_str().to_owned())),
    ];
    let mut q = of_site(select, site, equal, f.since, f.until);
    if let Some(since) = f.since {
        // A delivery's id is a ULID of its creation time or later (ids made in one
        // millisecond count up from the previous one), so those created since `since`
        // lie at or above the lowest id of that millisecond: one range of the index.
        let ms = u64::try_from(since.unix_ms()).unwrap_or(0);
        let lowest = ulid::Ulid::from_parts(ms, 0);
        q.push(" AND id >= ").push_bind(format!(
            "{}{lowest}",
            crate::domain::ids::DeliveryId::PREFIX
        ));
    }
    if let Some(event_type) = &f.event_type {
        // Each delivery's event by its key: the deliveries are read newest first
        // anyway, where a list of the type's events could be most of the site's.
        q.push(
            " AND EXISTS (SELECT 1 FROM events e WHERE e.id = deliveries.event_id AND e.type = ",
        )
        .push_bind(event_type.clone())
        .push(")");
    }
    q
}

/// `select` (ending with `WHERE site_id = `) the site, each `equal` column that has a
/// value equal to it, created in `[since, until)` where given.
fn of_site<'q, DB: Database>(
    select: &str,
    site: SiteId,
    equal: impl IntoIterator<Item = (&'static str, Option<String>)>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> QueryBuilder<'q, DB>
where
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(select.to_owned());
    q.push_bind(site.to_string());
    for (column, value) in equal {
        if let Some(value) = value {
            q.push(format!(" AND {column} = ")).push_bind(value);
        }
    }
    push_created(&mut q, since, until);
    q
}

fn push_created<'q, DB: Database>(
    q: &mut QueryBuilder<'q, DB>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) where
    i64: Encode<'q, DB> + Type<DB>,
{
    if let Some(since) = since {
        q.push(" AND created_at >= ").push_bind(since);
    }
    if let Some(until) = until {
        q.push(" AND created_at < ").push_bind(until);
    }
}

/// Ends a list query (`q` ends inside its `WHERE`): newest first, strictly older than
/// the cursor, one more row than the page holds (see [`super::rows::page_of`]).
pub(crate) fn push_page<'q, DB: Database>(
    q: &mut QueryBuilder<'q, DB>,
    page: &PageRequest,
    id_col: &str,
) where
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    if let Some(before) = &page.before {
        q.push(format!(" AND {id_col} < "))
            .push_bind(before.clone());
    }
    q.push(format!(" ORDER BY {id_col} DESC LIMIT "))
        .push_bind(i64::from(page.limit) + 1);
}
