//! The read queries, written once for both databases: every query is built with sqlx's
//! `QueryBuilder`, which writes each database's placeholders, and read back with the
//! mappers of [`super::rows`]. [`impl_reads!`] implements [`super::Reads`] for a store
//! given its read pool and its row mappers.

/// Implements [`crate::store::Reads`] for `$store` on the sqlx database `$db`, reading
/// from `self.$pool` with the mappers of `crate::store::rows::$rows` and opening secrets
/// with `self.key`; `$pending` is the store's pair of backlog queries (the pending count,
/// the oldest due time), which differ where the stores keep their due deliveries.
macro_rules! impl_reads {
    ($store:ty, $db:ty, $pool:ident, $rows:ident, $pending:expr) => {
        #[async_trait::async_trait]
        impl crate::store::Reads for $store {
            async fn get_setting(&self, key: &str) -> crate::store::StoreResult<Option<Vec<u8>>> {
                let mut q = sqlx::QueryBuilder::new("SELECT value FROM settings WHERE key = ");
                q.push_bind(key.to_owned());
                Ok(q.build_query_scalar().fetch_optional(&self.$pool).await?)
            }

            async fn get_site(
                &self,
                id: crate::domain::ids::SiteId,
            ) -> crate::store::StoreResult<Option<crate::domain::models::Site>> {
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM sites WHERE id = ");
                q.push_bind(id.to_string());
                self.fetch_one_of(q, crate::store::rows::$rows::site).await
            }

            async fn list_sites(
                &self,
                page: &crate::store::PageRequest,
            ) -> crate::store::StoreResult<crate::store::Page<crate::domain::models::Site>> {
                let q = sqlx::QueryBuilder::new("SELECT * FROM sites WHERE 1 = 1");
                self.fetch_page(q, page, "id", crate::store::rows::$rows::site, |s| s.id.to_string())
                    .await
            }

            async fn list_api_keys(
                &self,
                site: crate::domain::ids::SiteId,
                page: &crate::store::PageRequest,
            ) -> crate::store::StoreResult<crate::store::Page<crate::domain::models::ApiKey>> {
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM api_keys WHERE site_id = ");
                q.push_bind(site.to_string());
                self.fetch_page(q, page, "id", crate::store::rows::$rows::api_key, |k| k.id.to_string())
                    .await
            }

            async fn get_webhook(
                &self,
                site: crate::domain::ids::SiteId,
                id: crate::domain::ids::WebhookId,
            ) -> crate::store::StoreResult<Option<crate::domain::webhook::Webhook>> {
                let mut q = crate::store::reads::scoped("webhooks", id.to_string(), site);
                q.push(" AND deleted_at IS NULL");
                self.fetch_one_of(q, |row| crate::store::rows::$rows::webhook(row, &self.key))
                    .await
            }

            async fn list_webhooks(
                &self,
                site: crate::domain::ids::SiteId,
                page: &crate::store::PageRequest,
            ) -> crate::store::StoreResult<crate::store::Page<crate::domain::webhook::Webhook>> {
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM webhooks WHERE site_id = ");
                q.push_bind(site.to_string()).push(" AND deleted_at IS NULL");
                let key = &self.key;
                self.fetch_page(
                    q,
                    page,
                    "id",
                    |row| crate::store::rows::$rows::webhook(row, key),
                    |w| w.id.to_string(),
                )
                .await
            }

            async fn count_webhooks(
                &self,
                site: crate::domain::ids::SiteId,
            ) -> crate::store::StoreResult<u64> {
                let mut q = sqlx::QueryBuilder::new("SELECT COUNT(*) FROM webhooks WHERE site_id = ");
                q.push_bind(site.to_string()).push(" AND deleted_at IS NULL");
                let n: i64 = q.build_query_scalar().fetch_one(&self.$pool).await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn get_event(
                &self,
                site: crate::domain::ids::SiteId,
                id: crate::domain::ids::EventId,
            ) -> crate::store::StoreResult<Option<crate::domain::models::Event>> {
                let q = crate::store::reads::scoped("events", id.to_string(), site);
                self.fetch_one_of(q, crate::store::rows::$rows::event).await
            }

            async fn list_events(
                &self,
                site: crate::domain::ids::SiteId,
                filter: &crate::store::EventFilterQuery,
                page: &crate::store::PageRequest,
            ) -> crate::store::StoreResult<crate::store::Page<crate::domain::models::EventSummary>> {
                let q = crate::store::filters::events(site, filter);
                self.fetch_page(q, page, "id", crate::store::rows::$rows::event_summary, |e| {
                    e.id.to_string()
                })
                .await
            }

            async fn get_delivery(
                &self,
                site: crate::domain::ids::SiteId,
                id: crate::domain::ids::DeliveryId,
            ) -> crate::store::StoreResult<Option<crate::domain::models::Delivery>> {
                let q = crate::store::filters::delivery(site, id);
                self.fetch_one_of(q, crate::store::rows::$rows::delivery).await
            }

            async fn list_deliveries(
                &self,
                site: crate::domain::ids::SiteId,
                filter: &crate::store::DeliveryFilter,
                page: &crate::store::PageRequest,
            ) -> crate::store::StoreResult<crate::store::Page<crate::domain::models::Delivery>> {
                let mut q = crate::store::filters::deliveries(site, filter);
                let Some(window) = filter.scan_window else {
                    return self
                        .fetch_page(q, page, "id", crate::store::rows::$rows::delivery, |d| d.id.to_string())
                        .await;
                };
                // The window ends at its last id: matches are looked for at or after it.
                let mut end = crate::store::filters::window_end(site, page.before.as_deref(), window);
                let end: Option<String> = end.build_query_scalar().fetch_optional(&self.$pool).await?;
                if let Some(end) = &end {
                    q.push(" AND id >= ").push_bind(end.clone());
                }
                let mut found = self
                    .fetch_page(q, page, "id", crate::store::rows::$rows::delivery, |d| d.id.to_string())
                    .await?;
                // A window read to its end without filling the page: go on from there.
                if found.next_cursor.is_none() && end.is_some() {
                    found.next_cursor = end;
                }
                Ok(found)
            }

            async fn count_deliveries(
                &self,
                site: crate::domain::ids::SiteId,
                filter: &crate::store::DeliveryFilter,
                cap: u32,
            ) -> crate::store::StoreResult<u64> {
                let mut q = crate::store::filters::count_deliveries(site, filter, cap);
                let n: i64 = q.build_query_scalar().fetch_one(&self.$pool).await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn list_attempts(
                &self,
                site: crate::domain::ids::SiteId,
                delivery: crate::domain::ids::DeliveryId,
                page: &crate::store::PageRequest,
            ) -> crate::store::StoreResult<crate::store::Page<crate::domain::models::Attempt>> {
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT a.* FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.site_id = ",
                );
                q.push_bind(site.to_string())
                    .push(" AND a.delivery_id = ")
                    .push_bind(delivery.to_string());
                self.fetch_page(q, page, "a.id", crate::store::rows::$rows::attempt, |a| a.id.to_string())
                    .await
            }

            async fn attempt_stats(
                &self,
                site: crate::domain::ids::SiteId,
                webhook: crate::domain::ids::WebhookId,
                since: crate::domain::time::Timestamp,
            ) -> crate::store::StoreResult<crate::store::AttemptStats> {
                // The webhook is checked to be the site's, so one site's caller learns
                // nothing of another's.
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status_code >= 200 AND status_code < 300 \
                     THEN 1 ELSE 0 END), 0) FROM attempts WHERE webhook_id = ",
                );
                q.push_bind(webhook.to_string())
                    .push(" AND started_at >= ")
                    .push_bind(since)
                    .push(" AND webhook_id IN (SELECT id FROM webhooks WHERE site_id = ")
                    .push_bind(site.to_string())
                    .push(")");
                let (attempts, succeeded): (i64, i64) =
                    q.build_query_as().fetch_one(&self.$pool).await?;
                Ok(crate::store::AttemptStats {
                    attempts: u64::try_from(attempts).unwrap_or(0),
                    succeeded: u64::try_from(succeeded).unwrap_or(0),
                })
            }

            async fn site_retentions(
                &self,
            ) -> crate::store::StoreResult<Vec<(crate::domain::ids::SiteId, Option<u32>)>> {
                let rows: Vec<(String, Option<i32>)> =
                    sqlx::query_as("SELECT id, retention_days FROM sites ORDER BY id")
                        .fetch_all(&self.$pool)
                        .await?;
                rows.into_iter()
                    .map(|(id, days)| {
                        let id = crate::domain::ids::SiteId::parse(&id)
                            .map_err(crate::store::rows::corrupt)?;
                        let days = days
                            .map(u32::try_from)
                            .transpose()
                            .map_err(crate::store::rows::corrupt)?;
                        Ok((id, days))
                    })
                    .collect()
            }

            async fn get_event_type(
                &self,
                site: crate::domain::ids::SiteId,
                name: &str,
            ) -> crate::store::StoreResult<Option<crate::domain::catalog::EventTypeEntry>> {
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM event_types WHERE site_id = ");
                q.push_bind(site.to_string()).push(" AND name = ").push_bind(name.to_owned());
                self.fetch_one_of(q, crate::store::rows::$rows::event_type_entry).await
            }

            async fn list_event_types(
                &self,
                site: crate::domain::ids::SiteId,
            ) -> crate::store::StoreResult<Vec<crate::domain::catalog::EventTypeEntry>> {
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM event_types WHERE site_id = ");
                q.push_bind(site.to_string()).push(" ORDER BY name");
                let rows = q.build().fetch_all(&self.$pool).await?;
                rows.iter().map(crate::store::rows::$rows::event_type_entry).collect()
            }

            async fn event_type_names(
                &self,
                site: crate::domain::ids::SiteId,
            ) -> crate::store::StoreResult<Vec<String>> {
                let mut q = sqlx::QueryBuilder::new("SELECT name FROM event_types WHERE site_id = ");
                q.push_bind(site.to_string()).push(" ORDER BY name");
                Ok(q.build_query_scalar().fetch_all(&self.$pool).await?)
            }

            async fn backlog(&self) -> crate::store::StoreResult<crate::store::Backlog> {
                use crate::store::sql;
                let (count_pending, oldest_due): (&str, &str) = $pending;
                let pending: i64 = sqlx::query_scalar(count_pending)
                    .fetch_one(&self.$pool)
                    .await?;
                let oldest: Option<i64> = sqlx::query_scalar(oldest_due)
                    .fetch_one(&self.$pool)
                    .await?;
                let states: Vec<(bool, bool, i64)> = sqlx::query_as(sql::COUNT_WEBHOOKS_BY_STATE)
                    .fetch_all(&self.$pool)
                    .await?;
                Ok(crate::store::reads::backlog(pending, oldest, &states))
            }
        }

        impl $store {
            /// Runs a query for at most one row and maps it.
            async fn fetch_one_of<'q, T>(
                &self,
                mut q: sqlx::QueryBuilder<'q, $db>,
                from_row: impl Fn(&<$db as sqlx::Database>::Row) -> crate::store::StoreResult<T>,
            ) -> crate::store::StoreResult<Option<T>> {
                let row = q.build().fetch_optional(&self.$pool).await?;
                row.as_ref().map(from_row).transpose()
            }

            /// Runs a list query (`q` ends inside its `WHERE`), newest first from the
            /// cursor, and maps one more row than the page holds to learn whether a
            /// next page exists.
            async fn fetch_page<'q, T>(
                &self,
                mut q: sqlx::QueryBuilder<'q, $db>,
                page: &crate::store::PageRequest,
                id_col: &str,
                from_row: impl Fn(
                    &<$db as sqlx::Database>::Row,
                ) -> crate::store::StoreResult<T>,
                id: impl Fn(&T) -> String,
            ) -> crate::store::StoreResult<crate::store::Page<T>> {
                crate::store::filters::push_page(&mut q, page, id_col);
                let rows = q.build().fetch_all(&self.$pool).await?;
                let items = rows
                    .iter()
                    .map(from_row)
                    .collect::<crate::store::StoreResult<Vec<_>>>()?;
                Ok(crate::store::rows::page_of(items, page.limit, id))
            }
        }
    };
}
pub(crate) use impl_reads;

/// `SELECT * FROM table WHERE id = … AND site_id = …`: one row of a site's.
pub(crate) fn scoped<'q, DB: sqlx::Database>(
    table: &str,
    id: String,
    site: crate::domain::ids::SiteId,
) -> sqlx::QueryBuilder<'q, DB>
where
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut q = sqlx::QueryBuilder::new(format!("SELECT * FROM {table} WHERE id = "));
    q.push_bind(id)
        .push(" AND site_id = ")
        .push_bind(site.to_string());
    q
}

/// The backlog the three queries of `backlog` found: the pending count, the oldest due
/// time (Unix ms) and the webhooks per (enabled, paused).
pub(crate) fn backlog(
    pending: i64,
    oldest_due: Option<i64>,
    states: &[(bool, bool, i64)],
) -> super::Backlog {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut webhooks = super::WebhookCounts::default();
    for &(enabled, paused, n) in states {
        let slot = match (enabled, paused) {
            (false, _) => &mut webhooks.disabled,
            (true, true) => &mut webhooks.paused,
            (true, false) => &mut webhooks.enabled,
        };
        *slot += count(n);
    }
    super::Backlog {
        pending: count(pending),
        oldest_due: oldest_due.map(crate::domain::time::Timestamp::from_unix_ms),
        webhooks,
    }
}
