//! Test helpers shared by the workspace's integration tests.
//!
//! The project's rule for external tools (Node, Python, PostgreSQL, Chromium): in CI
//! (`CI=true`) a test that needs one must fail when it is missing; on a developer
//! laptop it may skip with a printed notice. [`require_tool`] is the one place that
//! applies the rule.
//!
//! It also starts the seed document's two receivers as real processes
//! ([`SeedReceiver`]), gives tests a small blocking HTTP client ([`post`]) and a
//! throwaway PostgreSQL database ([`postgres::TestDatabase`]).

mod http;
pub mod postgres;
mod seed;

pub use http::post;
pub use seed::{SEED_SECRET, SeedKind, SeedReceiver};

use std::net::TcpListener;
use std::process::{Command, Stdio};

/// True when running under CI (`CI=true` or `CI=1`), where no suite may be skipped.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Checks that `program` runs (`program --version`, or `check_args` when given).
///
/// Returns `true` when it does. When it does not, panics in CI and otherwise prints a
/// notice naming the skipped test and returns `false`, so the caller can return early.
pub fn require_tool(program: &str, check_args: &[&str], test_name: &str) -> bool {
    let args: &[&str] = if check_args.is_empty() {
        &["--version"]
    } else {
        check_args
    };
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    require(
        ok,
        &format!("`{program} {}` failed", args.join(" ")),
        test_name,
    )
}

/// Applies the CI rule to a prerequisite that is not a program (a file, an installed
/// package): returns `ok`; when `ok` is false, panics in CI and otherwise prints a
/// notice saying `what` is missing and which test is skipped.
pub fn require(ok: bool, what: &str, test_name: &str) -> bool {
    if ok {
        return true;
    }
    assert!(
        !in_ci(),
        "{test_name}: {what}; CI must install it (see .ci/run)"
    );
    eprintln!("NOTICE: skipping {test_name}: {what}; run .ci/run's install steps to include it");
    false
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Only for programs that take a fixed port and cannot report the port of a `:0` bind,
/// such as the seed receivers (`PORT` from the environment). Our own servers bind
/// `127.0.0.1:0` instead, which has no window in which another process can take the port.
pub fn free_port() -> u16 {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0 to find a free port");
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}
