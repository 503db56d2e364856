//! The bad receiver of the isolation scenario: it accepts every connection, reads and
//! discards what is sent, and never answers, so each attempt to it lasts until the
//! service's request timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use tokio::io::AsyncReadExt as _;

/// A receiver that never answers; stops (closing its connections) when dropped.
#[derive(Debug)]
pub struct Stall {
    base: String,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Stall {
    /// Listens on `listen`; webhooks reach it at `public` (default `http://` and the
    /// bound address).
    pub async fn start(listen: SocketAddr, public: Option<&str>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}; choose another --stall-listen"))?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            // Dropping this set when the task is aborted closes every held connection.
            let mut held = tokio::task::JoinSet::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                held.spawn(async move {
                    let mut sink = [0u8; 4096];
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                });
                while held.try_join_next().is_some() {}
            }
        });
        let base = public.map_or_else(
            || format!("http://{addr}"),
            |url| url.trim_end_matches('/').to_owned(),
        );
        Ok(Self {
            base,
            connections,
            task,
        })
    }

    /// The URL a webhook points at.
    pub fn url(&self) -> String {
        format!("{}/stall", self.base)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.task.abort();
    }
}
