//! The service on port 0 and a receiver that answers every request 200.

use fullup_server::app::Application;
use fullup_server::config::Config;
use fullup_signature::Secret;

/// The admin token of the test service.
pub const ADMIN_TOKEN: &str = "client-test-admin-token-0123456789abcdef";

/// A running service; stopped when dropped (its task is aborted).
pub struct Service {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Service {
    /// Starts the service on a new SQLite file, delivering to loopback.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            database_url: format!("sqlite://{}", dir.path().join("fullup.db").display()),
            admin_token: Some(Secret::parse(ADMIN_TOKEN).expect("token")),
            ..Config::default()
        };
        config.network.allow = vec!["127.0.0.0/8".parse().expect("net")];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let app = Application::build(config, listener)
            .await
            .expect("build the service");
        let base = format!("http://{}", app.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = app.run(std::future::pending()).await;
        });
        Self {
            base,
            task,
            _dir: dir,
        }
    }

    /// A client with the admin token.
    pub fn client(&self) -> fullup_client::Client {
        fullup_client::Client::new(&self.base, ADMIN_TOKEN).expect("client")
    }
}

/// A receiver on 127.0.0.1:0 that answers 200 to anything, until dropped.
pub struct OkReceiver {
    /// Its URL.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OkReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OkReceiver {
    /// Starts it.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(|| async { "ok" });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, task }
    }
}
