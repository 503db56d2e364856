//! The service's own events ("operational events"): what happened to a site's webhooks
//! and deliveries, told to that site's webhooks that subscribe to them, signed and
//! delivered like any other event. So a platform's operator webhook hears that one of its
//! customers' endpoints started failing, recovered, was disabled, or that a delivery
//! was given up, without polling the API.
//!
//! Each store records them in the transaction that records the attempt behind them, so
//! none is lost and none is told twice. A webhook gets them only if its filters name them
//! exactly: `*` and `prefix.*` filters do not match them, so existing receivers are not
//! sent events they did not ask for, and a site may still use `webhook.*` names of its
//! own beside these four, which it may not send itself. No `delivery.exhausted` is told
//! of a delivery of an operational event, so a dead operator webhook cannot feed itself.

use serde::Serialize;

use super::canonical_json::{CanonicalJson, canonicalize};
use super::event_type::EventType;
use super::health::Health;
use super::ids::{DeliveryId, EventId, WebhookId};
use super::time::Timestamp;

/// A webhook's first failed attempt after a success (or since it was created).
pub const WEBHOOK_FAILING: &str = "webhook.failing";
/// A webhook's first success after failed attempts.
pub const WEBHOOK_RECOVERED: &str = "webhook.recovered";
/// A webhook disabled by its failures (a streak longer than `--disable-after`, or 410).
pub const WEBHOOK_DISABLED: &str = "webhook.disabled";
/// A delivery that failed and will not be attempted again.
pub const DELIVERY_EXHAUSTED: &str = "delivery.exhausted";
/// Every type of the service's own events; a site may not send events of these types.
pub const TYPES: [&str; 4] = [
    WEBHOOK_FAILING,
    WEBHOOK_RECOVERED,
    WEBHOOK_DISABLED,
    DELIVERY_EXHAUSTED,
];

/// Whether `event_type` is one of the service's own.
pub fn is_operational(event_type: &str) -> bool {
    TYPES.contains(&event_type)
}

/// One of the service's own events, before it is stored: its type and its `data`
/// (canonical JSON, as every stored payload is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// One of [`TYPES`].
    pub event_type: EventType,
    /// The event's `data`.
    pub data: CanonicalJson,
}

impl Notice {
    fn new(event_type: &str, data: &impl Serialize) -> Self {
        let json = serde_json::to_vec(data).expect("these payloads always serialize");
        Self {
            event_type: EventType::parse(event_type).expect("the operational types are valid"),
            data: canonicalize(&json).expect("serde_json writes JSON that canonicalizes"),
        }
    }
}

/// `data` of `webhook.failing`: the webhook's first failed attempt after a success.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookFailing {
    /// The webhook (`wh_…`).
    pub webhook_id: String,
    /// When the failed attempt that started the streak started (RFC 3339).
    pub failing_since: String,
}

/// `data` of `webhook.recovered`: the webhook's first success after failed attempts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookRecovered {
    /// The webhook (`wh_…`).
    pub webhook_id: String,
    /// When the streak that ended started (RFC 3339).
    pub failing_since: String,
    /// When the success was recorded (RFC 3339).
    pub recovered_at: String,
}

/// `data` of `webhook.disabled`: the webhook gets no new deliveries until it is enabled.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookDisabled {
    /// The webhook (`wh_…`).
    pub webhook_id: String,
    /// Why (the streak and since when, or the receiver's 410).
    pub reason: Option<String>,
    /// When its failing streak started (RFC 3339), if it was failing.
    pub failing_since: Option<String>,
    /// When it was disabled (RFC 3339).
    pub disabled_at: String,
}

/// `data` of `delivery.exhausted`: a delivery that failed and will not be attempted
/// again (its retries are used up, or its receiver answered 410).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryExhausted {
    /// The delivery (`dlv_…`).
    pub delivery_id: String,
    /// Its webhook (`wh_…`).
    pub webhook_id: String,
    /// Its event (`evt_…`).
    pub event_id: String,
    /// Its event's type.
    pub event_type: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's HTTP status, if it got an answer.
    pub last_status_code: Option<u16>,
    /// The last attempt's error class (`timeout`, `connect`, …), if it got no answer.
    pub last_error: Option<String>,
}

/// The notices a change of `webhook`'s health from `before` to `after` (recorded at
/// `at`) calls for, in the order they happened: failing, then disabled; or recovered.
pub fn health_notices(
    webhook: WebhookId,
    before: &Health,
    after: &Health,
    at: Timestamp,
) -> Vec<Notice> {
    let id = webhook.to_string();
    let mut notices = Vec::new();
    match (before.failing_since, after.failing_since) {
        (None, Some(since)) => notices.push(Notice::new(
            WEBHOOK_FAILING,
            &WebhookFailing {
                webhook_id: id.clone(),
                failing_since: since.to_rfc3339(),
            },
        )),
        (Some(since), None) => notices.push(Notice::new(
            WEBHOOK_RECOVERED,
            &WebhookRecovered {
                webhook_id: id.clone(),
                failing_since: since.to_rfc3339(),
                recovered_at: at.to_rfc3339(),
            },
        )),
        _ => {}
    }
    if before.enabled && !after.enabled {
        notices.push(Notice::new(
            WEBHOOK_DISABLED,
            &WebhookDisabled {
                webhook_id: id,
                reason: after.disabled_reason.clone(),
                failing_since: after.failing_since.map(Timestamp::to_rfc3339),
                disabled_at: at.to_rfc3339(),
            },
        ));
    }
    notices
}

/// A given-up delivery, as `delivery.exhausted` tells it.
#[derive(Debug, Clone, Copy)]
pub struct Exhausted<'a> {
    /// The delivery.
    pub delivery: DeliveryId,
    /// Its webhook.
    pub webhook: WebhookId,
    /// Its event.
    pub event: EventId,
    /// Its event's type.
    pub event_type: &'a EventType,
    /// Attempts made, the last included.
    pub attempts: u32,
    /// The last attempt's HTTP status, if it got one.
    pub status_code: Option<u16>,
    /// The last attempt's error class (`timeout`, `connect`, …), if it failed to get one.
    pub error_kind: Option<&'a str>,
}

/// The `delivery.exhausted` notice of `e`, unless its event is itself operational.
pub fn exhausted_notice(e: &Exhausted<'_>) -> Option<Notice> {
    if is_operational(e.event_type.as_str()) {
        return None;
    }
    Some(Notice::new(
        DELIVERY_EXHAUSTED,
        &DeliveryExhausted {
            delivery_id: e.delivery.to_string(),
            webhook_id: e.webhook.to_string(),
            event_id: e.event.to_string(),
            event_type: e.event_type.as_str().to_owned(),
            attempts: e.attempts,
            last_status_code: e.status_code,
            last_error: e.error_kind.map(str::to_owned),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_unix_ms(ms)
    }

    fn types(notices: &[Notice]) -> Vec<&str> {
        notices.iter().map(|n| n.event_type.as_str()).collect()
    }

    #[test]
    fn health_changes_tell_failing_recovered_and_disabled() {
        let webhook = WebhookId::new(at(0));
        let healthy = Health::default();
        let failing = Health {
            failing_since: Some(at(1_000)),
            ..Health::default()
        };
        let disabled = Health {
            enabled: false,
            disabled_reason: Some("every attempt failed".into()),
            ..failing.clone()
        };
        let told =
            |a: &Health, b: &Health| types(&health_notices(webhook, a, b, at(2_000))).join(",");
        assert_eq!(told(&healthy, &failing), WEBHOOK_FAILING);
        assert_eq!(told(&failing, &failing), "");
        assert_eq!(told(&failing, &healthy), WEBHOOK_RECOVERED);
        assert_eq!(told(&failing, &disabled), WEBHOOK_DISABLED);
        assert_eq!(
            told(&healthy, &disabled),
            format!("{WEBHOOK_FAILING},{WEBHOOK_DISABLED}")
        );
        let n = &health_notices(webhook, &failing, &disabled, at(2_000))[0];
        let data: serde_json::Value = serde_json::from_str(n.data.as_str()).expect("json");
        assert_eq!(data["reason"], "every attempt failed");
        assert_eq!(data["webhook_id"], webhook.to_string());
    }

    #[test]
    fn an_operational_events_exhausted_delivery_is_not_told() {
        let user = EventType::parse("order.paid").expect("type");
        let ours = EventType::parse(WEBHOOK_FAILING).expect("type");
        let e = |event_type| Exhausted {
            delivery: DeliveryId::new(at(0)),
            webhook: WebhookId::new(at(0)),
            event: EventId::new(at(0)),
            event_type,
            attempts: 8,
            status_code: Some(500),
            error_kind: None,
        };
        let notice = exhausted_notice(&e(&user)).expect("told");
        assert_eq!(notice.event_type.as_str(), DELIVERY_EXHAUSTED);
        assert!(
            notice.data.as_str().contains("\"attempts\":8"),
            "{}",
            notice.data.as_str()
        );
        assert_eq!(exhausted_notice(&e(&ours)), None);
    }
}
