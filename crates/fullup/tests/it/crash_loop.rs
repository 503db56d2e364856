//! The crash loop (issue #17, item 1): `fullup serve` SIGKILLed again and again while
//! events are ingested and delivered, restarted each time on the same database, on
//! SQLite (one node) and on PostgreSQL (two nodes, one of them killed each round).
//!
//! 8 clients send numbered events with an `Idempotency-Key` each, round-robin over the
//! nodes up at the time; an event whose request failed (its node was killed) is sent
//! again until it gets a 202, so an event committed just before a kill gets its
//! original id back. Every event goes to 3 webhooks, one of which answers 500 to a
//! fifth of the requests (seeded draws). Kills come at seeded random intervals. At the
//! end:
//! - every accepted event reached every webhook with a valid signature, and nothing
//!   else did (nothing lost, nothing invented);
//! - the store holds exactly one event per idempotency key, with the accepted ids;
//! - duplicates (verified 200 receipts beyond the first per webhook and event) are at
//!   most 1 % of the deliveries, and those each kill caused at most
//!   [`MOST_IN_FLIGHT`], the node's in-flight limit. A
//!   duplicate is put down to the first kill whose node was back up (had printed its
//!   address) after the duplicate's first receipt: requests the dead node sent just
//!   before its kill may be read after it. None may come after the last restart;
//! - on SQLite, `PRAGMA integrity_check` says `ok` after every kill, before the restart.
//!
//! Small scale by default (CI); `FULLUP_RELIABILITY=full` runs the scale.
//! `FULLUP_CRASH_LOOP_SEED` replays a run's draws (the test prints its seed); the
//! timing of the kills against the work is not replayed.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fullup_testkit::postgres::TestDatabase;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::Value;
use sqlx::Connection as _;

use crate::support_ingest::{Ingest, Targets, spawn_persistent_clients, wait_for_all};
use crate::support_receiver::RecordingReceiver;
use crate::support_server::{
    MAIN_KEY, Server, create_site_with_webhooks, fetch, wait_until_recorded,
};

/// The variable that sets the seed of the run's draws.
const SEED_ENV: &str = "FULLUP_CRASH_LOOP_SEED";
/// Concurrent ingest clients.
const CLIENTS: usize = 8;
/// Webhooks, each with its own receiver; every event goes to each.
const WEBHOOKS: usize = 3;
/// The share of requests the first webhook's receiver answers 500.
const FAILING_SHARE: f64 = 0.2;
/// Attempts in flight per node (`--workers`): the most a kill can leave unrecorded,
/// as [`PER_WEBHOOK`] x [`WEBHOOKS`] bounds the leases a node holds.
const WORKERS: usize = 24;
/// `--per-webhook-concurrency`.
const PER_WEBHOOK: usize = 8;
/// The attempts a node can have unrecorded at a kill, each sent again: its in-flight
/// limit, [`WORKERS`], as issue #17 item 1 asks. (This loop found a node over its
/// limits, up to 16 requests at once to a webhook limited to 8 and 32 duplicates from
/// one kill, while a claim and ingests' hand-offs filled the same room; the inbox now
/// admits nothing while a claim runs: `delivery/inbox.rs`.)
const MOST_IN_FLIGHT: usize = WORKERS;
/// Retries 1 s apart: 20 failures in a row of a 500 at a fifth is 1 in 10^14, so no
/// delivery runs out of attempts, kills included.
const RETRY_SCHEDULE: &str = "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s";
/// Leases last connect + request timeout + 30 s: a dead PostgreSQL node's end 61 s
/// after its claims. A request that timed out after it arrived would be sent again
/// with no kill: 30 s keeps that out of a loaded machine's reach.
const TIMEOUTS: [&str; 4] = ["--connect-timeout", "1s", "--request-timeout", "30s"];
/// Bound on the wait for every accepted event after the last kill, plus
/// [`DELIVERY_TIMEOUT_PER_EVENT`] per event.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// A debug build on a shared machine delivers several hundred events a second.
const DELIVERY_TIMEOUT_PER_EVENT: Duration = Duration::from_millis(10);
/// Largest page of a list route.
const PAGE: usize = 250;

/// How much work and how many kills a run has.
#[derive(Debug, Clone)]
struct Scale {
    events: usize,
    kills: usize,
    /// Wait before each kill, in milliseconds.
    interval_ms: RangeInclusive<u64>,
}

impl Scale {
    /// CI's: a few kills over a few thousand events.
    fn small() -> Scale {
        Scale {
            events: 4_000,
            kills: 4,
            interval_ms: 1_000..=3_000,
        }
    }

    /// The issue's: 50,000 events, 20 kills 1 to 10 s apart.
    fn full() -> Scale {
        Scale {
            events: 50_000,
            kills: 20,
            interval_ms: 1_000..=10_000,
        }
    }

    fn from_env() -> Scale {
        fullup_testkit::Scale::from_env().pick(Scale::small(), Scale::full())
    }
}

/// Where the nodes keep their data.
enum Store {
    Sqlite(PathBuf),
    Postgres(TestDatabase),
}

impl Store {
    fn url(&self) -> String {
        match self {
            Store::Sqlite(path) => format!("sqlite://{}", path.display()),
            Store::Postgres(db) => db.url.clone(),
        }
    }
}

/// The nodes of a run and where the ingest clients find them.
struct Nodes {
    store: Store,
    servers: Vec<Server>,
    targets: Arc<Targets>,
}

impl Nodes {
    async fn start(store: Store, count: usize) -> Nodes {
        let mut servers = Vec::with_capacity(count);
        for _ in 0..count {
            servers.push(start_node(&store.url()).await);
        }
        let targets = Targets::new(servers.iter().map(|s| s.base.clone()).collect());
        Nodes {
            store,
            servers,
            targets,
        }
    }

    /// SIGKILLs node `index`, checks a SQLite database's integrity, and restarts it;
    /// counts both in `kills`.
    async fn kill_and_restart(&mut self, index: usize, kills: &mut Kills) {
        self.servers[index].kill();
        if let Store::Sqlite(path) = &self.store {
            assert_integrity(path).await;
            kills.integrity_checks += 1;
        }
        self.servers[index] = start_node(&self.store.url()).await;
        kills.restarted_at.push(Instant::now());
        self.targets.set(index, self.servers[index].base.clone());
    }
}

async fn start_node(database_url: &str) -> Server {
    let (workers, per_webhook) = (WORKERS.to_string(), PER_WEBHOOK.to_string());
    let args = [
        &TIMEOUTS[..],
        &[
            "--workers",
            &workers,
            "--per-webhook-concurrency",
            &per_webhook,
        ],
        &[
            "--retry-schedule",
            RETRY_SCHEDULE,
            "--ingest-rate-limit",
            "0",
        ],
    ]
    .concat();
    Server::start(database_url, &args, &[("FULLUP_MAIN_KEY", MAIN_KEY)]).await
}

/// `PRAGMA integrity_check` on the database file of a node that is not running.
async fn assert_integrity(path: &Path) {
    let url = format!("sqlite://{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the SQLite database");
    let answer: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .expect("PRAGMA integrity_check");
    conn.close().await.expect("close the SQLite database");
    assert_eq!(answer, ["ok"], "PRAGMA integrity_check after a kill");
}

/// What the kills did.
#[derive(Debug, Default)]
struct Kills {
    /// When the node of each kill was back up.
    restarted_at: Vec<Instant>,
    /// Kills that found attempts in flight at the receivers.
    with_attempts_in_flight: usize,
    /// SQLite integrity checks that said `ok`.
    integrity_checks: usize,
}

/// Kills a node (drawn from `rng` when there are several) after each of `scale`'s
/// intervals and restarts it.
async fn kill_loop(
    nodes: &mut Nodes,
    scale: &Scale,
    rng: &mut StdRng,
    receivers: &[RecordingReceiver],
) -> Kills {
    let mut kills = Kills::default();
    for _ in 0..scale.kills {
        let wait = rng.gen_range(scale.interval_ms.clone());
        let index = rng.gen_range(0..nodes.servers.len());
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let in_flight: usize = receivers.iter().map(RecordingReceiver::in_flight).sum();
        kills.with_attempts_in_flight += usize::from(in_flight > 0);
        nodes.kill_and_restart(index, &mut kills).await;
    }
    kills
}

/// Runs the loop on `nodes` nodes of `store` and checks what it promises.
async fn crash_loop(store: Store, node_count: usize) {
    let started = Instant::now();
    let scale = Scale::from_env();
    let seed = std::env::var(SEED_ENV)
        .ok()
        .map(|s| s.parse().expect("FULLUP_CRASH_LOOP_SEED is a u64"))
        .unwrap_or_else(rand::random::<u64>);
    println!("crash loop: {scale:?}, seed {seed} (set {SEED_ENV} to replay the draws)");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut receivers = vec![RecordingReceiver::start_failing(FAILING_SHARE, seed).await];
    for _ in 1..WEBHOOKS {
        receivers.push(RecordingReceiver::start().await);
    }
    let mut nodes = Nodes::start(store, node_count).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let hooks: Vec<&RecordingReceiver> = receivers.iter().collect();
    let site = create_site_with_webhooks(&client, &nodes.servers[0].base, &hooks).await;

    let ingest = Ingest::new(client.clone(), site.clone(), scale.events);
    let clients = spawn_persistent_clients(&ingest, &nodes.targets, CLIENTS);
    let kills = kill_loop(&mut nodes, &scale, &mut rng, &receivers).await;
    let mut resent = 0;
    for client in clients {
        resent += client.await.expect("an ingest client panicked");
    }
    let accepted = ingest.accepted_ids();
    assert_eq!(
        accepted.len(),
        scale.events,
        "every event has one accepted id"
    );

    let within = DELIVERY_TIMEOUT + DELIVERY_TIMEOUT_PER_EVENT * scale.events as u32;
    for receiver in &receivers {
        wait_for_all(receiver, &accepted, within).await;
    }
    // A dead PostgreSQL node's unrecorded attempts are made again once its leases end.
    let base = nodes.servers[0].base.clone();
    wait_until_recorded(&client, &base, &site, within).await;
    for receiver in &receivers {
        assert_eq!(receiver.failures(), 0, "deliveries that did not verify");
        assert_eq!(receiver.received(), accepted, "events nobody sent arrived");
    }
    let stored = assert_one_event_per_key(&client, &base, &site, &accepted).await;

    let deliveries: u64 = receivers.iter().map(RecordingReceiver::deliveries).sum();
    let firsts = receivers
        .iter()
        .flat_map(RecordingReceiver::duplicates_by_first_arrival)
        .collect();
    let per_kill = duplicates_per_kill(&kills.restarted_at, firsts);
    let duplicates: usize = per_kill.iter().sum();
    let share = 100.0 * duplicates as f64 / (scale.events * WEBHOOKS) as f64;
    let refused: usize = receivers.iter().map(RecordingReceiver::refused).sum();
    let most_at_once: Vec<usize> = receivers
        .iter()
        .map(RecordingReceiver::max_in_flight)
        .collect();
    println!(
        "crash loop ({node_count} node(s)): {} events, {} accepted ({resent} sent again), \
         {stored} stored; {} kills ({} with attempts in flight), {} integrity checks ok; \
         lost 0; {deliveries} deliveries to {WEBHOOKS} webhooks, {refused} answered 500; \
         duplicates {duplicates} ({share:.3} %), per kill {:?} (max {}, in-flight limit \
         {WORKERS}); most requests at once per webhook {most_at_once:?} (limit \
         {PER_WEBHOOK} per node); in {:?}",
        scale.events,
        accepted.len(),
        kills.restarted_at.len(),
        kills.with_attempts_in_flight,
        kills.integrity_checks,
        &per_kill[..kills.restarted_at.len()],
        per_kill.iter().max().unwrap_or(&0),
        started.elapsed()
    );
    assert!(
        duplicates * 100 <= scale.events * WEBHOOKS,
        "{duplicates} duplicates, more than 1 % of {} deliveries",
        scale.events * WEBHOOKS
    );
    for (kill, &n) in per_kill[..kills.restarted_at.len()].iter().enumerate() {
        assert!(
            n <= MOST_IN_FLIGHT,
            "kill {kill} caused {n} duplicates, more than {MOST_IN_FLIGHT} attempts in flight"
        );
    }
    assert_eq!(
        per_kill[kills.restarted_at.len()],
        0,
        "duplicates whose first receipt came after the last restart"
    );
}

/// How many duplicates each kill caused, given when each kill's node was back up and
/// when each duplicate's first receipt arrived: the first kill whose node was back up
/// at or after it; the last count is those after every restart.
fn duplicates_per_kill(restarts: &[Instant], first_arrivals: Vec<Instant>) -> Vec<usize> {
    let mut counts = vec![0; restarts.len() + 1];
    for first in first_arrivals {
        counts[restarts.partition_point(|&up| up < first)] += 1;
    }
    counts
}

/// Checks, from the API, that the site holds one event per idempotency key and exactly
/// the accepted ids; returns how many events it holds.
async fn assert_one_event_per_key(
    client: &reqwest::Client,
    base: &str,
    site: &str,
    accepted: &HashSet<String>,
) -> usize {
    let mut events = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = format!("{base}/v1/sites/{site}/events?limit={PAGE}{cursor}");
        let page = fetch(client, url).await;
        events.extend(page["data"].as_array().expect("a list").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    let keys: HashSet<&str> = events.iter().map(|e| text(e, "idempotency_key")).collect();
    let ids: HashSet<String> = events.iter().map(|e| text(e, "id").to_owned()).collect();
    assert_eq!(
        keys.len(),
        events.len(),
        "{} events stored for {} idempotency keys",
        events.len(),
        keys.len()
    );
    assert_eq!(
        &ids, accepted,
        "the stored events are not the accepted ones"
    );
    events.len()
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_sqlite_loses_no_accepted_event() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    crash_loop(Store::Sqlite(dir.path().join("fullup.db")), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_two_postgres_nodes_lose_no_accepted_event() {
    let Some(db) =
        TestDatabase::create("crash_loop_two_postgres_nodes_lose_no_accepted_event").await
    else {
        return;
    };
    crash_loop(Store::Postgres(db), 2).await;
}

#[test]
fn a_duplicate_is_put_down_to_the_first_restart_after_its_first_receipt() {
    let t0 = Instant::now();
    let at = |ms| t0 + Duration::from_millis(ms);
    let restarts = [at(10), at(20)];
    let firsts = vec![at(0), at(10), at(11), at(15), at(25)];
    assert_eq!(duplicates_per_kill(&restarts, firsts), [2, 2, 1]);
    assert_eq!(duplicates_per_kill(&[], vec![at(1)]), [1]);
}
