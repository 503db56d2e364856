//! Hostile API input (issue #17, item 4): thousands of generated malformed requests
//! against `fullup serve` (SQLite and PostgreSQL), written byte by byte on raw TCP so
//! that nothing a client library refuses to send is left out: bad JSON, wrong types,
//! huge numbers, deep nesting, invalid UTF-8 in bodies and paths, giant and repeated
//! headers, bad or missing credentials, another site's ids with a site's key, wrong
//! methods, huge query strings.
//!
//! Every request carries at least one defect the API must refuse ([`Case::must_fail`]),
//! except those whose only oddity a route may accept (a huge number in an event's
//! data). Checks: no answer is 5xx; every refusal is a 4xx with the API's one error
//! shape (`{"error": {"code", "message"}}`), except those HTTP itself refuses before a
//! route sees the request (a malformed request line or head: hyper answers 400 or 431
//! with an empty body), which are counted apart; no request meant to fail succeeds; the
//! connection always gets an answer; afterwards the process still answers `/healthz`
//! and `/readyz`, and its log holds no `panicked`.
//!
//! Small scale by default (CI: [`SMALL`] requests); `FULLUP_RELIABILITY=full` sends
//! [`FULL`]. The seed is printed; `FULLUP_HOSTILE_API_SEED` replays it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fullup_testkit::Scale;
use fullup_testkit::postgres::TestDatabase;
use futures::StreamExt as _;
use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support_server::{ADMIN_TOKEN, MAIN_KEY, Server, call};

/// Requests at the small scale (CI).
const SMALL: usize = 3_000;
/// Requests at the full scale.
const FULL: usize = 100_000;
/// The variable that sets the seed of the generator.
const SEED_ENV: &str = "FULLUP_HOSTILE_API_SEED";
/// Requests in flight at once.
const CLIENTS: usize = 8;
/// Bound on one exchange; the API's own request timeout is shorter.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of an answer read (bodies of refusals are small; a list answer is cut).
const MAX_ANSWER: usize = 1 << 20;
/// The flags: no ingest rate limit and no failed-authentication throttle, so that each
/// request meets the check it was made for rather than a 429 (both limits have their
/// own tests: `fullup-server` `limits`, `api::throttle`).
const ARGS: [&str; 4] = ["--ingest-rate-limit", "0", "--auth-failure-limit", "0"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_answers_every_malformed_request_with_a_clear_4xx() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    run("sqlite", &database_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_answers_every_malformed_request_with_a_clear_4xx() {
    let Some(db) = TestDatabase::create("hostile_api::postgres").await else {
        return;
    };
    run("postgres", &db.url).await;
}

/// What the generated requests may name: two sites, each with a key, a webhook and an
/// event.
#[derive(Debug, Clone)]
struct World {
    sites: [SiteIds; 2],
}

/// One site's ids and key.
#[derive(Debug, Clone)]
struct SiteIds {
    site: String,
    key: String,
    webhook: String,
    event: String,
    delivery: String,
}

/// One generated request.
#[derive(Debug, Clone)]
struct Case {
    /// What it tries, for the figures (`category/detail`).
    kind: &'static str,
    /// The request's bytes, head and body.
    bytes: Vec<u8>,
    /// False only when no part of it must be refused.
    must_fail: bool,
}

impl Case {
    /// The request line, for messages (cut at 120 bytes).
    fn request_line(&self) -> String {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == b'\r')
            .unwrap_or(0)
            .min(120);
        String::from_utf8_lossy(&self.bytes[..end]).into_owned()
    }
}

/// How the server answered one case.
#[derive(Debug)]
enum Answer {
    /// A status and the body read.
    Status(u16, Vec<u8>),
    /// The connection closed or failed before a status line: no answer at all.
    None(String),
}

/// The whole run on `database_url`; `store` names it in the figures.
async fn run(store: &str, database_url: &str) {
    let started = Instant::now();
    let scale = Scale::from_env();
    let requests = scale.pick(SMALL, FULL);
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen::<u64>());
    println!(
        "hostile_api {store}: {} scale, {requests} requests, seed {seed} (set {SEED_ENV} to \
         replay)",
        scale.as_str()
    );
    let mut args = ARGS.to_vec();
    args.extend(["--max-event-bytes", "1048576"]);
    let (mut server, log) = Server::start_capturing_logs_with_env(
        database_url,
        &args,
        &[("FULLUP_MAIN_KEY", MAIN_KEY)],
        "info",
    )
    .await;
    let base = server.base.clone();
    let addr = base.trim_start_matches("http://").to_owned();
    let world = world(&base).await;

    let mut rng = StdRng::seed_from_u64(seed);
    // Generated as they are sent: held all at once, the full scale's giant headers
    // took the test process to 4 GB.
    let cases = (0..requests).map(|_| generate(&mut rng, &world));
    let mut answers = futures::stream::iter(cases)
        .map(|case| {
            let addr = addr.clone();
            async move {
                let answer = exchange(&addr, &case.bytes).await;
                (case, answer)
            }
        })
        .buffer_unordered(CLIENTS);
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    let mut protocol_refusals = 0u64;
    let mut bad = Vec::new();
    while let Some((case, answer)) = answers.next().await {
        *by_kind.entry(case.kind).or_default() += 1;
        let label = match &answer {
            Answer::Status(status, _) => status.to_string(),
            Answer::None(_) => "no answer".to_owned(),
        };
        *by_status.entry(label).or_default() += 1;
        match judge(&case, &answer) {
            Ok(Judged::Shaped) => {}
            Ok(Judged::Protocol) => protocol_refusals += 1,
            Err(why) => bad.push(format!("{} ({}): {why}", case.kind, case.request_line())),
        }
    }
    let health = alive(&base).await;
    let peak_rss = server.peak_rss_bytes();
    server.terminate(Duration::from_secs(30));
    let lines = log.join().expect("the log reader");
    let panics: Vec<&String> = lines.iter().filter(|l| l.contains("panicked")).collect();

    println!("hostile_api {store}: answers by status {by_status:?}");
    println!("hostile_api {store}: requests by kind {by_kind:?}");
    println!(
        "hostile_api {store}: {} refused by HTTP before a route (empty 400/431), {} wrong, \
         {} panics in the log, /healthz and /readyz after: {health:?}; peak RSS {:.1} MiB; \
         {:.1?} in all",
        protocol_refusals,
        bad.len(),
        panics.len(),
        peak_rss as f64 / (1024.0 * 1024.0),
        started.elapsed()
    );
    assert!(panics.is_empty(), "the server panicked: {}", panics[0]);
    assert_eq!(
        health,
        (200, 200),
        "the server no longer answers its probes"
    );
    assert!(
        bad.is_empty(),
        "{} answers were not a clear 4xx, e.g. {:?}",
        bad.len(),
        &bad[..bad.len().min(40)]
    );
    let fivexx: u64 = by_status
        .iter()
        .filter(|(status, _)| status.starts_with('5'))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(fivexx, 0, "5xx answers");
}

/// How an answer was judged right.
enum Judged {
    /// A 4xx with the API's error shape, or a success the case allowed.
    Shaped,
    /// A 400 or 431 with an empty body: HTTP refused the request before any route.
    Protocol,
}

/// Whether `answer` is right for `case`, and why not when it is not.
fn judge(case: &Case, answer: &Answer) -> Result<Judged, String> {
    let (status, body) = match answer {
        Answer::Status(status, body) => (*status, body),
        Answer::None(why) => return Err(format!("no answer: {why}")),
    };
    if status >= 500 {
        return Err(format!("{status}: {}", String::from_utf8_lossy(body)));
    }
    if (200..400).contains(&status) {
        return if case.must_fail {
            Err(format!("{status} for a request that must fail"))
        } else {
            Ok(Judged::Shaped)
        };
    }
    if body.is_empty() && matches!(status, 400 | 431) {
        return Ok(Judged::Protocol);
    }
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| format!("{status} whose body is not JSON ({e}): {body:?}"))?;
    let error = &parsed["error"];
    let shaped = parsed.as_object().is_some_and(|o| o.len() == 1)
        && error.as_object().is_some_and(|o| o.len() == 2)
        && error["code"].as_str().is_some_and(|c| !c.is_empty())
        && error["message"].as_str().is_some_and(|m| !m.is_empty());
    if shaped {
        Ok(Judged::Shaped)
    } else {
        Err(format!("{status} not in the error shape: {parsed}"))
    }
}

/// Sends `bytes` on a new connection and reads the answer (the request asks the server
/// to close the connection after it).
async fn exchange(addr: &str, bytes: &[u8]) -> Answer {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await?;
        // The server may answer (and close) before it has read a refused body whole.
        let _ = stream.write_all(bytes).await;
        let mut answer = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                // A reset after the answer (the unread request body) ends it too.
                Err(err) if !answer.is_empty() => {
                    let _ = err;
                    break;
                }
                Err(err) => return Err(err),
            }
            if answer.len() > MAX_ANSWER {
                break;
            }
        }
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, attempt).await {
        Err(_) => Answer::None(format!("nothing within {EXCHANGE_TIMEOUT:?}")),
        Ok(Err(err)) => Answer::None(err.to_string()),
        Ok(Ok(answer)) => parse_answer(&answer),
    }
}

/// The status and body of a raw HTTP/1.1 answer (a chunked body is left as sent: the
/// error shape is checked only on answers with a length).
fn parse_answer(raw: &[u8]) -> Answer {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Answer::None(format!(
            "no complete head in {} bytes: {:?}",
            raw.len(),
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        ));
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer::Status(status, raw[end + 4..].to_vec())
}

/// Whether the server still answers its liveness and readiness probes.
async fn alive(base: &str) -> (u16, u16) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let mut got = Vec::new();
    for probe in ["healthz", "readyz"] {
        let status = client
            .get(format!("{base}/{probe}"))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        got.push(status);
    }
    (got[0], got[1])
}

/// Two sites, each with an API key, a webhook (to a closed port: its deliveries fail,
/// which does not matter here) and an event.
async fn world(base: &str) -> World {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let mut sites = Vec::new();
    for n in 0..2 {
        let site = call(
            &client,
            format!("{base}/v1/sites"),
            json!({"name": format!("hostile-{n}")}),
            201,
        )
        .await;
        let site = site["id"].as_str().expect("a site id").to_owned();
        let key = call(
            &client,
            format!("{base}/v1/sites/{site}/api-keys"),
            json!({"name": "hostile"}),
            201,
        )
        .await;
        let webhook = call(
            &client,
            format!("{base}/v1/sites/{site}/webhooks"),
            json!({"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}),
            201,
        )
        .await;
        let event = call(
            &client,
            format!("{base}/v1/sites/{site}/events"),
            json!({"type": "hostile.seed", "data": {}}),
            202,
        )
        .await;
        let deliveries = crate::support_server::fetch(
            &client,
            format!("{base}/v1/sites/{site}/deliveries?limit=1"),
        )
        .await;
        sites.push(SiteIds {
            key: key["token"].as_str().expect("a token").to_owned(),
            webhook: webhook["id"].as_str().expect("a webhook id").to_owned(),
            event: event["id"].as_str().expect("an event id").to_owned(),
            delivery: deliveries["data"][0]["id"]
                .as_str()
                .expect("a delivery id")
                .to_owned(),
            site,
        });
    }
    let [a, b] = <[SiteIds; 2]>::try_from(sites).expect("two sites");
    World { sites: [a, b] }
}

/// A route of the API: the method tried, its path with the ids of `s`, whether it
/// reads a JSON body (the test, retry and portal-link routes take none and ignore one),
/// and every method the path takes.
fn routes(s: &SiteIds) -> Vec<(&'static str, String, bool, &'static str)> {
    let site = format!("/v1/sites/{}", s.site);
    let webhook = format!("{site}/webhooks/{}", s.webhook);
    let delivery = format!("{site}/deliveries/{}", s.delivery);
    vec![
        ("POST", format!("{site}/events"), true, "GET POST"),
        ("GET", format!("{site}/events"), false, "GET POST"),
        ("GET", format!("{site}/events/{}", s.event), false, "GET"),
        ("POST", format!("{site}/webhooks"), true, "GET POST"),
        ("GET", format!("{site}/webhooks"), false, "GET POST"),
        ("GET", webhook.clone(), false, "GET PATCH DELETE"),
        ("PATCH", webhook.clone(), true, "GET PATCH DELETE"),
        ("POST", format!("{webhook}/test"), false, "POST"),
        ("GET", format!("{webhook}/secret"), false, "GET"),
        ("GET", format!("{site}/deliveries"), false, "GET"),
        ("GET", delivery.clone(), false, "GET"),
        ("GET", format!("{delivery}/attempts"), false, "GET"),
        ("POST", format!("{delivery}/retry"), false, "POST"),
        (
            "PUT",
            format!("{site}/event-types/order.created"),
            true,
            "GET PUT DELETE",
        ),
        ("GET", format!("{site}/event-types"), false, "GET"),
        ("PATCH", site.clone(), true, "GET PATCH DELETE"),
        ("GET", site.clone(), false, "GET PATCH DELETE"),
        ("POST", format!("{site}/api-keys"), true, "GET POST"),
        ("GET", format!("{site}/api-keys"), false, "GET POST"),
        ("POST", format!("{site}/portal-links"), false, "POST"),
        ("POST", "/v1/sites".to_owned(), true, "GET POST"),
    ]
}

/// A valid body for a JSON route, to be mutated.
fn valid_body(path: &str) -> Value {
    if path.ends_with("/events") {
        json!({"type": "order.created", "data": {"id": 1, "items": [1, 2]}})
    } else if path.ends_with("/webhooks") {
        json!({"url": "http://127.0.0.1:9/h", "event_types": ["order.*"]})
    } else if path.contains("/event-types/") {
        json!({"description": "an order", "schema": {"type": "object"}})
    } else {
        json!({"name": "x", "description": "y", "enabled": true})
    }
}

/// One request with at least one defect: one the API must refuse, or (huge numbers in
/// an event's data, huge query strings, giant or repeated headers) one a route may
/// accept, but never with a 5xx.
fn generate(rng: &mut StdRng, world: &World) -> Case {
    let (own, other) = if rng.gen_bool(0.5) {
        (&world.sites[0], &world.sites[1])
    } else {
        (&world.sites[1], &world.sites[0])
    };
    let routes = routes(own);
    let (method, path, json_body, methods) = routes.choose(rng).expect("routes").clone();
    let valid_auth = format!("Bearer {}", ADMIN_TOKEN);
    let mut req = Request {
        method: method.to_owned(),
        path: path.clone().into_bytes(),
        headers: vec![(b"authorization".to_vec(), valid_auth.into_bytes())],
        body: if json_body {
            serde_json::to_vec(&valid_body(&path)).expect("json")
        } else {
            Vec::new()
        },
    };
    let category = if json_body {
        rng.gen_range(0..10)
    } else {
        rng.gen_range(4..10)
    };
    let (kind, must_fail) = match category {
        0 => {
            let kind = bad_json(rng, &mut req);
            (kind, true)
        }
        1 => (wrong_types(rng, &mut req, &path), true),
        2 => huge_numbers(rng, &mut req, &path),
        3 => (deep_nesting(rng, &mut req), true),
        4 => (invalid_utf8(rng, &mut req, json_body), true),
        5 => giant_headers(rng, &mut req),
        6 => (bad_auth(rng, &mut req, own), true),
        7 => (cross_site(rng, &mut req, own, other), true),
        8 => (wrong_method(rng, &mut req, methods), true),
        _ => (huge_query(rng, &mut req), false),
    };
    Case {
        kind,
        bytes: req.to_bytes(),
        must_fail,
    }
}

/// A request before it is written out.
struct Request {
    method: String,
    path: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
}

impl Request {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.path);
        out.extend_from_slice(b" HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !self.body.is_empty() {
            out.extend_from_slice(b"content-type: application/json\r\n");
        }
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    fn set_auth(&mut self, value: Option<Vec<u8>>) {
        self.headers.retain(|(n, _)| n != b"authorization");
        if let Some(value) = value {
            self.headers.push((b"authorization".to_vec(), value));
        }
    }
}

/// Bad JSON: every body here must be refused (`[]` among them: serde reads a struct
/// from a sequence, so it once passed where every field of the body is optional).
fn bad_json(rng: &mut StdRng, req: &mut Request) -> &'static str {
    match rng.gen_range(0..5) {
        0 => {
            let cut = rng.gen_range(0..req.body.len().max(1));
            req.body.truncate(cut);
            "bad_json/truncated"
        }
        1 => {
            let n = rng.gen_range(1..512);
            req.body = (0..n).map(|_| rng.r#gen::<u8>()).collect();
            "bad_json/random_bytes"
        }
        2 => {
            req.body = [b"null".as_slice(), b"[]", b"\"x\"", b"42", b"{\"a\":}"]
                .choose(rng)
                .expect("one")
                .to_vec();
            "bad_json/not_an_object"
        }
        3 => {
            // Right after the opening brace, where none of these may stand.
            let junk = *[b'}', b'{', b'"', b',', b':', b'\\', b'[']
                .choose(rng)
                .expect("one");
            req.body.insert(1, junk);
            "bad_json/stray_character"
        }
        _ => {
            req.body.extend_from_slice(b" trailing");
            "bad_json/trailing_garbage"
        }
    }
}

fn wrong_types(rng: &mut StdRng, req: &mut Request, path: &str) -> &'static str {
    let mut body = valid_body(path);
    let keys: Vec<String> = body
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    let key = keys.choose(rng).expect("a key").clone();
    let wrong = [
        json!(12345),
        json!(true),
        json!([["nested"]]),
        json!({"an": "object"}),
        json!(-1.5),
    ];
    let value = wrong.choose(rng).expect("one").clone();
    // `data` takes any JSON, and `description` any string: mistype what has a type.
    let key = if key == "data" {
        "type".to_owned()
    } else {
        key
    };
    // A schema may be any object or boolean.
    let value = if key == "schema" { json!(1) } else { value };
    body[&key] = value;
    if key == "enabled" && body[&key].is_boolean() {
        body[&key] = json!("yes");
    }
    req.body = serde_json::to_vec(&body).expect("json");
    "wrong_types"
}

/// Huge numbers: past `f64` (must fail where a number is parsed: serde refuses it
/// anywhere in the body), or huge but representable in an event's free `data` (may
/// succeed).
fn huge_numbers(rng: &mut StdRng, req: &mut Request, path: &str) -> (&'static str, bool) {
    if rng.gen_bool(0.5) {
        let text = String::from_utf8(req.body.clone()).expect("utf-8");
        let exp = rng.gen_range(309..100_000);
        req.body = text
            .replacen('{', &format!("{{\"n\":1e{exp},"), 1)
            .into_bytes();
        ("numbers/past_f64", true)
    } else if path.ends_with("/events") {
        let digits = "9".repeat(rng.gen_range(20..300));
        req.body =
            format!("{{\"type\":\"order.created\",\"data\":{{\"n\":{digits}}}}}").into_bytes();
        ("numbers/huge_in_data", false)
    } else {
        let digits = "9".repeat(rng.gen_range(20..300));
        let mut body = valid_body(path);
        let key = body
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .expect("a key");
        body[&key] = json!("PLACEHOLDER");
        req.body = serde_json::to_string(&body)
            .expect("json")
            .replace("\"PLACEHOLDER\"", &digits)
            .into_bytes();
        ("numbers/huge_for_a_string", true)
    }
}

fn deep_nesting(rng: &mut StdRng, req: &mut Request) -> &'static str {
    let depth = rng.gen_range(1_000..100_000);
    if rng.gen_bool(0.5) {
        req.body = "[".repeat(depth).into_bytes();
        "nesting/open_brackets"
    } else {
        let inner = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        req.body = format!("{{\"type\":\"order.created\",\"data\":{inner}}}").into_bytes();
        "nesting/closed_objects"
    }
}

fn invalid_utf8(rng: &mut StdRng, req: &mut Request, json_body: bool) -> &'static str {
    match rng.gen_range(0..3) {
        0 if json_body => {
            let text = String::from_utf8(req.body.clone()).expect("utf-8");
            let at = text.find(":\"").map_or(1, |i| i + 2);
            req.body.splice(at..at, [0xff, 0xfe, 0xc3]);
            "utf8/body"
        }
        1 => {
            // A percent-encoded invalid sequence where an id goes.
            let path = String::from_utf8(req.path.clone()).expect("utf-8");
            let cut = path.rfind('/').unwrap_or(0);
            req.path = format!("{}/%FF%FE%C3{}", &path[..cut], &path[cut + 1..]).into_bytes();
            "utf8/percent_encoded_path"
        }
        _ => {
            let at = req.path.len() - rng.gen_range(1..5);
            req.path.splice(at..at, [0xff, 0xc3, 0x28]);
            "utf8/raw_path"
        }
    }
}

/// Giant or repeated headers. A giant token must fail; the others may pass where HTTP
/// takes the head (the request is otherwise valid), but never with a 5xx.
fn giant_headers(rng: &mut StdRng, req: &mut Request) -> (&'static str, bool) {
    match rng.gen_range(0..4) {
        0 => {
            let size = rng.gen_range(64 * 1024..2 * 1024 * 1024);
            req.headers.push((b"x-giant".to_vec(), vec![b'g'; size]));
            ("headers/giant_value", false)
        }
        1 => {
            for n in 0..rng.gen_range(200..5_000) {
                req.headers
                    .push((b"x-repeated".to_vec(), format!("{n}").into_bytes()));
            }
            ("headers/repeated", false)
        }
        2 => {
            req.headers.push((
                b"authorization".to_vec(),
                b"Bearer fk_someone_else".to_vec(),
            ));
            ("headers/two_authorizations", false)
        }
        _ => {
            let size = rng.gen_range(8 * 1024..256 * 1024);
            req.set_auth(Some(format!("Bearer {}", "t".repeat(size)).into_bytes()));
            ("headers/giant_token", true)
        }
    }
}

fn bad_auth(rng: &mut StdRng, req: &mut Request, own: &SiteIds) -> &'static str {
    let (kind, value): (&'static str, Option<Vec<u8>>) = match rng.gen_range(0..7) {
        0 => ("auth/missing", None),
        1 => ("auth/empty_bearer", Some(b"Bearer ".to_vec())),
        2 => ("auth/basic", Some(b"Basic YWRtaW46YWRtaW4=".to_vec())),
        3 => {
            let mut token = ADMIN_TOKEN.as_bytes().to_vec();
            let at = rng.gen_range(0..token.len());
            token[at] = if token[at] == b'x' { b'y' } else { b'x' };
            (
                "auth/admin_token_off_by_one",
                Some([b"Bearer ".as_slice(), &token].concat()),
            )
        }
        4 => {
            let mut token = own.key.clone().into_bytes();
            token.truncate(token.len() - 1);
            (
                "auth/site_key_truncated",
                Some([b"Bearer ".as_slice(), &token].concat()),
            )
        }
        5 => ("auth/non_ascii", Some(b"Bearer \xff\xfe\x80token".to_vec())),
        _ => (
            "auth/lowercase_scheme_random",
            Some(b"bearer fk_nope".to_vec()),
        ),
    };
    req.set_auth(value);
    kind
}

/// A site's key on the other site's routes, or on its own site's path with the other
/// site's ids.
fn cross_site(rng: &mut StdRng, req: &mut Request, own: &SiteIds, other: &SiteIds) -> &'static str {
    req.set_auth(Some(format!("Bearer {}", own.key).into_bytes()));
    let path = String::from_utf8(req.path.clone()).expect("utf-8");
    if path == "/v1/sites" {
        // Creating sites is the operator's: refused to any site key.
        return "cross_site/site_key_creates_a_site";
    }
    if rng.gen_bool(0.5) {
        req.path = path.replace(&own.site, &other.site).into_bytes();
        "cross_site/other_sites_path"
    } else {
        let swapped = path
            .replace(&own.webhook, &other.webhook)
            .replace(&own.event, &other.event)
            .replace(&own.delivery, &other.delivery);
        if swapped == path {
            req.path = path.replace(&own.site, &other.site).into_bytes();
            "cross_site/other_sites_path"
        } else {
            req.path = swapped.into_bytes();
            "cross_site/other_sites_ids"
        }
    }
}

/// A method the path does not take (`methods` lists those it does).
fn wrong_method(rng: &mut StdRng, req: &mut Request, methods: &str) -> &'static str {
    let taken: Vec<&str> = methods.split(' ').collect();
    let wrong: Vec<&str> = [
        "PUT", "DELETE", "PATCH", "POST", "GET", "TRACE", "FOO", "BREW",
    ]
    .into_iter()
    .filter(|m| !taken.contains(m))
    .collect();
    req.method = (*wrong.choose(rng).expect("one")).to_owned();
    "wrong_method"
}

fn huge_query(rng: &mut StdRng, req: &mut Request) -> &'static str {
    let query = match rng.gen_range(0..4) {
        0 => format!("limit={}", "9".repeat(rng.gen_range(20..5_000))),
        1 => "limit=-1".to_owned(),
        2 => format!("cursor={}", "c".repeat(rng.gen_range(1_000..60_000))),
        _ => (0..rng.gen_range(100..3_000))
            .map(|n| format!("limit={n}"))
            .collect::<Vec<_>>()
            .join("&"),
    };
    req.path.push(b'?');
    req.path.extend_from_slice(query.as_bytes());
    "query/huge"
}
