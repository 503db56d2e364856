//! The real service (`Application`) on 127.0.0.1:0 with a temporary SQLite file (or a
//! throwaway PostgreSQL database, see `support::backend`), and a small JSON client for
//! its API.

use std::sync::Arc;
use std::time::Duration;

use fullup_server::app::Application;
use fullup_server::config::Config;
use fullup_server::domain::clock::ManualClock;
use fullup_server::domain::retry::RetrySchedule;
use fullup_signature::Secret;
use reqwest::Method;
use serde_json::{Value, json};

use super::postgres::TestStore;

/// The admin token every test server uses.
/// 32 characters or more, as `fullup serve` requires (the browser and contract tests
/// run it with this token).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A running service.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The database folder, kept as long as the server lives.
    pub dir: Arc<tempfile::TempDir>,
    /// The PostgreSQL database the server runs on, if it does; dropped with the server,
    /// so only after `stop` has awaited it (or `Drop` has aborted it).
    store: Option<TestStore>,
}

/// A resolver that knows only `localhost`, so a test cannot send traffic off the
/// machine however its URLs are spelled.
#[derive(Debug)]
pub struct OfflineLookup;

#[async_trait::async_trait]
impl fullup_server::delivery::guard::Lookup for OfflineLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<std::net::IpAddr>> {
        if host.eq_ignore_ascii_case("localhost") {
            return Ok(vec![std::net::Ipv4Addr::LOCALHOST.into()]);
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} does not resolve in tests"),
        ))
    }
}

/// Settings tests change most.
pub fn test_config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config {
        database_url: format!("sqlite://{}", dir.path().join("fullup.db").display()),
        admin_token: Some(Secret::parse(ADMIN_TOKEN).expect("token")),
        ..Config::default()
    };
    // Receivers in tests live on loopback, which the guard denies by default.
    config.network.allow = vec!["127.0.0.0/8".parse().expect("net")];
    // Tests never reach the internet: only `localhost` resolves.
    config.lookup = Arc::new(OfflineLookup);
    config.delivery.poll_interval = Duration::from_millis(20);
    config.delivery.request_timeout = Duration::from_secs(5);
    config.delivery.connect_timeout = Duration::from_secs(2);
    config
}

/// A manual clock at a fixed, recent time.
pub fn manual_clock() -> Arc<ManualClock> {
    ManualClock::new(fullup_server::domain::time::Timestamp::from_unix_ms(
        1_800_000_000_000,
    ))
}

/// A retry schedule without jitter: 5 s, 5 min, 30 min.
pub fn short_schedule() -> RetrySchedule {
    RetrySchedule::new(
        vec![
            Duration::from_secs(5),
            Duration::from_secs(300),
            Duration::from_secs(1800),
        ],
        0.0,
    )
}

impl TestServer {
    /// Starts with the default test settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with settings changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::start_on(dir, None, tweak).await
    }

    /// Starts on an existing folder (a restart) with `config`.
    pub async fn start_in(dir: Arc<tempfile::TempDir>, config: Config) -> Self {
        Self::launch(dir, None, config).await
    }

    /// Starts on the SQLite file in `dir`, or on `store` (a PostgreSQL database), with
    /// the test settings changed by `tweak` (applied last, so they hold on both).
    pub async fn start_on(
        dir: Arc<tempfile::TempDir>,
        store: Option<TestStore>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = test_config(&dir);
        if let Some(store) = &store {
            store.apply(&mut config);
        }
        tweak(&mut config);
        Self::launch(dir, store, config).await
    }

    /// Starts with `config`, keeping `dir` and `store` (the PostgreSQL database
    /// `config` names, if any) as long as the server lives.
    async fn launch(dir: Arc<tempfile::TempDir>, store: Option<TestStore>, config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = Application::build(config, listener)
            .await
            .expect("build app");
        let base = format!("http://{}", app.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = rx.await;
        }));
        Self {
            base,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
            dir,
            store,
        }
    }

    /// The URL of the database this server runs on (its SQLite file, or its
    /// PostgreSQL database), for tests that write to it as a database writer would.
    pub fn database_url(&self) -> String {
        match &self.store {
            Some(store) => store.db.url.clone(),
            None => format!("sqlite://{}", self.dir.path().join("fullup.db").display()),
        }
    }

    /// Runs `sql` on this server's database behind its back, as a database writer
    /// would (on SQLite, beside the running service, as another process could).
    pub async fn execute_sql(&self, sql: &str) {
        let url = self.database_url();
        if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            sqlx::query(sql).execute(&pool).await.expect(sql);
            pool.close().await;
        } else {
            let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
            sqlx::query(sql).execute(&pool).await.expect(sql);
            pool.close().await;
        }
    }

    /// Runs the statements of `script` (`;`-separated, such as one transaction from
    /// `BEGIN` to `COMMIT`) on this server's database behind its back.
    pub async fn execute_script(&self, script: &str) {
        let url = self.database_url();
        if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            sqlx::raw_sql(script).execute(&pool).await.expect(script);
            pool.close().await;
        } else {
            let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
            sqlx::raw_sql(script).execute(&pool).await.expect(script);
            pool.close().await;
        }
    }

    /// The one text value `sql` selects from this server's database, read behind its
    /// back as a database reader would.
    pub async fn query_text(&self, sql: &str) -> String {
        let url = self.database_url();
        if url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            let value = sqlx::query_scalar(sql).fetch_one(&pool).await.expect(sql);
            pool.close().await;
            value
        } else {
            let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
            let value = sqlx::query_scalar(sql).fetch_one(&pool).await.expect(sql);
            pool.close().await;
            value
        }
    }

    /// Stops gracefully and waits.
    pub async fn stop(mut self) {
        self.stop_in_place().await;
    }

    /// Stops gracefully, then starts again on the same store (folder, or database and
    /// main key) with the test settings changed by `tweak`.
    pub async fn restart_with(mut self, tweak: impl FnOnce(&mut Config)) -> Self {
        self.stop_in_place().await;
        Self::start_on(self.dir.clone(), self.store.take(), tweak).await
    }

    /// Sends the shutdown signal without waiting for the service to stop.
    pub fn signal_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Stops gracefully (if not signalled yet) and waits until the service has exited.
    pub async fn wait_stopped(&mut self) {
        self.stop_in_place().await;
    }

    /// Stops gracefully, runs `sql` on the database as a writer without the main key
    /// would (`$1` bound to `blob`), then starts again on the same store.
    pub async fn restart_after_sql(mut self, sql: &str, blob: Vec<u8>) -> Self {
        self.stop_in_place().await;
        match &self.store {
            Some(store) => {
                let pool = sqlx::PgPool::connect(&store.db.url)
                    .await
                    .expect("open database");
                sqlx::query(sql)
                    .bind(blob)
                    .execute(&pool)
                    .await
                    .expect("run the statement");
                pool.close().await;
            }
            None => {
                let url = format!("sqlite://{}", self.dir.path().join("fullup.db").display());
                let pool = sqlx::SqlitePool::connect(&url)
                    .await
                    .expect("open database");
                sqlx::query(&sql.replace("$1", "?1"))
                    .bind(blob)
                    .execute(&pool)
                    .await
                    .expect("run the statement");
                pool.close().await;
            }
        }
        Self::start_on(self.dir.clone(), self.store.take(), |_| {}).await
    }

    async fn stop_in_place(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }

    /// A request with the admin token (or `token`), returning status and JSON (Null if none).
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A request as admin.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(Some(ADMIN_TOKEN), method, path, body).await
    }

    /// Creates a site, returning its id.
    pub async fn create_site(&self) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/sites",
                Some(json!({"name": "test site"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("site id").to_owned()
    }

    /// Creates a webhook, returning its id and secret.
    pub async fn create_webhook(
        &self,
        site: &str,
        url: &str,
        event_types: &[&str],
    ) -> (String, Secret) {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/v1/sites/{site}/webhooks"),
                Some(json!({"url": url, "event_types": event_types, "description": "test"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let secret = Secret::parse(body["secret"].as_str().expect("secret")).expect("valid secret");
        (body["id"].as_str().expect("webhook id").to_owned(), secret)
    }

    /// Creates a `*` webhook of `site` to `url` with `extra`'s fields added to the body
    /// (`{"ordering": "fifo"}`, a rate limit...); returns the created webhook, its
    /// secret included.
    pub async fn create_webhook_with(&self, site: &str, url: &str, extra: Value) -> Value {
        let mut body = json!({"url": url, "event_types": ["*"]});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("extra is an object").clone());
        let (status, created) = self
            .call(
                Method::POST,
                &format!("/v1/sites/{site}/webhooks"),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        created
    }

    /// Sends an event, returning its id.
    pub async fn send_event(&self, site: &str, event_type: &str, data: Value) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/v1/sites/{site}/events"),
                Some(json!({"type": event_type, "data": data})),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().expect("event id").to_owned()
    }

    /// The deliveries matching `query` (such as `event_id=…`).
    pub async fn deliveries(&self, site: &str, query: &str) -> Vec<Value> {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/v1/sites/{site}/deliveries?{query}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().expect("data").clone()
    }

    /// Polls until the delivery of `event` to its webhook reaches `state`; returns it.
    pub async fn wait_for_state(&self, site: &str, event: &str, state: &str) -> Value {
        for _ in 0..500 {
            let found = self.deliveries(site, &format!("event_id={event}")).await;
            if let Some(d) = found.into_iter().find(|d| d["state"] == state) {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("delivery of {event} never became {state}");
    }

    /// A delivery's attempts, newest first.
    pub async fn attempts(&self, site: &str, delivery: &str) -> Vec<Value> {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/v1/sites/{site}/deliveries/{delivery}/attempts"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().expect("data").clone()
    }

    /// Polls until a delivery of `event` satisfies `done`; returns it.
    pub async fn wait_for_delivery(
        &self,
        site: &str,
        event: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        for _ in 0..500 {
            let found = self.deliveries(site, &format!("event_id={event}")).await;
            if let Some(d) = found.into_iter().find(|d| done(d)) {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let last = self.deliveries(site, &format!("event_id={event}")).await;
        panic!("no delivery of {event} reached the awaited condition; last seen: {last:?}");
    }

    /// Sends an event whose request body is exactly `body` (key order and number
    /// spellings as written), returning its id.
    pub async fn send_raw_event(&self, site: &str, body: &str) -> String {
        let resp = self
            .client
            .post(format!("{}/v1/sites/{site}/events", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.expect("JSON answer");
        assert_eq!(status, 202, "{body} → {answer}");
        answer["id"].as_str().expect("event id").to_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
