//! The service's Prometheus metrics, in one registry that `GET /metrics` renders.
//!
//! Why here and not in `api/`: the numbers are facts of the use cases and the
//! dispatcher (an event committed, an attempt made, a store call failed), so those
//! record them, whatever called them; HTTP only renders the registry. Names, units and
//! `_total` suffixes follow Prometheus' naming guide (`prometheus-client` adds the
//! suffixes), and every label has a small fixed set of values: no label names a site,
//! a webhook or a URL, since those are unbounded.
//!
//! Recording is a few atomic operations, so it costs the hot path nothing visible.
//! The backlog gauges are the exception: they come from the store, so a background
//! task ([`crate::service::monitoring`]) refreshes them at an interval and a scrape
//! reads what it last found.

use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::domain::outcome::{AttemptClass, DeliveryOutcome};
use crate::store::Backlog;

/// The `Content-Type` of [`Metrics::render`]: Prometheus' text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the attempt duration buckets: from a receiver on the same
/// network (5 ms) to the default request timeout (15 s) and the longest one sensible (30 s).
const ATTEMPT_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
];
/// Upper bounds (seconds) of the ingest duration buckets: a SQLite commit with
/// `synchronous=FULL` takes about a millisecond, a batch under load tens of them, and a
/// request past a few seconds is failing its client.
const INGEST_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// One label and its value.
type Label = [(&'static str, &'static str); 1];

/// The tables retention prunes, the values of `fullup_pruned_rows_total{table}`.
pub const PRUNED_TABLES: [&str; 4] = ["events", "deliveries", "attempts", "webhooks"];

/// The store calls whose failures are counted (`fullup_store_errors_total{op}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// Ingest's transaction (the event and its deliveries).
    Ingest,
    /// The dispatcher's claim of due deliveries.
    Claim,
    /// Recording an attempt's outcome.
    Complete,
    /// Giving back the leases of deliveries whose attempts were stopped (at shutdown).
    Release,
    /// The backlog gauges' refresh.
    Backlog,
    /// The readiness probe's query.
    Ping,
    /// A management use case's read (a site, webhook, event, delivery; a list).
    Read,
    /// A management use case's write (create, update, delete, retry, recover, rotate).
    Write,
    /// Retention's pruning of old events.
    Prune,
}

impl StoreOp {
    /// Every op, so each series exists (at 0) before it first happens.
    pub const ALL: [Self; 9] = [
        Self::Ingest,
        Self::Claim,
        Self::Complete,
        Self::Release,
        Self::Backlog,
        Self::Ping,
        Self::Read,
        Self::Write,
        Self::Prune,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Claim => "claim",
            Self::Complete => "complete",
            Self::Release => "release",
            Self::Backlog => "backlog",
            Self::Ping => "ping",
            Self::Read => "read",
            Self::Write => "write",
            Self::Prune => "prune",
        }
    }
}

/// The registry and a handle on each metric; shared (`Arc`) by the service, the
/// dispatcher and the routes that render it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events_ingested: Counter,
    deliveries: Family<Label, Counter>,
    attempts: Family<Label, Counter>,
    attempt_duration: Histogram,
    ingest_duration: Histogram,
    pending: Gauge,
    oldest_pending_age: Gauge,
    webhooks: Family<Label, Gauge>,
    store_errors: Family<Label, Counter>,
    pruned_rows: Family<Label, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric registered, each labelled series present at 0.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fullup");
        let m = Self {
            events_ingested: Counter::default(),
            deliveries: Family::default(),
            attempts: Family::default(),
            attempt_duration: Histogram::new(ATTEMPT_BUCKETS),
            ingest_duration: Histogram::new(INGEST_BUCKETS),
            pending: Gauge::default(),
            oldest_pending_age: Gauge::default(),
            webhooks: Family::default(),
            store_errors: Family::default(),
            pruned_rows: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_ingested",
            "Events accepted and committed (duplicates of an Idempotency-Key not counted)",
            m.events_ingested.clone(),
        );
        registry.register(
            "deliveries",
            "Attempts by what became of their delivery: succeeded, failed_retryable, exhausted, gone (410), refused (SSRF guard)",
            m.deliveries.clone(),
        );
        registry.register(
            "attempts",
            "Delivery attempts by the receiver's status class, or how they failed",
            m.attempts.clone(),
        );
        registry.register_with_unit(
            "attempt_duration",
            "Time of one delivery attempt, from vetting the URL to the end of the answer",
            Unit::Seconds,
            m.attempt_duration.clone(),
        );
        registry.register_with_unit(
            "ingest_duration",
            "Time from the ingest request's handler to the commit of its event and deliveries",
            Unit::Seconds,
            m.ingest_duration.clone(),
        );
        registry.register(
            "deliveries_pending",
            "Deliveries waiting for an attempt (due or scheduled), as of the last backlog refresh",
            m.pending.clone(),
        );
        registry.register_with_unit(
            "oldest_pending_age",
            "How long the most overdue delivery of an enabled, unpaused webhook has been due (0: none), as of the last backlog refresh",
            Unit::Seconds,
            m.oldest_pending_age.clone(),
        );
        registry.register(
            "webhooks",
            "Webhooks by state: enabled, paused, disabled, as of the last backlog refresh",
            m.webhooks.clone(),
        );
        registry.register(
            "store_errors",
            "Failed store calls by operation",
            m.store_errors.clone(),
        );
        registry.register(
            "pruned_rows",
            "Rows deleted by retention, by table: events, deliveries, attempts, webhooks (deleted ones whose last delivery went)",
            m.pruned_rows.clone(),
        );
        registry.register(
            "build",
            "The running version of fullup",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        for outcome in DeliveryOutcome::ALL {
            let _ = m.deliveries.get_or_create(&[("outcome", outcome.as_str())]);
        }
        for class in AttemptClass::ALL {
            let _ = m
                .attempts
                .get_or_create(&[("status_class", class.as_str())]);
        }
        for state in ["enabled", "paused", "disabled"] {
            let _ = m.webhooks.get_or_create(&[("state", state)]);
        }
        for op in StoreOp::ALL {
            let _ = m.store_errors.get_or_create(&[("op", op.as_str())]);
        }
        for table in PRUNED_TABLES {
            let _ = m.pruned_rows.get_or_create(&[("table", table)]);
        }
        Self { registry, ..m }
    }

    /// Counts a committed event and how long it took from its request to the commit.
    pub fn event_ingested(&self, took: Duration) {
        self.events_ingested.inc();
        self.ingest_duration.observe(took.as_secs_f64());
    }

    /// Counts an attempt: its class, its duration and what became of its delivery.
    pub fn attempt(&self, class: AttemptClass, outcome: DeliveryOutcome, took: Duration) {
        self.attempts
            .get_or_create(&[("status_class", class.as_str())])
            .inc();
        self.deliveries
            .get_or_create(&[("outcome", outcome.as_str())])
            .inc();
        self.attempt_duration.observe(took.as_secs_f64());
    }

    /// Counts a failed store call.
    pub fn store_error(&self, op: StoreOp) {
        self.store_errors
            .get_or_create(&[("op", op.as_str())])
            .inc();
    }

    /// Counts rows retention deleted from `table` (one of [`PRUNED_TABLES`]).
    pub fn pruned(&self, table: &'static str, rows: u64) {
        self.pruned_rows
            .get_or_create(&[("table", table)])
            .inc_by(rows);
    }

    /// Sets the backlog gauges to what the store reported at `now_ms` (Unix ms).
    pub fn set_backlog(&self, backlog: &Backlog, now_ms: i64) {
        self.pending
            .set(i64::try_from(backlog.pending).unwrap_or(i64::MAX));
        let overdue_ms = backlog
            .oldest_due
            .map_or(0, |due| now_ms.saturating_sub(due.unix_ms()).max(0));
        self.oldest_pending_age.set(overdue_ms / 1000);
        let w = &backlog.webhooks;
        for (state, n) in [
            ("enabled", w.enabled),
            ("paused", w.paused),
            ("disabled", w.disabled),
        ] {
            self.webhooks
                .get_or_create(&[("state", state)])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Every metric in Prometheus' text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}
