//! Serves the API router over HTTP/1.1 with the bounds `axum::serve` cannot set.
//!
//! `axum::serve` gives hyper no timer, so hyper's header read timeout never fires and a
//! client can hold a connection by sending its headers slowly (slowloris). This accept
//! loop drives hyper-util's connection builder itself and promises:
//!
//! - **Header read timeout.** A connection whose request line and headers are not all in
//!   within [`ApiLimits::header_read_timeout`] is closed without an answer, however the
//!   bytes trickle in; so is a keep-alive connection idle that long between requests
//!   (hyper restarts the same timer while it waits for the next request line).
//! - **HTTP/1.1 only.** The timer is HTTP/1's. Detecting HTTP/2 first would mean waiting
//!   for the first bytes with no timer at all, and HTTP/2 has no such bound per stream;
//!   reverse proxies speak HTTP/1.1 to their upstreams, so the API offers nothing else.
//! - **A connection cap.** At most [`ApiLimits::max_connections`] are served at once
//!   (a semaphore); further clients wait in the kernel's listen backlog, so a flood of
//!   connections costs a bounded amount of memory and file descriptors.
//! - **Graceful shutdown.** When `shutdown` completes, the listener is closed, idle
//!   connections are closed, requests in flight finish, and connections still open after
//!   the header read timeout plus the API request timeout (plus 1 s) are dropped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::config::ApiLimits;

/// How long to wait before accepting again after an error such as running out of file
/// descriptors, which retrying at once would only repeat (hyper's and axum's choice).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Time to write the last answers at shutdown, beyond the time the requests may take.
const DRAIN_MARGIN: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` completes, then shuts down gracefully
/// (see the module documentation); returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &ApiLimits,
    shutdown: impl Future<Output = ()>,
) {
    let builder = Arc::new(connection_builder(limits));
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let closing = CancellationToken::new();
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = connections.join_next() => log_panic(done),
            (stream, peer, slot) = accept(&listener, &slots) => {
                connections.spawn(serve_connection(
                    builder.clone(),
                    stream,
                    peer,
                    router.clone(),
                    closing.clone(),
                    slot,
                ));
            }
        }
    }
    drop(listener);
    closing.cancel();
    drain(connections, drain_limit(limits)).await;
}

/// The longest graceful shutdown waits for open connections: a connection may still be
/// receiving its headers (the header read timeout), then its request may run (the API
/// request timeout) and its answer be written.
fn drain_limit(limits: &ApiLimits) -> Duration {
    limits.header_read_timeout + limits.request_timeout + DRAIN_MARGIN
}

/// HTTP/1.1 with keep-alive and the header read timeout, which needs hyper's timer.
fn connection_builder(limits: &ApiLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
}

/// The next connection, once a slot is free for it. Errors are logged and retried:
/// one client's failed handshake must not stop the server.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            // The semaphore is never closed; wait for shutdown instead of spinning.
            return std::future::pending().await;
        };
        match listener.accept().await {
            Ok((stream, peer)) => return (stream, peer, slot),
            Err(err) if is_connection_error(&err) => {
                tracing::debug!(error = %err, "a connection failed before it was accepted");
            }
            Err(err) => {
                tracing::error!(error = %err, "accepting API connections failed; retrying in 1 s");
                drop(slot);
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// Errors of one connection, not of the listener.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until the client leaves, a timeout closes it, or shutdown
/// asks it to finish its request in flight and close. Holds `slot` until then. Every
/// request carries the client's address (`ConnectInfo<SocketAddr>`), which the
/// authentication throttle counts failures against.
async fn serve_connection(
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    closing: CancellationToken,
    slot: OwnedSemaphorePermit,
) {
    let router = router.map_request(move |mut request: http::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = closing.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        // Clients going away and header read timeouts end up here: not the server's fault.
        tracing::debug!(error = %err, "API connection ended with an error");
    }
    drop(slot);
}

/// Waits up to `limit` for the connections to finish, then drops the rest.
async fn drain(mut connections: JoinSet<()>, limit: Duration) {
    let finished = tokio::time::timeout(limit, async {
        while let Some(done) = connections.join_next().await {
            log_panic(done);
        }
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "closing API connections still open {limit:?} after shutdown began"
        );
        connections.shutdown().await;
    }
}

/// A connection task ended; a panic in one is logged, not propagated.
fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(err) = done
        && err.is_panic()
    {
        tracing::error!(error = %err, "an API connection task panicked");
    }
}
