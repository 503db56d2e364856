//! The two receivers of the seed document, run as real processes.
//!
//! Our users copied these programs (`testdata/seed-receivers`: Express verifying
//! `JSON.stringify(req.body)`, Flask verifying the raw body), so what they accept is the
//! wire format's real contract; a test against our own reading of the document could not
//! catch where the two disagree. [`SeedReceiver`] starts one on a free port, waits until it
//! accepts connections, and kills its whole process group when dropped (Flask's debug
//! reloader runs the app in a child process).
//!
//! The same goes for the two receivers `docs/receiving.md` tells users to copy
//! (`testdata/receiving`, [`SeedKind::DocumentedNode`] and [`SeedKind::DocumentedPython`]):
//! they run the same way, with the secret given as `FULLUP_SECRET`.

use std::fmt;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::NamedTempFile;

use crate::{free_port, require, require_tool};

/// The secret hard-coded in both seed programs (`const secret = 'your_shared_secret_key'`).
pub const SEED_SECRET: &str = "your_shared_secret_key";

/// Node loads Express in well under a second and Flask's reloader in about one; 20 s
/// leaves room for a loaded CI machine while still failing a receiver that never listens.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// One connection attempt to a local port answers or is refused at once; this only bounds
/// a pathological stall.
const CONNECT_ATTEMPT: Duration = Duration::from_millis(200);

/// Pause between connection attempts while the receiver starts.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Which receiver to run: one of the seed document's, or one of `docs/receiving.md`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedKind {
    /// The Express example: verifies `JSON.stringify(req.body)` after `express.json()`.
    Node,
    /// The Flask example: verifies the raw request body, in debug mode with the reloader.
    Python,
    /// The Express receiver of `docs/receiving.md` (`testdata/receiving/node`): verifies
    /// the raw body (`express.raw`), `FULLUP_SECRET` from the environment.
    DocumentedNode,
    /// The Flask receiver of `docs/receiving.md` (`testdata/receiving/python`): verifies
    /// `request.get_data()`, `FULLUP_SECRET` from the environment.
    DocumentedPython,
}

impl SeedKind {
    fn is_node(self) -> bool {
        matches!(self, SeedKind::Node | SeedKind::DocumentedNode)
    }

    fn program(self) -> &'static str {
        if self.is_node() { "node" } else { "python3" }
    }

    fn script(self) -> &'static str {
        if self.is_node() {
            "receiver.js"
        } else {
            "receiver.py"
        }
    }

    fn dir(self) -> PathBuf {
        let (parent, sub) = match self {
            SeedKind::Node => ("seed-receivers", "node"),
            SeedKind::Python => ("seed-receivers", "python"),
            SeedKind::DocumentedNode => ("receiving", "node"),
            SeedKind::DocumentedPython => ("receiving", "python"),
        };
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata")
            .join(parent)
            .join(sub)
    }

    /// The receiver's program text (`receiver.js` or `receiver.py`), for tests that check
    /// a document still shows it verbatim.
    pub fn source(self) -> String {
        let path = self.dir().join(self.script());
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read the receiver {}: {e}", path.display()))
    }

    /// Applies the CI rule to the interpreter and the web framework.
    fn dependencies_present(self, test_name: &str) -> bool {
        if self.is_node() {
            let express = self.dir().join("node_modules/express/package.json");
            require_tool("node", &[], test_name)
                && require(
                    express.is_file(),
                    &format!("{} is missing (npm ci)", express.display()),
                    test_name,
                )
        } else {
            require_tool("python3", &["-c", "import flask"], test_name)
        }
    }
}

impl fmt::Display for SeedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SeedKind::Node => "Node (Express)",
            SeedKind::Python => "Python (Flask)",
            SeedKind::DocumentedNode => "documented Node (Express)",
            SeedKind::DocumentedPython => "documented Python (Flask)",
        })
    }
}

/// A running seed receiver; its process group is killed on drop.
#[derive(Debug)]
pub struct SeedReceiver {
    kind: SeedKind,
    port: u16,
    child: Child,
    log: NamedTempFile,
}

impl SeedReceiver {
    /// Starts the receiver of `kind` and returns once it accepts TCP connections.
    ///
    /// Returns `None` when its interpreter or framework is missing outside CI (after a
    /// NOTICE); in CI that panics, naming `.ci/run`. Panics when the process exits or does
    /// not listen within 20 s, showing its output.
    pub fn start(kind: SeedKind) -> Option<SeedReceiver> {
        let test_name = thread::current()
            .name()
            .unwrap_or("seed receiver test")
            .to_owned();
        if !kind.dependencies_present(&test_name) {
            return None;
        }
        let port = free_port();
        let log = NamedTempFile::new().expect("create a temp file for the receiver's output");
        let child = Command::new(kind.program())
            .arg(kind.script())
            .current_dir(kind.dir())
            .env("PORT", port.to_string())
            .env("FULLUP_SECRET", SEED_SECRET)
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("WERKZEUG_RUN_MAIN")
            .env_remove("WERKZEUG_SERVER_FD")
            .stdin(Stdio::null())
            .stdout(clone_file(log.as_file()))
            .stderr(clone_file(log.as_file()))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning the {kind} seed receiver failed: {e}"));
        let mut receiver = SeedReceiver {
            kind,
            port,
            child,
            log,
        };
        receiver.wait_until_listening();
        Some(receiver)
    }

    /// The receiver's endpoint: `http://127.0.0.1:{port}/webhook-endpoint`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/webhook-endpoint", self.port)
    }

    /// The secret the program verifies with: [`SEED_SECRET`] (hard-coded in the seeds,
    /// given as `FULLUP_SECRET` to the documented receivers).
    pub fn secret(&self) -> &'static str {
        SEED_SECRET
    }

    /// Which receiver this is.
    pub fn kind(&self) -> SeedKind {
        self.kind
    }

    /// Everything the receiver printed so far (stdout and stderr), for diagnostics.
    pub fn output(&self) -> String {
        std::fs::read(self.log.path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|e| format!("(could not read the receiver's output: {e})"))
    }

    fn wait_until_listening(&mut self) {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let exited = self
                .child
                .try_wait()
                .expect("poll the seed receiver's process");
            if let Some(status) = exited {
                panic!(
                    "the {} seed receiver exited ({status}) before listening on port {}; its output:\n{}",
                    self.kind,
                    self.port,
                    self.output()
                );
            }
            if TcpStream::connect_timeout(&address, CONNECT_ATTEMPT).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the {} seed receiver did not listen on port {} within {STARTUP_TIMEOUT:?}; its output:\n{}",
                self.kind,
                self.port,
                self.output()
            );
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for SeedReceiver {
    fn drop(&mut self) {
        // The child leads its own group (process_group(0)), so its id is the group id.
        let group = format!("-{}", self.child.id());
        let killed = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !killed {
            // Best effort: at least the leader goes; nothing else can be done in drop.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- output of the {} seed receiver ---\n{}",
                self.kind,
                self.output()
            );
        }
    }
}

fn clone_file(file: &File) -> File {
    file.try_clone()
        .expect("duplicate the receiver's output file handle")
}
