//! `fullup bench` as a smoke test: correctness of a small run, never its timing.

use std::process::Command;

use serde_json::Value;

#[test]
fn a_small_throughput_run_delivers_every_event_to_every_webhook_verified() {
    let output = Command::new(env!("CARGO_BIN_EXE_fullup"))
        .args([
            "bench",
            "--scenario",
            "throughput",
            "--events",
            "2000",
            "--json",
        ])
        .args(["--ceiling-requests", "500", "--timeout", "5m"])
        .output()
        .expect("run fullup bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    assert_eq!(report["events"], 2000);
    assert_eq!(report["fanout"], 10);
    assert_eq!(report["deliveries_expected"], 20_000);
    assert_eq!(report["deliveries_distinct"], 20_000);
    assert_eq!(report["signature_failures"], 0);
    assert!(report["deliveries_verified"].as_u64().expect("count") >= 20_000);
    assert!(report["deliveries_per_sec"].as_f64().expect("rate") > 0.0);
    assert!(report["ceiling_requests_per_sec"].as_f64().expect("rate") > 0.0);
}
