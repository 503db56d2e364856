//! The README's quickstart, run as written: its command block, extracted from README.md,
//! in one `bash -euo pipefail` shell in an empty folder, against the fresh service it
//! starts. The block before it (`cargo build --release` and `PATH`) is the one line not
//! run: the test puts this test build's `fullup` on `PATH` instead.
//!
//! The block uses the default ports (8080 for the service, 3000 for the receiver), so
//! it runs on a host of its own (a network namespace, `fullup-hosts`: root and iproute2),
//! where nothing else holds them.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The quickstart needs a few seconds (15 s if the first attempt is retried); a debug
/// build on a busy machine, more.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// The first block of the quickstart: what it asks to run once, which the test replaces.
const BUILD_BLOCK: &str = r#"cargo build --release && export PATH="$PWD/target/release:$PATH""#;

/// The README's `## Quickstart` section's fenced `sh` blocks, in order.
fn quickstart_blocks(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Quickstart"))
        .expect("README.md has a `## Quickstart` section");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(lines), "```") => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            (Some(lines), _) => lines.push(line),
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_readme_quickstart_runs_as_written_and_its_delivery_succeeds() {
    let name = "the_readme_quickstart_runs_as_written_and_its_delivery_succeeds";
    let support = fullup_hosts::check_support();
    if let Err(err) = &support {
        eprintln!("{err}");
    }
    if !fullup_testkit::require(support.is_ok(), "network namespaces (root, iproute2)", name) {
        return;
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let blocks = quickstart_blocks(&readme);
    assert_eq!(
        blocks.len(),
        2,
        "the quickstart has a build block and a command block"
    );
    assert_eq!(
        blocks[0].trim(),
        BUILD_BLOCK,
        "the build block the test stands in for"
    );
    let script = &blocks[1];

    let hosts = fullup_hosts::Hosts::create(1).expect("a host for the quickstart");
    let host = &hosts.as_slice()[0];
    let dir = tempfile::tempdir().expect("temp dir");
    let output_path = dir.path().join("output.txt");
    std::fs::write(dir.path().join("quickstart.sh"), script).expect("write the script");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_fullup"))
        .parent()
        .expect("the binary's folder");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = std::fs::File::create(&output_path).expect("output file");
    let mut command = host.command("bash");
    command
        .args(["-euo", "pipefail", "quickstart.sh"])
        .current_dir(dir.path())
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("output file"))
        .stderr(output);
    for (var, _) in std::env::vars() {
        if var.starts_with("FULLUP_") || var == "RUST_LOG" {
            command.env_remove(var);
        }
    }
    let status = run_bounded(command, RUN_TIMEOUT);
    let shown = std::fs::read_to_string(&output_path).expect("read the output");
    assert!(
        status.success(),
        "the quickstart failed ({status}):\n{shown}"
    );
    let delivery_line = shown
        .lines()
        .find(|line| line.starts_with("dlv_"))
        .unwrap_or_else(|| panic!("no delivery listed:\n{shown}"));
    assert!(
        delivery_line.split_whitespace().nth(1) == Some("succeeded"),
        "the delivery did not succeed:\n{shown}"
    );
    assert!(
        shown.contains("verified with secret #1"),
        "the receiver did not verify it:\n{shown}"
    );
    assert!(
        shown.lines().any(|l| l.ends_with("answered 200")),
        "no attempt answered 200 is shown:\n{shown}"
    );
}

/// Runs `command` to its end, killing it after `timeout` (whatever it left running in
/// the host dies with the host).
fn run_bounded(mut command: Command, timeout: Duration) -> std::process::ExitStatus {
    let mut child = command.spawn().expect("start bash");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for bash") {
            return status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            panic!("the quickstart did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
