//! Two `fullup serve` nodes on one PostgreSQL database, each on a host of its own (a
//! network namespace on a veth link, `fullup-hosts`): events ingested on node A and
//! delivered by both, node B SIGKILLed mid-run and restarted.
//!
//! 2,000 events from 8 clients with idempotency keys, each to 3 webhooks whose
//! receivers listen in the root namespace and tell the nodes apart by their addresses.
//! At the end:
//! - every accepted event reached every webhook with a valid signature, and nothing
//!   else did, and both nodes delivered some;
//! - there are no more duplicates than attempts B had in flight at the kill. Before the
//!   kill the receivers hold B's answers until B must have recorded every attempt it had
//!   an answer to, so that each attempt B had started is a request they hold (or one
//!   still on its way, counted when it arrives); an answered attempt waiting for B's
//!   commit would be invisible to them;
//! - no delivery was attempted by two nodes at once: no two recorded attempts of one
//!   delivery overlap in time (the attempt log), and no receiver had two requests for
//!   one event at once.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use fullup_hosts::Cluster;
use fullup_server::domain::time::Timestamp;
use fullup_testkit::postgres::TestDatabase;
use serde_json::Value;

use crate::support_ingest::{Ingest, join_clients, spawn_clients, wait_for_all};
use crate::support_receiver::RecordingReceiver;
use crate::support_server::{
    MAIN_KEY, Server, create_site_with_webhooks, fetch, wait_until_recorded,
};

/// Events ingested on node A.
const EVENTS: usize = 2_000;
/// Concurrent ingest clients.
const CLIENTS: usize = 8;
/// Webhooks, each with its own receiver; every event goes to each.
const WEBHOOKS: usize = 3;
/// Accepted events before the kill is allowed, so there is work left to lose.
const KILL_AFTER_ACCEPTED: usize = 500;
/// Bound on waiting for that moment.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long B's answers are held before the kill: a node records an attempt within
/// milliseconds of its answer (one group commit), so after this B has recorded every
/// attempt it had an answer to.
const HOLD_BEFORE_KILL: Duration = Duration::from_secs(1);
/// Attempts in flight per node, below the 3 x 16 the per-webhook limits allow in all,
/// so that while B's attempts are held (and, after the kill, leased) A still delivers.
const WORKERS: &str = "16";
/// Leases last connect + request timeout + 30 s; these make the dead B's end 33 s
/// after its last claim.
const TIMEOUTS: [&str; 4] = ["--connect-timeout", "1s", "--request-timeout", "2s"];
/// Bound on waiting for every accepted event to arrive after the restart, and again
/// for every delivery to be recorded (B's unrecorded ones after its leases end).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest page of a list route.
const PAGE: usize = 250;

const TEST: &str = "two_nodes_on_separate_hosts_deliver_every_event_across_a_sigkill";

/// Attempts B had in flight at its kill, counted by the receivers.
struct InFlightAtKill {
    /// B's requests the receivers were holding.
    held: usize,
    /// B's requests verified so far, to count those that arrive later.
    verified: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_separate_hosts_deliver_every_event_across_a_sigkill() {
    let started = Instant::now();
    let hosts = fullup_hosts::check_support();
    if !fullup_testkit::require(hosts.is_ok(), &format!("{hosts:?}"), TEST) {
        return;
    }
    let Some(db) = TestDatabase::create(TEST).await else {
        return;
    };
    let cluster = Cluster::start(2, &db.url).await.expect("two hosts");
    let (a_ip, b_ip) = (host_ip(&cluster, 0), host_ip(&cluster, 1));
    let mut receivers = Vec::with_capacity(WEBHOOKS);
    for _ in 0..WEBHOOKS {
        receivers.push(RecordingReceiver::start_on(IpAddr::V4(cluster.root_ip())).await);
    }
    let args = [&TIMEOUTS[..], &["--workers", WORKERS]].concat();
    let envs = [("FULLUP_MAIN_KEY", MAIN_KEY)];
    let node_a = Server::start_on(&cluster, 0, &args, &envs).await;
    let mut node_b = Server::start_on(&cluster, 1, &args, &envs).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let hooks: Vec<&RecordingReceiver> = receivers.iter().collect();
    let site = create_site_with_webhooks(&client, &node_a.base, &hooks).await;

    let ingest = Ingest::new(client.clone(), site.clone(), EVENTS);
    let clients = spawn_clients(&ingest, &node_a.base, CLIENTS);
    let at_kill = kill_mid_delivery(&mut node_b, b_ip, &ingest, &receivers).await;
    let late = verified_from(&receivers, b_ip) - at_kill.verified;
    let _restarted_b = Server::start_on(&cluster, 1, &args, &envs).await;
    assert_eq!(join_clients(clients).await, 0, "ingest on node A failed");
    let accepted = ingest.accepted_ids();
    assert_eq!(accepted.len(), EVENTS, "every event has one accepted id");

    for receiver in &receivers {
        wait_for_all(receiver, &accepted, DELIVERY_TIMEOUT).await;
    }
    // The attempts B left unrecorded are made again once its leases end.
    wait_until_recorded(&client, &node_a.base, &site, DELIVERY_TIMEOUT).await;
    for receiver in &receivers {
        assert_eq!(receiver.failures(), 0, "deliveries that did not verify");
        assert_eq!(receiver.received(), accepted, "events nobody sent arrived");
    }
    let in_flight = at_kill.held + usize::try_from(late).expect("a count");
    let duplicates: u64 = receivers.iter().map(RecordingReceiver::duplicates).sum();
    assert!(
        duplicates <= in_flight as u64,
        "{duplicates} duplicates, but B had only {in_flight} attempts in flight when killed"
    );
    let overlapping: usize = receivers.iter().map(RecordingReceiver::overlapping).sum();
    assert_eq!(overlapping, 0, "requests for one event arrived at once");
    let (by_a, by_b) = (
        verified_from(&receivers, a_ip),
        verified_from(&receivers, b_ip),
    );
    let by_restarted_b = by_b - at_kill.verified - late;
    assert!(
        by_a > 0 && at_kill.verified > 0 && by_restarted_b > 0,
        "A delivered {by_a}, B {} before the kill and {by_restarted_b} after its restart",
        at_kill.verified
    );
    let retried = check_attempt_log(&client, &node_a.base, &site).await;
    println!(
        "{EVENTS} events x {WEBHOOKS} webhooks delivered: {by_a} requests from A, {by_b} from B \
         ({by_restarted_b} after its restart); \
         B killed with {} attempts held and {late} arriving later; {duplicates} duplicates; \
         {retried} deliveries with more than one recorded attempt, none overlapping; in {:?}",
        at_kill.held,
        started.elapsed()
    );
}

/// Waits until A has accepted enough events and B has requests at the receivers, holds
/// B's answers for [`HOLD_BEFORE_KILL`], and SIGKILLs B; then lets the held answers go.
async fn kill_mid_delivery(
    node_b: &mut Server,
    b_ip: IpAddr,
    ingest: &Ingest,
    receivers: &[RecordingReceiver],
) -> InFlightAtKill {
    let deadline = Instant::now() + KILL_TIMEOUT;
    while ingest.accepted_count() < KILL_AFTER_ACCEPTED || in_flight_from(receivers, b_ip) == 0 {
        assert!(
            Instant::now() < deadline,
            "no moment with {KILL_AFTER_ACCEPTED} accepted events and B's attempts in flight \
             (accepted {})",
            ingest.accepted_count()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for receiver in receivers {
        receiver.hold(b_ip);
    }
    tokio::time::sleep(HOLD_BEFORE_KILL).await;
    let at_kill = InFlightAtKill {
        held: in_flight_from(receivers, b_ip),
        verified: verified_from(receivers, b_ip),
    };
    node_b.kill();
    for receiver in receivers {
        receiver.release();
    }
    assert!(at_kill.held > 0, "B had no attempt in flight when killed");
    at_kill
}

fn host_ip(cluster: &Cluster, index: usize) -> IpAddr {
    IpAddr::V4(cluster.hosts()[index].ip())
}

fn in_flight_from(receivers: &[RecordingReceiver], sender: IpAddr) -> usize {
    receivers.iter().map(|r| r.in_flight_from(sender)).sum()
}

fn verified_from(receivers: &[RecordingReceiver], sender: IpAddr) -> u64 {
    receivers.iter().map(|r| r.verified_from(sender)).sum()
}

/// Checks, from the API, that every delivery succeeded and that no two recorded
/// attempts of one delivery overlap; returns how many deliveries had more than one.
async fn check_attempt_log(client: &reqwest::Client, base: &str, site: &str) -> usize {
    let deliveries = all_deliveries(client, base, site).await;
    assert_eq!(
        deliveries.len(),
        EVENTS * WEBHOOKS,
        "one delivery per event and webhook"
    );
    let failed: Vec<&Value> = deliveries
        .iter()
        .filter(|d| d["state"] != "succeeded")
        .collect();
    assert!(
        failed.is_empty(),
        "{} deliveries did not succeed, e.g. {}",
        failed.len(),
        failed[0]
    );
    let mut retried = 0;
    for delivery in deliveries
        .iter()
        .filter(|d| d["attempt_count"].as_u64() > Some(1))
    {
        retried += 1;
        let id = delivery["id"].as_str().expect("a delivery id");
        let url = format!("{base}/v1/sites/{site}/deliveries/{id}/attempts?limit={PAGE}");
        let attempts = fetch(client, url).await;
        let mut spans: Vec<(i64, i64)> = attempts["data"]
            .as_array()
            .expect("a list of attempts")
            .iter()
            .map(span)
            .collect();
        assert!(
            !any_overlap(&mut spans),
            "delivery {id} was attempted twice at once: {attempts}"
        );
    }
    retried
}

async fn all_deliveries(client: &reqwest::Client, base: &str, site: &str) -> Vec<Value> {
    let mut deliveries = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = format!("{base}/v1/sites/{site}/deliveries?limit={PAGE}{cursor}");
        let page = fetch(client, url).await;
        deliveries.extend(page["data"].as_array().expect("a list").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return deliveries,
        }
    }
}

/// A recorded attempt's start and end, in Unix milliseconds (both as the API shows
/// them: to the millisecond, which never makes two attempts one after the other look
/// overlapping).
fn span(attempt: &Value) -> (i64, i64) {
    let created_at = attempt["created_at"].as_str().expect("created_at");
    let start = Timestamp::parse_rfc3339(created_at)
        .expect("an RFC 3339 time")
        .unix_ms();
    (
        start,
        start + attempt["duration_ms"].as_i64().expect("duration_ms"),
    )
}

/// Whether one of `spans` starts before another has ended.
fn any_overlap(spans: &mut [(i64, i64)]) -> bool {
    spans.sort_unstable();
    // Sorted by start, with no neighbour overlapping, ends grow too: no pair overlaps.
    spans.windows(2).any(|pair| pair[1].0 < pair[0].1)
}

#[test]
fn overlap_is_one_attempt_starting_before_another_ended() {
    assert!(!any_overlap(&mut [(0, 10), (10, 20), (25, 30)]));
    assert!(any_overlap(&mut [(25, 30), (0, 10), (9, 20)]));
    assert!(any_overlap(&mut [(0, 100), (10, 20), (30, 40)]));
    assert!(!any_overlap(&mut []));
}
