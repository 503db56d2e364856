//! `fullup serve` as a child process, known by the address it prints once listening:
//! how the bench and the tests start the service, on a host or not.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::Error;

/// The line `fullup serve` prints on stdout once it listens, before `ADDR`.
pub const LISTENING_PREFIX: &str = "fullup serve: listening on http://";

/// A running `fullup serve`; SIGKILLed and reaped when dropped, so no exit path of a
/// test or bench leaves it running.
#[derive(Debug)]
pub struct ServeProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServeProcess {
    /// Spawns `command` (a `fullup serve` with its arguments, environment and stderr
    /// set by the caller) and waits, at most `within`, for the address it prints. Its
    /// stdin is closed and its stdout read to the end, so it never writes into a
    /// closed pipe.
    pub async fn start(mut command: Command, within: Duration) -> Result<Self, Error> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(Error::io(format!(
                "starting {}",
                command.get_program().to_string_lossy()
            )))?;
        let stdout = child.stdout.take();
        // Owned from here on, so that an early return kills it.
        let mut process = Self {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let stdout = stdout.ok_or_else(|| Error::Serve("has no stdout to read".to_owned()))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix(LISTENING_PREFIX)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let printed = tokio::time::timeout(within, rx)
            .await
            .map_err(|_| Error::Serve(format!("printed no address within {within:?}")))?
            .map_err(|_| Error::Serve("exited before listening (its stderr says why)".into()))?;
        process.addr = printed
            .parse()
            .map_err(|_| Error::Serve(format!("printed an address that is not one: {printed}")))?;
        Ok(process)
    }

    /// The address its API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` of its API.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its stderr, when the command piped it (once).
    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Sends SIGTERM and waits, at most `within`, for it to exit (it records the
    /// attempts in flight and closes its database connections first); None if it is
    /// still running then.
    pub fn terminate(&mut self, within: Duration) -> Result<Option<ExitStatus>, Error> {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-s", "TERM", &pid])
            .status()
            .map_err(Error::io(format!("running kill -s TERM {pid}")))?;
        if !sent.success() {
            return Err(Error::Serve(format!(
                "could not be sent SIGTERM (pid {pid})"
            )));
        }
        let deadline = std::time::Instant::now() + within;
        loop {
            let status = self
                .try_wait()
                .map_err(Error::io(format!("waiting for pid {pid}")))?;
            if status.is_some() || std::time::Instant::now() >= deadline {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGKILL and waits until the process is gone.
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(drop)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
