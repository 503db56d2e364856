//! Cost of the delivery queue's two hot database operations, against a real SQLite file
//! and through the public [`Store`] trait only (so the same bench measures any rewrite
//! of the write path):
//!
//! - `claim_due/128`: leasing a batch of 128 due deliveries, as the dispatcher does per
//!   round trip, from a queue of 4096 pending ones;
//! - `complete/128`: recording 128 successful attempts submitted at once from 128 tasks,
//!   as the dispatcher's workers finish, so group commit can batch them.
//!
//! Throughput is per delivery. Only the measured call is timed: refilling the queue
//! (ingest) and recording or claiming the rows between iterations are not.
//!
//! Run: `cargo bench -j2 -p fullup-server --bench store -- --warm-up-time 1 --measurement-time 5`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_main};
use fullup_server::crypto::MainKey;
use fullup_server::domain::canonical_json::canonicalize;
use fullup_server::domain::clock::{Clock as _, SystemClock};
use fullup_server::domain::envelope::envelope;
use fullup_server::domain::event_type::{EventFilter, EventType};
use fullup_server::domain::health::{Health, HealthEffect, HealthPolicy};
use fullup_server::domain::ids::{AttemptId, EventId, SiteId, WebhookId};
use fullup_server::domain::models::{Attempt, Event, Site};
use fullup_server::domain::outcome::NextStep;
use fullup_server::domain::time::Timestamp;
use fullup_server::domain::webhook::{Secrets, Webhook};
use fullup_server::domain::webhook_url::WebhookUrl;
use fullup_server::store::{Claim, ClaimedDelivery, Completion, IngestOutcome, NewEvent, Store};
use fullup_signature::Secret;
use sha2::{Digest as _, Sha256};
use tokio::runtime::Runtime;

/// Deliveries claimed or completed per iteration: the dispatcher's default claim batch.
const BATCH: u32 = 128;
/// Webhooks of the site, all subscribed to every type: each event makes this many
/// deliveries.
const WEBHOOKS: u32 = 4;
/// Pending deliveries the claim bench draws from.
const QUEUE: u32 = 4096;
/// How long a claim leases its deliveries (the default config's lease is 55 s).
const LEASE: Duration = Duration::from_secs(55);

/// One form submission, about 600 bytes once canonical: a typical event.
const DATA: &str = r#"{"form":{"id":"frm_01HZX3KQ","name":"Contact us — Europe"},
  "submission":{"id":"sub_01HZX3M9","submitted_at":"2024-05-17T09:41:27.512Z",
  "fields":{"name":"Zoë Müller","email":"zoe@example.com","company":"Example GmbH",
  "message":"Hello,\nwe'd like a quote for 3 seats.\nThanks!","consent":true,
  "budget":1500.5,"seats":3,"source":null,"interests":["webhooks","forms"]}},
  "meta":{"ip":"203.0.113.7","locale":"de-DE","score":0.87,
  "referrer":"https://www.example.com/contact?utm_source=newsletter"}}"#;

/// A store on a fresh database file holding one site and [`WEBHOOKS`] webhooks.
struct Fixture {
    runtime: Runtime,
    store: Arc<dyn Store>,
    site: SiteId,
    /// Keeps the database folder until the fixture is dropped.
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        // In the target directory, not /tmp, which may be a tmpfs where fsync is free.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let (store, site) = runtime.block_on(async {
            let store = fullup_server::store::open(&url, MainKey::generate())
                .await
                .expect("open store");
            let site = create_site_and_webhooks(&*store).await;
            (store, site)
        });
        Self {
            runtime,
            store,
            site,
            _dir: dir,
        }
    }

    /// Stores `events` events concurrently (one group commit can take them all); each
    /// makes one delivery per webhook, due now.
    async fn ingest(&self, events: u32) {
        let data = canonicalize(DATA.as_bytes()).expect("valid JSON");
        let ingests = (0..events).map(|_| {
            let now = SystemClock.now();
            let id = EventId::new(now);
            let event_type = EventType::parse("form.submitted").expect("type");
            let payload = envelope(id, &event_type, now, &data);
            let new = NewEvent {
                request_hash: Sha256::digest(payload.as_bytes()).into(),
                event: Event {
                    id,
                    site_id: self.site,
                    event_type,
                    payload,
                    created_at: now,
                    idempotency_key: None,
                },
                only_webhook: None,
                hand_off: None,
            };
            let store = self.store.clone();
            async move { store.ingest(new).await }
        });
        for outcome in futures::future::join_all(ingests).await {
            match outcome.expect("ingest") {
                IngestOutcome::Created { deliveries, .. } => assert_eq!(deliveries, WEBHOOKS),
                other => panic!("unexpected ingest outcome {other:?}"),
            }
        }
    }

    /// Records a success for each of `claimed`, one after the other.
    async fn finish(&self, claimed: &[ClaimedDelivery]) {
        let now = SystemClock.now();
        for delivery in claimed {
            let completion = succeeded(delivery, now);
            self.store
                .complete(completion, now)
                .await
                .expect("complete");
        }
    }

    /// Claims exactly [`BATCH`] due deliveries.
    async fn claim(&self) -> Vec<ClaimedDelivery> {
        let now = SystemClock.now();
        let claimed = self
            .store
            .claim_due(&Claim {
                now,
                lease: LEASE,
                limit: BATCH,
                per_webhook: BATCH,
                per_site: BATCH * WEBHOOKS,
                leases_per_request: 1,
                settling: Vec::new(),
            })
            .await
            .expect("claim");
        assert_eq!(claimed.len(), BATCH as usize, "the queue ran dry");
        claimed
    }
}

async fn create_site_and_webhooks(store: &dyn Store) -> SiteId {
    let now = SystemClock.now();
    let site = Site {
        id: SiteId::new(now),
        name: "bench".to_owned(),
        strict_event_types: false,
        retention_days: None,
        created_at: now,
        updated_at: now,
    };
    store.create_site(&site).await.expect("create site");
    for n in 0..WEBHOOKS {
        let webhook = Webhook {
            id: WebhookId::new(now),
            site_id: site.id,
            url: WebhookUrl::parse(&format!("https://receiver{n}.example.com/hook")).expect("url"),
            event_types: vec![EventFilter::All],
            description: "bench".to_owned(),
            headers: Default::default(),
            health: Health::default(),
            paused: false,
            rate_limit: None,
            ordering: Default::default(),
            secrets: Ok(Secrets::new(Secret::generate())),
            created_at: now,
            updated_at: now,
        };
        store
            .create_webhook(&webhook)
            .await
            .expect("create webhook");
    }
    site.id
}

/// What the dispatcher records after a 200 answer.
fn succeeded(delivery: &ClaimedDelivery, started_at: Timestamp) -> Completion {
    Completion {
        attempt: Attempt {
            id: AttemptId::new(started_at),
            delivery_id: delivery.delivery_id,
            webhook_id: delivery.webhook.id,
            attempt_number: delivery.attempt_count + 1,
            started_at,
            duration: Duration::from_millis(42),
            status_code: Some(200),
            error_kind: None,
            error_message: None,
            response_body: "ok".to_owned(),
            request_headers: String::new(),
            response_headers: String::new(),
        },
        event_id: delivery.event_id,
        event_type: delivery.event_type.clone(),
        next: NextStep::Succeeded,
        health: HealthEffect::Healthy,
        policy: HealthPolicy {
            disable_after: Duration::from_secs(3600),
            max_concurrency: 16,
        },
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.runtime.block_on(self.store.close());
    }
}

/// Claims a batch from a queue of [`QUEUE`] due deliveries, then (untimed) records its
/// attempts as successes and ingests as many new deliveries, so the queue stays the same
/// size. (Releasing the claims instead no longer refills it: a claim counts each attempt
/// as started, and a delivery whose attempt is unrecorded is not claimed again until its
/// lease ends.)
fn claim_due(c: &mut Criterion) {
    let fx = Fixture::new();
    fx.runtime.block_on(fx.ingest(QUEUE / WEBHOOKS));
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    group.bench_function(format!("claim_due/{BATCH}"), |b| {
        b.iter_custom(|iters| {
            fx.runtime.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let claimed = fx.claim().await;
                    timed += start.elapsed();
                    fx.finish(&claimed).await;
                    fx.ingest(BATCH / WEBHOOKS).await;
                }
                timed
            })
        });
    });
    group.finish();
}

/// Completes a claimed batch from one task per delivery; before each iteration
/// (untimed) ingests and claims a fresh batch.
fn complete(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(u64::from(BATCH)));
    group.bench_function(format!("complete/{BATCH}"), |b| {
        b.iter_custom(|iters| {
            fx.runtime.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    fx.ingest(BATCH / WEBHOOKS).await;
                    let claimed = fx.claim().await;
                    let now = SystemClock.now();
                    let completions: Vec<_> = claimed.iter().map(|d| succeeded(d, now)).collect();
                    let start = Instant::now();
                    let tasks: Vec<_> = completions
                        .into_iter()
                        .map(|completion| {
                            let store = fx.store.clone();
                            tokio::spawn(async move { store.complete(completion, now).await })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task").expect("complete");
                    }
                    timed += start.elapsed();
                }
                timed
            })
        });
    });
    group.finish();
}

/// `criterion_group!` defines an undocumented `pub fn`; a private module keeps it internal.
mod group {
    criterion::criterion_group!(benches, super::claim_due, super::complete);
}
criterion_main!(group::benches);
