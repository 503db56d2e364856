//! `fullup serve` as an operator runs it: signals and exit codes.

use std::time::Duration;

use crate::support_server::Server;

#[tokio::test]
async fn sigterm_stops_the_service_with_exit_code_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let mut server = Server::start(&database_url, &[], &[]).await;
    let health = reqwest::get(format!("{}/health", server.base))
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let status = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn a_bad_flag_exits_2_with_a_one_line_reason() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fullup"))
        .args(["serve", "--retry-schedule", "soon"])
        .output()
        .expect("run fullup");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--retry-schedule"), "{stderr}");
}

#[test]
fn serve_help_documents_rust_log_and_the_monitoring_flags() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fullup"))
        .args(["serve", "--help"])
        .output()
        .expect("run fullup");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "RUST_LOG",
        "NO_COLOR",
        "--log-format",
        "FULLUP_LOG_FORMAT",
        "--metrics-listen",
        "FULLUP_METRICS_LISTEN",
    ] {
        assert!(help.contains(needle), "no {needle} in:\n{help}");
    }
}
