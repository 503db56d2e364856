//! The list queries' filters, written once for every SQL dialect (sqlx's
//! `QueryBuilder` numbers the placeholders as each database wants them).

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::{DeliveryFilter, EventFilterQuery, PageRequest};
use crate::domain::ids::SiteId;
use crate::domain::time::Timestamp;

/// `SELECT * FROM events WHERE site_id = … AND …`, ready for paging.
pub(crate) fn events<'q, DB: Database>(site: SiteId, f: &EventFilterQuery) -> QueryBuilder<'q, DB>
where
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new("SELECT * FROM events WHERE site_id = ");
    q.push_bind(site.to_string());
    if let Some(t) = &f.event_type {
        q.push(" AND type = ").push_bind(t.clone());
    }
    push_created(&mut q, f.since, f.until);
    q
}

/// `SELECT * FROM deliveries WHERE site_id = … AND …`, ready for paging.
pub(crate) fn deliveries<'q, DB: Database>(site: SiteId, f: &DeliveryFilter) -> QueryBuilder<'q, DB>
where
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new("SELECT * FROM deliveries WHERE site_id = ");
    q.push_bind(site.to_string());
    if let Some(e) = f.event_id {
        q.push(" AND event_id = ").push_bind(e.to_string());
    }
    if let Some(w) = f.webhook_id {
        q.push(" AND webhook_id = ").push_bind(w.to_string());
    }
    if let Some(s) = f.state {
        q.push(" AND state = ").push_bind(s.as_str().to_owned());
    }
    push_created(&mut q, f.since, f.until);
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
