//! A TCP forwarder in the root namespace, so hosts reach a server that listens on the
//! root namespace's loopback only (the machine's PostgreSQL) without reconfiguring it.
//!
//! Each accepted connection gets a connection of its own to the target, and bytes are
//! copied both ways until either side closes. The forwarder runs on the caller's tokio
//! runtime; its CPU is the caller's.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::Error;

/// A running forwarder; dropped, it stops, and so do the connections through it.
#[derive(Debug)]
pub struct Forwarder {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Forwarder {
    /// Listens on `listen` (port 0: any free one) and forwards every connection to
    /// `target` (`HOST:PORT`, resolved at each connection).
    pub async fn start(listen: SocketAddr, target: String) -> Result<Self, Error> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(Error::io(format!("listening on {listen} to forward")))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("reading the forwarder's address"))?;
        let task = tokio::spawn(accept(listener, target));
        Ok(Self { addr, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts until aborted; the connections' tasks live in a set dropped (and so aborted)
/// with this task.
async fn accept(listener: TcpListener, target: String) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((inbound, _)) => {
                connections.spawn(pipe(inbound, target.clone()));
            }
            // Out of file descriptors, say: wait for connections to end.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// Copies between `inbound` and a new connection to `target` until either closes. A
/// target that refuses closes `inbound`, which its client sees as the server's refusal.
async fn pipe(mut inbound: TcpStream, target: String) {
    let Ok(mut outbound) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}
