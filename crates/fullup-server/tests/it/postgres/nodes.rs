//! Several nodes on one database: every delivery attempted once, a dead node's lease
//! taken over when it ends, one event per idempotency key whichever node is asked.

use std::collections::HashMap;
use std::time::Duration;

use fullup_server::crypto::MainKey;
use fullup_server::domain::canonical_json::canonicalize;
use fullup_server::domain::clock::Clock as _;
use fullup_server::domain::envelope::envelope;
use fullup_server::domain::event_type::EventType;
use fullup_server::domain::ids::{EventId, SiteId};
use fullup_server::domain::models::{Event, Site};
use fullup_server::domain::time::Timestamp;
use fullup_server::store::postgres::PgStore;
use fullup_server::store::{Claim, DeliveryQueue as _, IngestOutcome, NewEvent, Store as _};
use futures::StreamExt as _;
use serde_json::json;

use super::{QUIET, WAIT, assert_signed, scalar};
use crate::support::TestReceiver;
use crate::support::postgres::{TestDatabase, pg_config, start_node};
use crate::support::records::site_with_webhooks;
use crate::support::server::manual_clock;

/// How many requests each event's id arrived in, for one receiver.
async fn arrivals(receiver: &mut TestReceiver, events: usize) -> HashMap<String, u32> {
    let mut seen: HashMap<String, u32> = HashMap::new();
    while seen.len() < events {
        let got = receiver.next(WAIT).await;
        assert_signed(&got);
        *seen.entry(got.header("webhook-id").to_owned()).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn two_nodes_share_one_database_and_never_attempt_a_delivery_twice() {
    const EVENTS: usize = 300;
    let Some(db) =
        TestDatabase::create("two_nodes_share_one_database_and_never_attempt_a_delivery_twice")
            .await
    else {
        return;
    };
    let key = MainKey::generate();
    let nodes = [
        start_node(pg_config(&db, &key)).await,
        start_node(pg_config(&db, &key)).await,
    ];
    let site = nodes[0].create_site().await;
    let mut receivers = Vec::new();
    for i in 0..3 {
        let receiver = TestReceiver::start().await;
        let (_, secret) = nodes[i % 2]
            .create_webhook(&site, &receiver.url(), &["*"])
            .await;
        receiver.expect_secret(secret);
        receivers.push(receiver);
    }

    let mut sent: Vec<String> = futures::stream::iter(0..EVENTS)
        .map(|i| nodes[i % 2].send_event(&site, "order.paid", json!({"n": i})))
        .buffer_unordered(16)
        .collect()
        .await;
    sent.sort();
    for receiver in &mut receivers {
        let mut seen = arrivals(receiver, EVENTS).await;
        while let Some(extra) = receiver.try_next(QUIET).await {
            *seen
                .entry(extra.header("webhook-id").to_owned())
                .or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|&(_, &n)| n > 1).collect();
        assert!(
            twice.is_empty(),
            "{} deliveries were attempted more than once, such as {:?}",
            twice.len(),
            &twice[..twice.len().min(3)]
        );
        let mut got: Vec<String> = seen.into_keys().collect();
        got.sort();
        assert_eq!(got, sent, "every event reaches every webhook");
    }
    let deliveries = i64::try_from(3 * EVENTS).expect("small");
    for _ in 0..500 {
        if scalar(
            &db,
            "SELECT COUNT(*) FROM deliveries WHERE state = 'succeeded'",
        )
        .await
            == deliveries
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM deliveries WHERE state = 'succeeded'"
        )
        .await,
        deliveries
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM attempts").await,
        deliveries
    );
    for node in nodes {
        node.stop().await;
    }
}

/// An event as the API would store it, for the store to ingest directly.
fn new_event(site: SiteId, now: Timestamp, key: Option<&str>, hash: u8) -> NewEvent {
    let id = EventId::new(now);
    let event_type = EventType::parse("order.paid").expect("type");
    let data = canonicalize(b"{\"n\":1}").expect("canonical");
    NewEvent {
        event: Event {
            id,
            site_id: site,
            payload: envelope(id, &event_type, now, &data),
            event_type,
            created_at: now,
            idempotency_key: key.map(str::to_owned),
        },
        request_hash: [hash; 32],
        only_webhook: None,
        hand_off: None,
    }
}

#[tokio::test]
async fn a_lease_left_by_a_dead_node_is_taken_over_once_it_expires() {
    let Some(db) =
        TestDatabase::create("a_lease_left_by_a_dead_node_is_taken_over_once_it_expires").await
    else {
        return;
    };
    let key = MainKey::generate();
    let clock = manual_clock();
    let mut config = pg_config(&db, &key);
    config.clock = clock.clone();
    let lease = config.delivery.lease();
    let mut receiver = TestReceiver::start().await;
    receiver.set_clock(clock.clone());
    let setup = start_node(config.clone()).await;
    let site = setup.create_site().await;
    let (_, secret) = setup.create_webhook(&site, &receiver.url(), &["*"]).await;
    receiver.expect_secret(secret);
    setup.stop().await;

    // A node claims the delivery, then dies before attempting it.
    let dead = PgStore::open(&db.url, key.clone()).await.expect("open");
    let now = clock.now();
    let new = new_event(SiteId::parse(&site).expect("site id"), now, None, 0);
    let event = new.event.id.to_string();
    dead.ingest(new).await.expect("ingest");
    let claimed = dead
        .claim_due(&Claim {
            now,
            lease,
            limit: 10,
            per_webhook: 10,
            per_site: 10,
            leases_per_request: 1,
            settling: Vec::new(),
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    dead.close().await;

    let node = start_node(config).await;
    assert!(
        receiver.try_next(QUIET).await.is_none(),
        "a live lease is not taken over, even by a node that just started"
    );
    let waiting = node.wait_for_state(&site, &event, "pending").await;
    assert_eq!(waiting["attempt_count"], 0);

    clock.advance(lease);
    let got = receiver.next(WAIT).await;
    assert_signed(&got);
    assert_eq!(got.header("webhook-id"), event);
    // The dead node's claim counted an attempt (it may have sent it before dying): the
    // takeover logs it as interrupted and sends attempt 2 (issue #17, item 9).
    assert_eq!(got.header("fullup-attempt"), "2");
    let done = node.wait_for_state(&site, &event, "succeeded").await;
    assert_eq!(done["attempt_count"], 2);
    let attempts = node.attempts(&site, done["id"].as_str().expect("id")).await;
    assert_eq!(attempts[1]["attempt_number"], 1, "{attempts:?}");
    assert_eq!(attempts[1]["error_kind"], "interrupted", "{attempts:?}");
    assert!(receiver.try_next(QUIET).await.is_none());
    node.stop().await;
}

#[tokio::test]
async fn concurrent_ingests_with_one_key_on_two_nodes_create_one_event() {
    let Some(db) =
        TestDatabase::create("concurrent_ingests_with_one_key_on_two_nodes_create_one_event").await
    else {
        return;
    };
    let key = MainKey::generate();
    let stores = [
        PgStore::open(&db.url, key.clone()).await.expect("open"),
        PgStore::open(&db.url, key).await.expect("open"),
    ];
    let now = Timestamp::from_unix_ms(1_800_000_000_000);
    let site = Site {
        id: SiteId::new(now),
        name: "s".to_owned(),
        strict_event_types: false,
        retention_days: None,
        created_at: now,
        updated_at: now,
    };
    stores[0].create_site(&site).await.expect("site");

    let outcomes = futures::future::join_all((0..16).map(|i| {
        let new = new_event(site.id, now, Some("k"), 7);
        let store = &stores[i % 2];
        async move { store.ingest(new).await.expect("ingest") }
    }))
    .await;
    let created: Vec<EventId> = outcomes
        .iter()
        .filter_map(|o| match o {
            IngestOutcome::Created { event_id, .. } => Some(*event_id),
            IngestOutcome::Duplicate { .. } => None,
        })
        .collect();
    assert_eq!(created.len(), 1, "{outcomes:?}");
    for o in &outcomes {
        if let IngestOutcome::Duplicate {
            event_id,
            same_request,
        } = o
        {
            assert_eq!((event_id, *same_request), (&created[0], true));
        }
    }
    let other = stores[1]
        .ingest(new_event(site.id, now, Some("k"), 8))
        .await
        .expect("ingest");
    assert_eq!(
        other,
        IngestOutcome::Duplicate {
            event_id: created[0],
            same_request: false
        }
    );
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM events").await, 1);
    for store in &stores {
        store.close().await;
    }
}

/// Regression: nodes starting together on an empty database each generated an admin
/// token and the last to store its hash won, so the others printed a token that did
/// not work.
#[tokio::test]
async fn nodes_starting_together_agree_on_one_admin_token() {
    let Some(db) = TestDatabase::create("nodes_starting_together_agree_on_one_admin_token").await
    else {
        return;
    };
    let key = MainKey::generate();
    let mut config = pg_config(&db, &key);
    config.admin_token = None;
    let stores = [
        PgStore::open(&db.url, key.clone()).await.expect("open"),
        PgStore::open(&db.url, key.clone()).await.expect("open"),
        PgStore::open(&db.url, key.clone()).await.expect("open"),
    ];
    let tokens = fullup_server::tokens::TokenHasher::load_or_create(&stores[0], &key)
        .await
        .expect("token-hash key");
    let answers = futures::future::join_all(
        stores
            .iter()
            .map(|store| fullup_server::app::admin_token(store, &tokens, &config)),
    )
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<_>>>()
    .expect("admin tokens");
    let printed: Vec<&String> = answers.iter().filter_map(|(_, t)| t.as_ref()).collect();
    assert_eq!(printed.len(), 1, "exactly one node prints a new token");
    let hash = tokens.hash(printed[0]);
    assert!(
        answers.iter().all(|(h, _)| *h == hash),
        "every node accepts the printed token"
    );
}

#[tokio::test]
async fn a_node_hears_of_deliveries_another_node_ingests_without_polling() {
    let Some(db) =
        TestDatabase::create("a_node_hears_of_deliveries_another_node_ingests_without_polling")
            .await
    else {
        return;
    };
    let key = MainKey::generate();
    let ingesting = PgStore::open(&db.url, key.clone()).await.expect("open");
    let listening = PgStore::open(&db.url, key).await.expect("open");
    let now = Timestamp::from_unix_ms(1_800_000_000_000);
    let (site, _) = site_with_webhooks(&ingesting, now, 2).await;
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let watch = tokio::spawn({
        let wake = wake.clone();
        async move { listening.watch_due(wake).await }
    });
    // The first wake says it listens (and covers whatever was announced before).
    tokio::time::timeout(WAIT, wake.notified())
        .await
        .expect("the watch starts listening");

    ingesting
        .ingest(new_event(site, now, None, 0))
        .await
        .expect("ingest");
    tokio::time::timeout(WAIT, wake.notified())
        .await
        .expect("the other node is told of the new deliveries");
    watch.abort();
}
