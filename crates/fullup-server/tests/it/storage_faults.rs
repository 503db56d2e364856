//! Storage faults (issue #17, item 5): while PostgreSQL is unreachable or SQLite's disk
//! is full, every API call that needs the store answers 503 `store_unavailable` with a
//! `Retry-After`, never a 500 and never a 202 for an event it did not commit; reads
//! keep working where they can; the service recovers by itself; a node started while
//! PostgreSQL is down waits for it; every event that got a 202 is delivered.
//!
//! PostgreSQL is made unreachable by a TCP forwarder between the service and the
//! server (`fullup_hosts::Forwarder`) that the test stops (its connections cut, new
//! ones refused) and starts again on the same port; the server itself keeps running.
//! SQLite's disk is a small tmpfs the test mounts (root needed: CI runs as root) and
//! fills.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fullup_hosts::Forwarder;
use fullup_server::config::Config;
use fullup_server::crypto::MainKey;
use fullup_server::domain::retry::RetrySchedule;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};

use crate::support::postgres::{TestDatabase, pg_config, start_node};
use crate::support::server::{ADMIN_TOKEN, test_config};
use crate::support::{TestReceiver, TestServer};

/// Longest a test waits for the service to recover or deliver before failing; only a
/// broken build waits this long.
const GUARD: Duration = Duration::from_secs(120);

/// A call's status, `Retry-After` and JSON body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

/// Calls the API with the admin token, whatever the answer.
async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> Answer {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        body,
    }
}

/// Sends an event with `key`; the event's id when it got 202.
async fn ingest(server: &TestServer, site: &str, key: &str) -> (Answer, Option<String>) {
    let answer = call(
        server,
        reqwest::Method::POST,
        &format!("/v1/sites/{site}/events"),
        Some(json!({"type": "form.submitted", "data": {"key": key}})),
        Some(key),
    )
    .await;
    let id = (answer.status == 202).then(|| answer.body["id"].as_str().expect("id").to_owned());
    (answer, id)
}

/// Asserts a 503 `store_unavailable` with a whole number of seconds in `Retry-After`.
fn assert_unavailable(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 503, "{what}: {}", answer.body);
    assert_eq!(
        answer.body["error"]["code"], "store_unavailable",
        "{what}: {}",
        answer.body
    );
    let seconds = answer.retry_after.as_deref().unwrap_or_default();
    assert!(
        seconds.parse::<u64>().is_ok_and(|s| s > 0),
        "{what}: Retry-After {seconds:?}"
    );
}

/// What a receiver has been sent, by event id (`webhook-id`).
struct Arrivals {
    receiver: TestReceiver,
    seen: HashSet<String>,
}

impl Arrivals {
    async fn start() -> Self {
        Self {
            receiver: TestReceiver::start().await,
            seen: HashSet::new(),
        }
    }
}

/// Waits until the receiver has been sent every event of `ids`, then until each one's
/// delivery is `succeeded`.
async fn assert_all_delivered(
    server: &TestServer,
    site: &str,
    arrivals: &mut Arrivals,
    ids: &[String],
) {
    let deadline = tokio::time::Instant::now() + GUARD;
    while let Some(missing) = ids.iter().find(|id| !arrivals.seen.contains(*id)) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(got) = arrivals.receiver.try_next(left).await else {
            let deliveries = server.deliveries(site, "limit=100").await;
            panic!("{missing} was never delivered; deliveries: {deliveries:?}");
        };
        arrivals.seen.insert(got.header("webhook-id").to_owned());
    }
    for id in ids {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            let found = server.deliveries(site, &format!("event_id={id}")).await;
            if found.iter().any(|d| d["state"] == "succeeded") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} never succeeded: {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A site with one webhook to a new receiver, and one event ("before") delivered and
/// recorded, so what follows measures the fault's own effects.
struct Scene {
    arrivals: Arrivals,
    site: String,
    /// The webhook's URL.
    url: String,
    /// The events that got 202, "before" first.
    accepted: Vec<String>,
}

impl Scene {
    async fn set(server: &TestServer) -> Self {
        let mut arrivals = Arrivals::start().await;
        let site = server.create_site().await;
        let url = arrivals.receiver.url();
        let (_, secret) = server.create_webhook(&site, &url, &["*"]).await;
        arrivals.receiver.expect_secret(secret);
        let (_, before) = ingest(server, &site, "before").await;
        let accepted = vec![before.expect("202 before the fault")];
        assert_all_delivered(server, &site, &mut arrivals, &accepted).await;
        Self {
            arrivals,
            site,
            url,
            accepted,
        }
    }
}

/// Sends the event `key` until it gets 202 (each refusal a 503 `store_unavailable`),
/// as a client following `Retry-After` would, only faster; its id.
async fn ingest_once_recovered(server: &TestServer, site: &str, key: &str) -> String {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let (answer, id) = ingest(server, site, key).await;
        if let Some(id) = id {
            return id;
        }
        assert_unavailable(&answer, &format!("ingest of {key} while recovering"));
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A throwaway PostgreSQL database that the service reaches through a TCP forwarder,
/// which the test stops (the database unreachable: connections cut, new ones refused,
/// the server itself left running) and starts again on the same port.
struct SwitchedDatabase {
    db: TestDatabase,
    key: MainKey,
    /// The server's `host:port`, where the forwarder forwards to.
    target: String,
    /// Where the forwarder listens, running or not.
    address: SocketAddr,
    forwarder: Option<Forwarder>,
}

impl SwitchedDatabase {
    /// A new database, reachable (`up`) or not yet; None (after a notice) when
    /// PostgreSQL is unreachable outside CI.
    async fn create(test: &str, up: bool) -> Option<Self> {
        let db = TestDatabase::create(test).await?;
        let url = url::Url::parse(&db.url).expect("database url");
        let host = url.host_str().expect("host");
        let target = format!("{host}:{}", url.port().unwrap_or(5432));
        let forwarder = Forwarder::start("127.0.0.1:0".parse().expect("addr"), target.clone())
            .await
            .expect("forwarder");
        let address = forwarder.addr();
        Some(Self {
            db,
            key: MainKey::generate(),
            target,
            address,
            forwarder: up.then_some(forwarder),
        })
    }

    /// The test settings on this database, through the forwarder; a call waits
    /// `acquire_timeout` for a connection while the database is unreachable.
    fn config(&self, acquire_timeout: Duration) -> Config {
        let mut config = pg_config(&self.db, &self.key);
        let mut url = url::Url::parse(&self.db.url).expect("database url");
        url.set_host(Some(&self.address.ip().to_string()))
            .expect("host");
        url.set_port(Some(self.address.port())).expect("port");
        config.database_url = url.to_string();
        config.store.acquire_timeout = acquire_timeout;
        config
    }

    /// The database becomes unreachable.
    fn cut(&mut self) {
        self.forwarder = None;
    }

    /// The database is reachable again, on the same address.
    async fn restore(&mut self) {
        let forwarder = Forwarder::start(self.address, self.target.clone())
            .await
            .expect("forwarder again");
        self.forwarder = Some(forwarder);
    }
}

#[tokio::test]
async fn postgres_unreachable_answers_503_with_retry_after_and_recovers_by_itself() {
    let test =
        "storage_faults::postgres_unreachable_answers_503_with_retry_after_and_recovers_by_itself";
    let Some(mut database) = SwitchedDatabase::create(test, true).await else {
        return;
    };
    let server = start_node(database.config(Duration::from_millis(500))).await;
    let Scene {
        mut arrivals,
        site,
        url,
        mut accepted,
    } = Scene::set(&server).await;

    database.cut();
    let (answer, id) = ingest(&server, &site, "during").await;
    assert_eq!(id, None, "a 202 while the database is unreachable");
    assert_unavailable(&answer, "ingest");
    for path in [
        format!("/v1/sites/{site}"),
        format!("/v1/sites/{site}/events"),
        format!("/v1/sites/{site}/deliveries"),
        format!("/v1/sites/{site}/webhooks"),
    ] {
        let answer = call(&server, reqwest::Method::GET, &path, None, None).await;
        assert_unavailable(&answer, &path);
    }
    let answer = call(
        &server,
        reqwest::Method::POST,
        &format!("/v1/sites/{site}/webhooks"),
        Some(json!({"url": url})),
        None,
    )
    .await;
    assert_unavailable(&answer, "create a webhook");

    // The same port again: the service reconnects by itself. The client retries the
    // refused event with its Idempotency-Key, as the 503 says.
    database.restore().await;
    accepted.push(ingest_once_recovered(&server, &site, "during").await);
    let (_, after) = ingest(&server, &site, "after").await;
    accepted.push(after.expect("202 after the outage"));
    assert_all_delivered(&server, &site, &mut arrivals, &accepted).await;
    server.stop().await;
}

#[tokio::test]
async fn an_attempt_whose_record_fails_in_an_outage_is_recorded_and_retried_once_the_store_returns()
{
    let test = "storage_faults::an_attempt_whose_record_fails_in_an_outage_is_recorded_and_retried_once_the_store_returns";
    let Some(mut database) = SwitchedDatabase::create(test, true).await else {
        return;
    };
    let mut config = database.config(Duration::from_millis(500));
    // The attempt in flight ends (times out) while the database is unreachable. Its
    // lease (1 + 1 + 30 s) outlives the outage: the retry must not wait for it.
    config.delivery.connect_timeout = Duration::from_secs(1);
    config.delivery.request_timeout = Duration::from_secs(1);
    config.delivery.retry = RetrySchedule::new(vec![Duration::from_millis(200)], 0.0);
    let server = start_node(config).await;
    let Scene {
        mut arrivals,
        site,
        mut accepted,
        ..
    } = Scene::set(&server).await;
    arrivals.receiver.set_hang(true);
    let (_, in_flight) = ingest(&server, &site, "in-flight").await;
    let event = in_flight.expect("202 before the outage");
    accepted.push(event.clone());
    let got = arrivals.receiver.next(GUARD).await;
    assert_eq!(got.header("fullup-attempt"), "1");
    arrivals.seen.insert(got.header("webhook-id").to_owned());

    database.cut();
    let failed_records = r#"fullup_store_errors_total{op="complete"}"#;
    let deadline = tokio::time::Instant::now() + GUARD;
    while crate::readiness::sample(&server, failed_records).await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the attempt was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    arrivals.receiver.set_hang(false);
    database.restore().await;
    // The record is tried again until the store answers: the timeout is recorded as
    // attempt 1, and the retry (200 ms later, not at the lease's end) is attempt 2.
    let again = arrivals.receiver.next(GUARD).await;
    assert_eq!(again.header("webhook-id"), event);
    assert_eq!(
        again.header("fullup-attempt"),
        "2",
        "the lost record was not retried"
    );
    assert_all_delivered(&server, &site, &mut arrivals, &accepted).await;
    let delivery = server.deliveries(&site, &format!("event_id={event}")).await;
    let delivery = delivery[0]["id"].as_str().expect("delivery id");
    let attempts = server.attempts(&site, delivery).await;
    let kinds: Vec<(&Value, &Value)> = attempts
        .iter()
        .map(|a| (&a["attempt_number"], &a["error_kind"]))
        .collect();
    assert_eq!(
        kinds,
        [(&json!(2), &Value::Null), (&json!(1), &json!("timeout"))],
        "{attempts:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_node_started_while_postgres_is_unreachable_waits_for_it() {
    let test = "storage_faults::a_node_started_while_postgres_is_unreachable_waits_for_it";
    let Some(mut database) = SwitchedDatabase::create(test, false).await else {
        return;
    };
    let mut config = database.config(Duration::from_millis(300));
    config.store.wait = GUARD;
    let starting = tokio::spawn(start_node(config));
    // Several tries fail meanwhile (each is logged); the node must still be waiting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !starting.is_finished(),
        "the node gave up while the database was down"
    );
    database.restore().await;
    let server = starting.await.expect("the node started");
    let site = server.create_site().await;
    let (status, body) = server
        .call(reqwest::Method::GET, &format!("/v1/sites/{site}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_node_that_may_not_wait_exits_with_an_error_naming_the_flag() {
    let test = "storage_faults::a_node_that_may_not_wait_exits_with_an_error_naming_the_flag";
    let Some(database) = SwitchedDatabase::create(test, false).await else {
        return;
    };
    let mut config = database.config(Duration::from_millis(300));
    config.store.wait = Duration::from_secs(1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = fullup_server::app::Application::build(config, listener)
        .await
        .expect_err("the database is down");
    let message = format!("{err:#}");
    assert!(
        message.contains("unavailable") && message.contains("--database-wait"),
        "{message}"
    );
}

/// A tmpfs of `size` mounted on a new folder; unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    /// None (after a notice) when this machine does not let the test mount (not root),
    /// outside CI; in CI, a failure.
    fn mount(size: &str, test: &str) -> Option<Self> {
        let parent = tempfile::tempdir().expect("temp dir");
        let path = parent.path().join("disk");
        std::fs::create_dir(&path).expect("mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "fullup-test"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        if !fullup_testkit::require(mounted, "mounting a small tmpfs needs root", test) {
            return None;
        }
        Some(Self {
            path,
            _parent: parent,
        })
    }

    /// Writes `name` until the disk is full.
    fn fill(&self, name: &str) {
        use std::io::Write as _;
        let mut file = std::fs::File::create(self.path.join(name)).expect("filler");
        let chunk = vec![0_u8; 16 * 1024];
        loop {
            match file.write_all(&chunk) {
                Ok(()) => {}
                Err(err) if err.raw_os_error() == Some(28) => break, // ENOSPC
                Err(err) => panic!("filling the disk: {err}"),
            }
        }
        // Whatever is left is smaller than a chunk: take it too.
        for _ in 0..chunk.len() {
            if file.write_all(&[0]).is_err() {
                break;
            }
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[tokio::test]
async fn sqlite_disk_full_answers_503_keeps_reads_and_recovers_when_space_returns() {
    let test =
        "storage_faults::sqlite_disk_full_answers_503_keeps_reads_and_recovers_when_space_returns";
    let Some(disk) = SmallDisk::mount("4m", test) else {
        return;
    };
    let holder = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut config = test_config(&holder);
    config.database_url = format!("sqlite://{}", disk.path().join("fullup.db").display());
    let server = TestServer::start_in(holder, config).await;
    let Scene {
        mut arrivals,
        site,
        url,
        mut accepted,
    } = Scene::set(&server).await;

    disk.fill("filler");
    // Writes already allocated (the WAL's free frames) may still take a few events;
    // the first one that needs the disk to grow gets 503, and none ever gets 500.
    let mut refused = None;
    for n in 0..5000 {
        let (answer, id) = ingest(&server, &site, &format!("full-{n}")).await;
        match id {
            Some(id) => accepted.push(id),
            None => {
                refused = Some(answer);
                break;
            }
        }
    }
    let refused = refused.expect("an ingest on a full disk was refused");
    assert_unavailable(&refused, "ingest on a full disk");
    let answer = call(
        &server,
        reqwest::Method::POST,
        &format!("/v1/sites/{site}/webhooks"),
        Some(json!({"url": url})),
        None,
    )
    .await;
    assert_unavailable(&answer, "create a webhook on a full disk");
    for path in [
        format!("/v1/sites/{site}"),
        format!("/v1/sites/{site}/events"),
        format!("/v1/sites/{site}/webhooks"),
    ] {
        let answer = call(&server, reqwest::Method::GET, &path, None, None).await;
        assert_eq!(
            answer.status, 200,
            "{path} while the disk is full: {}",
            answer.body
        );
    }

    std::fs::remove_file(disk.path().join("filler")).expect("free the disk");
    accepted.push(ingest_once_recovered(&server, &site, "after").await);
    assert_all_delivered(&server, &site, &mut arrivals, &accepted).await;
    server.stop().await;
    drop(disk);
}
