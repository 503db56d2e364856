//! Crash safety of `fullup serve`: SIGKILL while 2,000 events are being ingested and
//! delivered, restart on the same database, and every accepted event still arrives.
//!
//! Every event is sent with an `Idempotency-Key`, and an event whose POST failed with
//! the kill is sent again after the restart, so in the end all 2,000 have an accepted
//! id (an event committed just before the kill, whose 202 was lost, gets its original
//! id back). The receiver must then have verified each of those ids at least once and
//! no other id: at-least-once, nothing lost, nothing invented.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support_ingest::{Ingest, join_clients, spawn_clients, wait_for_all};
use crate::support_receiver::RecordingReceiver;
use crate::support_server::{Server, create_site_and_webhook};

/// Events to deliver, as the acceptance criterion says.
const EVENTS: usize = 2_000;
/// Concurrent ingest clients.
const CLIENTS: usize = 16;
/// Accepted events before the kill is allowed, so there is a backlog to lose.
const KILL_AFTER_ACCEPTED: usize = 500;
/// Bound on waiting for the moment to kill.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on waiting for every accepted event to arrive after the restart.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);

/// Waits until enough events are accepted and some delivered with attempts in flight,
/// then SIGKILLs the server; returns the ids the receiver had verified by then.
async fn kill_mid_delivery(
    server: &mut Server,
    ingest: &Ingest,
    receiver: &RecordingReceiver,
) -> HashSet<String> {
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let ready = ingest.accepted_count() >= KILL_AFTER_ACCEPTED
            && receiver.deliveries() > 0
            && receiver.in_flight() > 0;
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no moment with {KILL_AFTER_ACCEPTED} accepted events and deliveries in flight \
             (accepted {}, delivered {})",
            ingest.accepted_count(),
            receiver.deliveries()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let in_flight = receiver.in_flight();
    server.kill();
    let received = receiver.received();
    println!(
        "killed with {} accepted, {} received, {in_flight} deliveries in flight",
        ingest.accepted_count(),
        received.len()
    );
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_loses_no_accepted_event() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let receiver = RecordingReceiver::start().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");

    let mut server = Server::start(&database_url, &[], &[]).await;
    let site = create_site_and_webhook(&client, &server.base, &receiver).await;
    let ingest = Ingest::new(client, site, EVENTS);
    let clients = spawn_clients(&ingest, &server.base, CLIENTS);
    let received_at_kill = kill_mid_delivery(&mut server, &ingest, &receiver).await;
    let stopped = join_clients(clients).await;
    let accepted_before_kill = ingest.accepted_ids();
    assert!(stopped > 0, "the kill interrupted no ingest client");
    assert!(
        !received_at_kill.is_empty(),
        "nothing was delivered before the kill"
    );
    assert!(
        !accepted_before_kill.is_subset(&received_at_kill),
        "every accepted event was already delivered at the kill; nothing was at risk"
    );

    let server = Server::start(&database_url, &[], &[]).await;
    let stopped = join_clients(spawn_clients(&ingest, &server.base, CLIENTS)).await;
    assert_eq!(stopped, 0, "ingest failed after the restart");
    let accepted = ingest.accepted_ids();
    assert_eq!(accepted.len(), EVENTS, "every event has one accepted id");

    wait_for_all(&receiver, &accepted, DELIVERY_TIMEOUT).await;
    let received = receiver.received();
    assert_eq!(
        receiver.failures(),
        0,
        "deliveries whose signature did not verify"
    );
    assert_eq!(received, accepted, "the receiver got events nobody sent");
    println!(
        "{EVENTS} events delivered at least once: {} deliveries, {} duplicates, in {:?}",
        receiver.deliveries(),
        receiver.duplicates(),
        started.elapsed()
    );
}
