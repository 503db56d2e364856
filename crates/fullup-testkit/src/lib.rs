//! Test helpers shared by the workspace's integration tests.
//!
//! The project's rule for external tools (Node, Python, PostgreSQL, Chromium): in CI
//! (`CI=true`) a test that needs one must fail when it is missing; on a developer
//! laptop it may skip with a printed notice. [`require_tool`] is the one place that
//! applies the rule.

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
    let args: &[&str] = if check_args.is_empty() { &["--version"] } else { check_args };
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    let what = format!("`{program} {}` failed", args.join(" "));
    assert!(!in_ci(), "{test_name}: {what}; CI must install it (see .ci/run)");
    eprintln!("NOTICE: skipping {test_name}: {what}; run .ci/run's install steps to include it");
    false
}
