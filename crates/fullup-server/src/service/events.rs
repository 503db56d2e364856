//! Ingest and the event log.
//!
//! Ingest answers only after the event and every delivery row it fans out to are
//! committed in one transaction: there is no second write a crash could lose.

use std::sync::Arc;
use std::time::Instant;

use super::{Service, ServiceError, ServiceResult};
use crate::domain::canonical_json::{CanonicalJson, canonicalize};
use crate::domain::event_type::EventType;
use crate::domain::ids::{EventId, SiteId, WebhookId};
use crate::domain::models::{Event, EventSummary, Site};
use crate::domain::operational;
use crate::domain::webhook::Webhook;
use crate::metrics::StoreOp;
use crate::store::{EventFilterQuery, IngestOutcome, NewEvent, Page, PageRequest};

use super::webhooks::require_enabled;

/// The event type of test deliveries.
pub const PING_EVENT_TYPE: &str = "ping";
/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// An event to accept, parsed.
#[derive(Debug)]
pub struct NewEventRequest {
    /// Its type.
    pub event_type: EventType,
    /// Its data, canonical.
    pub data: CanonicalJson,
    /// The client's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// When its handler started, for `fullup_ingest_duration_seconds` (request to commit).
    pub received: Instant,
}

impl Service {
    /// Stores an event of `site` with its deliveries and wakes the dispatcher. The
    /// service's own event types ([`operational::TYPES`]) are refused: only the service
    /// tells those, so a receiver can trust them. The event is checked against the
    /// site's catalog first (its type's schema; strict mode).
    pub async fn ingest(&self, site: &Site, req: NewEventRequest) -> ServiceResult<EventId> {
        if operational::is_operational(req.event_type.as_str()) {
            return Err(ServiceError::invalid(
                "reserved_event_type",
                format!(
                    "`{}` is one of the service's own event types ({}); send your events under other names",
                    req.event_type.as_str(),
                    operational::TYPES.join(", ")
                ),
            ));
        }
        self.check_against_catalog(site, &req.event_type, &req.data)
            .await?;
        self.store_event(site.id, req, None).await
    }

    /// Sends a `ping` event to `webhook` alone, whatever its filters.
    pub async fn send_test(&self, webhook: &Webhook) -> ServiceResult<EventId> {
        require_enabled(webhook)?;
        let data = serde_json::json!({ "webhook_id": webhook.id.to_string() }).to_string();
        let data = canonicalize(data.as_bytes())
            .map_err(|e| ServiceError::invalid("invalid_data", e.to_string()))?;
        let event_type = EventType::parse(PING_EVENT_TYPE)
            .map_err(|e| ServiceError::invalid("invalid_event_type", e.to_string()))?;
        let req = NewEventRequest {
            event_type,
            data,
            idempotency_key: None,
            received: Instant::now(),
        };
        self.store_event(webhook.site_id, req, Some(webhook.id))
            .await
    }

    async fn store_event(
        &self,
        site: SiteId,
        req: NewEventRequest,
        only_webhook: Option<WebhookId>,
    ) -> ServiceResult<EventId> {
        let received = req.received;
        let mut new = NewEvent::new(
            site,
            req.event_type,
            &req.data,
            self.clock.now(),
            req.idempotency_key,
            only_webhook,
        );
        if let Some(to) = &self.hand_off {
            new = new.handing_off_to(Arc::clone(to));
        }
        let outcome = self.counted(StoreOp::Ingest, self.store.ingest(new).await)?;
        match outcome {
            IngestOutcome::Created {
                event_id,
                deliveries,
            } => {
                self.metrics.event_ingested(received.elapsed());
                // With a hand-off, the dispatcher got what it admitted and was woken
                // for the rest.
                if deliveries > 0 && self.hand_off.is_none() {
                    self.wake_dispatcher();
                }
                Ok(event_id)
            }
            IngestOutcome::Duplicate {
                event_id,
                same_request: true,
            } => Ok(event_id),
            IngestOutcome::Duplicate {
                event_id,
                same_request: false,
            } => Err(ServiceError::invalid(
                "idempotency_key_reused",
                format!(
                    "this Idempotency-Key was used for event {event_id} with a different type or data; use a new key"
                ),
            )),
        }
    }

    /// The event `id` of `site`.
    pub async fn event(&self, site: &Site, id: EventId) -> ServiceResult<Event> {
        self.counted(StoreOp::Read, self.store.get_event(site.id, id).await)?
            .ok_or_else(|| ServiceError::NotFound(format!("event {id}")))
    }

    /// A site's events matching `filter`, newest first, without their payloads.
    pub async fn events(
        &self,
        site: &Site,
        filter: &EventFilterQuery,
        page: &PageRequest,
    ) -> ServiceResult<Page<EventSummary>> {
        Ok(self.counted(
            StoreOp::Read,
            self.store.list_events(site.id, filter, page).await,
        )?)
    }
}
