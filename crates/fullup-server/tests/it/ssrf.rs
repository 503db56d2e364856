//! The SSRF guard end to end: refused at registration and at delivery, a canary
//! listener on loopback never touched, DNS rebinding defeated by pinning.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fullup_server::delivery::guard::Lookup;
use reqwest::Method;
use serde_json::json;

use crate::support::{TestReceiver, TestServer};

/// A TCP listener that only counts the connections it accepts.
struct Canary {
    port: u16,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Canary {
    async fn start(ip: &str, port: u16) -> Canary {
        let listener = tokio::net::TcpListener::bind((ip, port))
            .await
            .expect("bind canary");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((_socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        Canary { port, hits, task }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A resolver answering from a script: each name has a list of answers, one per call
/// (the last repeats), and every call is counted.
#[derive(Debug, Default)]
struct ScriptedLookup {
    answers: Mutex<HashMap<String, Vec<Vec<IpAddr>>>>,
    calls: Mutex<HashMap<String, usize>>,
}

impl ScriptedLookup {
    fn answer(&self, host: &str, script: &[&[&str]]) {
        let script = script
            .iter()
            .map(|ips| ips.iter().map(|ip| ip.parse().expect("ip")).collect())
            .collect();
        self.answers
            .lock()
            .expect("lock")
            .insert(host.to_owned(), script);
    }

    fn calls(&self, host: &str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .get(host)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait]
impl Lookup for ScriptedLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        let n = {
            let mut calls = self.calls.lock().expect("lock");
            let n = calls.entry(host.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        let answers = self.answers.lock().expect("lock");
        let script = answers
            .get(host)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"))?;
        Ok(script[(n - 1).min(script.len() - 1)].clone())
    }
}

/// Address forms of loopback and of other denied ranges; `{p}` is the canary port.
const REFUSED: &[&str] = &[
    "http://127.0.0.1:{p}/",
    "http://127.1:{p}/",
    "http://127.0.1:{p}/",
    "http://2130706433:{p}/",
    "http://0x7f000001:{p}/",
    "http://0x7f.1:{p}/",
    "http://0x7f.0.0.1:{p}/",
    "http://0177.0.0.1:{p}/",
    "http://0177.1:{p}/",
    "http://017700000001:{p}/",
    "http://127.255.255.254:{p}/",
    "http://[::1]:{p}/",
    "http://[0:0:0:0:0:0:0:1]:{p}/",
    "http://[::ffff:127.0.0.1]:{p}/",
    "http://[::ffff:7f00:1]:{p}/",
    "http://[::127.0.0.1]:{p}/",
    "http://[0::ffff:127.0.0.1]:{p}/",
    "http://[64:ff9b::127.0.0.1]:{p}/",
    "http://[64:ff9b::a9fe:a9fe]:{p}/",
    "http://[64:ff9b:1::1]:{p}/",
    "http://[2002:7f00:1::]:{p}/",
    "http://[2001::1]:{p}/",
    "http://[fe80::1]:{p}/",
    "http://[fc00::1]:{p}/",
    "http://[fd00:ec2::254]:{p}/",
    "http://[fec0::1]:{p}/",
    "http://[ff02::1]:{p}/",
    "http://[::]:{p}/",
    "http://0.0.0.0:{p}/",
    "http://0:{p}/",
    "http://10.0.0.1:{p}/",
    "http://100.64.0.1:{p}/",
    "http://169.254.169.254:{p}/latest/meta-data/",
    "http://172.16.0.1:{p}/",
    "http://172.31.255.254:{p}/",
    "http://192.0.0.1:{p}/",
    "http://192.0.2.1:{p}/",
    "http://192.88.99.1:{p}/",
    "http://192.168.0.1:{p}/",
    "http://198.18.0.1:{p}/",
    "http://198.51.100.1:{p}/",
    "http://203.0.113.1:{p}/",
    "http://224.0.0.1:{p}/",
    "http://240.0.0.1:{p}/",
    "http://255.255.255.255:{p}/",
    "http://loopback.test:{p}/",
    "http://LOOPBACK.test.:{p}/",
    "http://mixed.test:{p}/",
    "http://metadata.test:{p}/",
    "http://mapped.test:{p}/",
    // Names under `localhost` are loopback by definition (RFC 6761), whatever the
    // resolver says; this table's resolver does not know them, and a name that does
    // not resolve is otherwise accepted at registration.
    "http://localhost:{p}/",
    "http://LocalHost:{p}/",
    "http://LOCALHOST.:{p}/",
    "http://localhost.:{p}/",
    "http://hooks.localhost:{p}/",
    "http://A.B.LOCALHOST.:{p}/",
];

fn lookup_for_table() -> Arc<ScriptedLookup> {
    let lookup = Arc::new(ScriptedLookup::default());
    lookup.answer("loopback.test", &[&["127.0.0.1"]]);
    lookup.answer("loopback.test.", &[&["127.0.0.1"]]);
    lookup.answer("mixed.test", &[&["93.184.216.34", "127.0.0.1"]]);
    lookup.answer("metadata.test", &[&["169.254.169.254"]]);
    lookup.answer("mapped.test", &[&["::ffff:127.0.0.1"]]);
    lookup.answer("public.test", &[&["93.184.216.34"]]);
    lookup
}

async fn guarded_server(lookup: Arc<ScriptedLookup>, allow: &[&str]) -> TestServer {
    let allow: Vec<ipnet::IpNet> = allow.iter().map(|n| n.parse().expect("net")).collect();
    TestServer::start_with(move |c| {
        c.network.allow = allow;
        c.lookup = lookup;
    })
    .await
}

#[tokio::test]
async fn special_purpose_addresses_are_refused_at_registration() {
    assert!(REFUSED.len() >= 40);
    let canary = Canary::start("127.0.0.1", 0).await;
    let server = guarded_server(lookup_for_table(), &[]).await;
    let site = server.create_site().await;
    for form in REFUSED {
        let url = form.replace("{p}", &canary.port.to_string());
        let (status, body) = server
            .call(
                Method::POST,
                &format!("/v1/sites/{site}/webhooks"),
                Some(json!({"url": url})),
            )
            .await;
        assert_eq!(status, 422, "{url} must be refused: {body}");
        assert_eq!(body["error"]["code"], "invalid_url", "{url}");
    }
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks"),
            Some(json!({"url": "http://10.1.2.3/hook"})),
        )
        .await;
    assert_eq!(status, 422);
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("--allow-network"),
        "the error names the flag: {message}"
    );
    assert_eq!(canary.hits(), 0);
    server.stop().await;
}

#[tokio::test]
async fn special_purpose_addresses_written_into_the_store_are_refused_at_delivery() {
    let canary = Canary::start("127.0.0.1", 0).await;
    let server = guarded_server(lookup_for_table(), &[]).await;
    let site = server.create_site().await;
    let mut ids = Vec::new();
    for _ in REFUSED {
        let (id, _) = server
            .create_webhook(&site, "http://public.test/hook", &["*"])
            .await;
        ids.push(id);
    }
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        server.dir.path().join("fullup.db").display()
    ))
    .await
    .expect("open the store directly");
    // URLs are sealed at rest: write them sealed under the database's key, bound to
    // their webhook, as a version with a laxer policy (or a writer with the key) would.
    let key = fullup_server::crypto::MainKey::read_file(&server.dir.path().join("fullup.key"))
        .expect("key file");
    for (id, form) in ids.iter().zip(REFUSED) {
        let url = form.replace("{p}", &canary.port.to_string());
        let sealed = key.seal(
            url.as_bytes(),
            format!("webhook-url:{site}:{id}").as_bytes(),
        );
        sqlx::query("UPDATE webhooks SET url_sealed = ? WHERE id = ?")
            .bind(sealed)
            .bind(id)
            .execute(&db)
            .await
            .expect("write url");
    }
    let event = server
        .send_event(&site, "form.submitted", json!({"n": 1}))
        .await;
    for _ in 0..500 {
        let deliveries = server
            .deliveries(&site, &format!("event_id={event}&limit=100"))
            .await;
        if deliveries.len() == REFUSED.len() && deliveries.iter().all(|d| d["attempt_count"] == 1) {
            for d in &deliveries {
                let attempts = server.attempts(&site, d["id"].as_str().expect("id")).await;
                assert_eq!(attempts[0]["error_kind"], "blocked", "{attempts:?}");
                assert_eq!(attempts[0]["status_code"], serde_json::Value::Null);
            }
            assert_eq!(canary.hits(), 0);
            server.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not every delivery was attempted");
}

#[tokio::test]
async fn a_name_rebinding_to_loopback_is_refused_and_looked_up_once_per_delivery() {
    // The "public" address is 127.0.0.2 (opened alone by policy); the rebinding target
    // is 127.0.0.1 on the same port, where the canary listens.
    let canary = Canary::start("127.0.0.1", 0).await;
    let legit = tokio::net::TcpListener::bind(("127.0.0.2", canary.port))
        .await
        .expect("bind 127.0.0.2");
    let mut receiver = TestReceiver::start_on(legit).await;
    let lookup = Arc::new(ScriptedLookup::default());
    // Registration and the first delivery see the allowed address; any later lookup
    // (a second one inside a delivery, or the next delivery) sees loopback.
    lookup.answer(
        "rebind.test",
        &[&["127.0.0.2"], &["127.0.0.2"], &["127.0.0.1"]],
    );
    let server = guarded_server(lookup.clone(), &["127.0.0.2/32"]).await;
    let site = server.create_site().await;
    let url = format!("http://rebind.test:{}/hook", canary.port);
    let (_, secret) = server.create_webhook(&site, &url, &["*"]).await;
    receiver.expect_secret(secret);
    assert_eq!(lookup.calls("rebind.test"), 1, "registration looks up once");

    let first = server
        .send_event(&site, "form.submitted", json!({"n": 1}))
        .await;
    let got = receiver.next(Duration::from_secs(10)).await;
    assert!(got.fullup_ok && got.standard_ok);
    server.wait_for_state(&site, &first, "succeeded").await;
    assert_eq!(
        lookup.calls("rebind.test"),
        2,
        "one lookup for the first delivery"
    );

    let second = server
        .send_event(&site, "form.submitted", json!({"n": 2}))
        .await;
    let delivery = server
        .wait_for_delivery(&site, &second, |d| d["attempt_count"] == 1)
        .await;
    let attempts = server
        .attempts(&site, delivery["id"].as_str().expect("id"))
        .await;
    assert_eq!(attempts[0]["error_kind"], "blocked");
    assert_eq!(
        lookup.calls("rebind.test"),
        3,
        "one lookup for the second delivery"
    );
    assert_eq!(
        canary.hits(),
        0,
        "the canary on loopback was never connected to"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_services_own_address_stays_refused_when_loopback_is_allowed() {
    let server = TestServer::start().await;
    let site = server.create_site().await;
    let own = format!("{}/v1/sites", server.base);
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/webhooks"),
            Some(json!({"url": own})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("own API address"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn names_under_localhost_reach_loopback_when_allowed_without_a_lookup() {
    let mut receiver = TestReceiver::start().await;
    let port = receiver
        .url()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next().map(str::to_owned))
        .expect("port");
    // The resolver would send `localhost.` elsewhere: it must not be asked.
    let lookup = Arc::new(ScriptedLookup::default());
    lookup.answer("localhost.", &[&["93.184.216.34"]]);
    lookup.answer("hooks.localhost", &[&["93.184.216.34"]]);
    let server = guarded_server(lookup.clone(), &["127.0.0.0/8"]).await;
    let site = server.create_site().await;
    for host in ["LOCALHOST.", "hooks.localhost"] {
        let url = format!("http://{host}:{port}/hook");
        let (webhook, secret) = server.create_webhook(&site, &url, &["*"]).await;
        receiver.expect_secret(secret);
        let event = server
            .send_event(&site, "form.submitted", json!({"host": host}))
            .await;
        let got = receiver.next(Duration::from_secs(10)).await;
        assert!(got.fullup_ok && got.standard_ok, "{host}");
        server.wait_for_state(&site, &event, "succeeded").await;
        let path = format!("/v1/sites/{site}/webhooks/{webhook}");
        let (status, _) = server.call(Method::DELETE, &path, None).await;
        assert_eq!(status, 204, "deleting {webhook}");
    }
    assert_eq!(lookup.calls("localhost."), 0);
    assert_eq!(lookup.calls("hooks.localhost"), 0);
    server.stop().await;
}
