//! One tenant cannot stall another: a site whose receivers all hang holds at most its
//! share of the workers, and another site's events are delivered as if it were alone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::postgres::assert_signed;
use crate::support::{Backend, TestReceiver, store_test};

/// How long site B pings for, and how often.
const PINGS_FOR: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_millis(250);
/// The most a ping may take from its ingest to its receiver, whatever site A does.
const PING_BOUND: Duration = Duration::from_secs(1);

store_test!(a_site_with_forty_hanging_webhooks_does_not_delay_another_site);
/// The attack from the fair-delivery issue, with nothing but a site API key's powers:
/// site A registers 40 webhooks on a receiver that accepts and never answers and sends
/// 20 events (800 deliveries, each attempt held for the 5 s request timeout); site B
/// pings its healthy receiver every 250 ms for 10 s. Every ping arrives, each within 1 s.
async fn a_site_with_forty_hanging_webhooks_does_not_delay_another_site(backend: Backend) {
    let server = backend
        .start_with(|c| c.delivery.request_timeout = Duration::from_secs(5))
        .await;
    let hanging = TestReceiver::start().await;
    hanging.set_hang(true);
    let a = server.create_site().await;
    for _ in 0..40 {
        server.create_webhook(&a, &hanging.url(), &["*"]).await;
    }
    for i in 0..20 {
        server.send_event(&a, "noise.event", json!({"i": i})).await;
    }

    let mut healthy = TestReceiver::start().await;
    let b = server.create_site().await;
    let (_, secret) = server.create_webhook(&b, &healthy.url(), &["*"]).await;
    healthy.expect_secret(secret);
    let mut sent = HashMap::new();
    let start = Instant::now();
    while start.elapsed() < PINGS_FOR {
        let at = Instant::now();
        let event = server.send_event(&b, "ping.event", json!({})).await;
        sent.insert(event, at);
        tokio::time::sleep(PING_EVERY.saturating_sub(at.elapsed())).await;
    }
    let mut slowest = Duration::ZERO;
    for _ in 0..sent.len() {
        let got = healthy.next(PING_BOUND * 5).await;
        assert_signed(&got);
        let sent_at = sent.remove(got.header("webhook-id")).unwrap_or_else(|| {
            panic!(
                "a ping of B, once: {} attempt {} after {:?}",
                got.header("webhook-id"),
                got.header("fullup-attempt"),
                start.elapsed()
            )
        });
        slowest = slowest.max(got.at.duration_since(sent_at));
    }
    assert!(sent.is_empty(), "every ping arrived");
    println!("slowest of B's pings: {slowest:?}");
    assert!(
        slowest <= PING_BOUND,
        "B's slowest ping took {slowest:?} beside A's hanging webhooks"
    );
    server.stop().await;
}
