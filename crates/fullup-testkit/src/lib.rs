//! Test helpers shared by the workspace's integration tests.
//!
//! The project's rule for external tools (Node, Python, PostgreSQL, Chromium): in CI
//! (see [`in_ci`] for exactly when that is) a test that needs one must fail when it is
//! missing; on a developer laptop it may skip with a notice. [`require_tool`] and
//! [`require`] are the one place that applies the rule. A skip is never silent: the
//! notice goes straight to the process's stderr (past `cargo test`'s output capture), and
//! when `FULLUP_SKIP_LOG` names a file, one line per skip is appended to it, which
//! `.ci/run` counts and prints as "N skipped".
//!
//! It also starts the seed document's two receivers, and the two `docs/receiving.md`
//! shows, as real processes ([`SeedReceiver`]), gives tests a small blocking HTTP client
//! ([`post`]) and a throwaway PostgreSQL database ([`postgres::TestDatabase`]), and
//! reads the scale the reliability suites run at ([`Scale`]).

mod http;
pub mod postgres;
mod scale;
mod seed;

pub use http::post;
pub use scale::{SCALE_VAR, Scale};
pub use seed::{SEED_SECRET, SeedKind, SeedReceiver};

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

/// The environment variable naming a file to which every skip appends one line.
pub const SKIP_LOG_VAR: &str = "FULLUP_SKIP_LOG";

/// True when running under CI, where no test may be skipped.
///
/// CI is any `CI` value except unset, empty (after trimming), `0`, `false` or `no`
/// (case-insensitive). CI services set `CI=true` (GitHub, GitLab), `CI=1` or their own
/// name (`CI=woodpecker`), so erring towards CI keeps a missing tool from passing
/// unnoticed; a developer opts out with `CI=false`.
pub fn in_ci() -> bool {
    ci_value_means_ci(std::env::var("CI").ok().as_deref())
}

/// The rule [`in_ci`] applies to the value of `CI` (`None` when unset).
pub fn ci_value_means_ci(value: Option<&str>) -> bool {
    let Some(value) = value.map(str::trim) else {
        return false;
    };
    !(value.is_empty()
        || value == "0"
        || value.eq_ignore_ascii_case("false")
        || value.eq_ignore_ascii_case("no"))
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
    let skip_log = std::env::var_os(SKIP_LOG_VAR);
    apply_rule(
        ok,
        what,
        test_name,
        in_ci(),
        skip_log.as_deref().map(Path::new),
    )
}

/// [`require`] with the environment read by the caller, so the rule itself is testable.
fn apply_rule(ok: bool, what: &str, test_name: &str, ci: bool, skip_log: Option<&Path>) -> bool {
    if ok {
        return true;
    }
    assert!(!ci, "{test_name}: {what}; CI must install it (see .ci/run)");
    let notice = skip_notice(test_name, what);
    // Not eprintln!: the test harness captures that and shows it only for failing tests.
    // A direct write to the stderr handle is shown as it happens, even under capture.
    let _ = writeln!(std::io::stderr().lock(), "{notice}");
    if let Some(path) = skip_log {
        // One write of the whole line: tests skip in parallel, and an O_APPEND write of a
        // few bytes lands in one piece, where writeln!'s several writes interleave.
        let line = format!("{test_name}: {what}\n");
        let appended = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(e) = appended {
            let _ = writeln!(
                std::io::stderr().lock(),
                "NOTICE: could not record the skip in {} ({SKIP_LOG_VAR}): {e}",
                path.display()
            );
        }
    }
    false
}

fn skip_notice(test_name: &str, what: &str) -> String {
    format!("NOTICE: skipping {test_name}: {what}; run .ci/run's install steps to include it")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_any_value_but_unset_empty_zero_false_or_no() {
        for value in ["true", "TRUE", "True", "1", "yes", "woodpecker", " true "] {
            assert!(ci_value_means_ci(Some(value)), "CI={value:?} is CI");
        }
        for value in [None, Some(""), Some("  "), Some("0"), Some("false")] {
            assert!(!ci_value_means_ci(value), "CI={value:?} is not CI");
        }
        for value in ["FALSE", "False", "no", "No", "NO"] {
            assert!(!ci_value_means_ci(Some(value)), "CI={value:?} is not CI");
        }
    }

    #[test]
    fn a_met_requirement_passes_and_records_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("skips");
        assert!(apply_rule(true, "node", "t", true, Some(&log)));
        assert!(apply_rule(true, "node", "t", false, Some(&log)));
        assert!(!log.exists(), "no skip, no line");
    }

    #[test]
    fn a_skip_outside_ci_is_recorded_one_line_each() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("skips");
        assert!(!apply_rule(
            false,
            "`node --version` failed",
            "first",
            false,
            Some(&log)
        ));
        assert!(!apply_rule(
            false,
            "flask missing",
            "second",
            false,
            Some(&log)
        ));
        let recorded = std::fs::read_to_string(&log).expect("the skip log exists");
        assert_eq!(
            recorded,
            "first: `node --version` failed\nsecond: flask missing\n"
        );
    }

    /// Regression: with `writeln!` on the file, lines of parallel skips interleaved.
    #[test]
    fn parallel_skips_record_whole_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("skips");
        std::thread::scope(|scope| {
            for t in 0..8 {
                let log = &log;
                scope.spawn(move || {
                    for i in 0..50 {
                        let name = format!("test_{t}_{i}");
                        apply_rule(false, "`node --version` failed", &name, false, Some(log));
                    }
                });
            }
        });
        let recorded = std::fs::read_to_string(&log).expect("the skip log exists");
        let lines: Vec<&str> = recorded.lines().collect();
        assert_eq!(lines.len(), 400);
        for line in lines {
            let (name, what) = line.split_once(": ").expect("name: what");
            assert!(name.starts_with("test_") && !name.contains('`'), "{line}");
            assert_eq!(what, "`node --version` failed", "{line}");
        }
    }

    #[test]
    fn a_skip_without_a_log_still_returns_false() {
        assert!(!apply_rule(false, "node", "t", false, None));
    }

    #[test]
    #[should_panic(expected = "t: `node --version` failed; CI must install it (see .ci/run)")]
    fn a_missing_tool_fails_in_ci() {
        apply_rule(false, "`node --version` failed", "t", true, None);
    }

    #[test]
    fn the_notice_names_the_test_and_what_is_missing() {
        assert_eq!(
            skip_notice("seed::node", "flask missing"),
            "NOTICE: skipping seed::node: flask missing; run .ci/run's install steps to include it"
        );
    }
}
