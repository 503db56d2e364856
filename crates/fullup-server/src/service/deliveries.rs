//! Deliveries (one per event and webhook), their attempt logs, and the use cases that
//! make them due again: a manual retry, and recovery of a time range's failures.

use super::webhooks::require_enabled;
use super::{Service, ServiceError, ServiceResult};
use crate::domain::ids::DeliveryId;
use crate::domain::models::{Attempt, Delivery, Site};
use crate::domain::time::Timestamp;
use crate::domain::webhook::Webhook;
use crate::metrics::StoreOp;
use crate::store::{DeliveryFilter, Page, PageRequest, Recovery};

impl Service {
    /// The delivery `id` of `site`.
    pub async fn delivery(&self, site: &Site, id: DeliveryId) -> ServiceResult<Delivery> {
        self.counted(StoreOp::Read, self.store.get_delivery(site.id, id).await)?
            .ok_or_else(|| ServiceError::NotFound(format!("delivery {id}")))
    }

    /// A site's deliveries matching `filter`, newest first.
    pub async fn deliveries(
        &self,
        site: &Site,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> ServiceResult<Page<Delivery>> {
        Ok(self.counted(
            StoreOp::Read,
            self.store.list_deliveries(site.id, filter, page).await,
        )?)
    }

    /// How many of a site's deliveries match `filter`, counting no further than `cap`
    /// (so the answer costs at most `cap` index entries, whatever the backlog).
    pub async fn count_deliveries(
        &self,
        site: &Site,
        filter: &DeliveryFilter,
        cap: u32,
    ) -> ServiceResult<u64> {
        Ok(self.counted(
            StoreOp::Read,
            self.store.count_deliveries(site.id, filter, cap).await,
        )?)
    }

    /// A delivery's attempts, newest first.
    pub async fn attempts(
        &self,
        delivery: &Delivery,
        page: &PageRequest,
    ) -> ServiceResult<Page<Attempt>> {
        Ok(self.counted(
            StoreOp::Read,
            self.store
                .list_attempts(delivery.site_id, delivery.id, page)
                .await,
        )?)
    }

    /// Attempts `delivery` again now, whatever its state (a replay when it had
    /// succeeded); refused while its webhook is disabled, and for good once it is
    /// deleted.
    pub async fn retry(&self, delivery: &Delivery) -> ServiceResult<Delivery> {
        let webhook = self.counted(
            StoreOp::Read,
            self.store
                .get_webhook(delivery.site_id, delivery.webhook_id)
                .await,
        )?;
        let Some(webhook) = webhook else {
            return Err(ServiceError::conflict(
                "webhook_deleted",
                format!(
                    "webhook {} was deleted: its deliveries are kept for the record and are not attempted again",
                    delivery.webhook_id
                ),
            ));
        };
        require_enabled(&webhook)?;
        let retried = self
            .counted(
                StoreOp::Write,
                self.store.retry_delivery(delivery, self.clock.now()).await,
            )?
            .ok_or_else(|| ServiceError::NotFound(format!("delivery {}", delivery.id)))?;
        self.wake_dispatcher();
        Ok(retried)
    }

    /// Makes the failed deliveries of `webhook` created in `[since, until)` (until now
    /// when absent) due now; returns how many.
    pub async fn recover(
        &self,
        webhook: &Webhook,
        since: Timestamp,
        until: Option<Timestamp>,
    ) -> ServiceResult<u64> {
        let now = self.clock.now();
        let until = until.unwrap_or(now + std::time::Duration::from_millis(1));
        if since >= until {
            return Err(ServiceError::invalid(
                "invalid_time_range",
                "since must be before until",
            ));
        }
        let recovered = self.counted(
            StoreOp::Write,
            self.store
                .recover_deliveries(&Recovery {
                    site: webhook.site_id,
                    webhook: webhook.id,
                    since,
                    until,
                    now,
                })
                .await,
        )?;
        self.wake_dispatcher();
        Ok(recovered)
    }
}
