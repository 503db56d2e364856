//! `fullup bench` as a smoke test: correctness of small runs of each scenario (exact
//! delivery counts, no signature failure), never their timing.

use std::process::{Command, Output};

use serde_json::Value;

fn run_bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fullup"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run fullup bench")
}

/// Runs a scenario with `--json`, expects exit 0, returns the report.
fn bench_report(args: &[&str]) -> Value {
    let output = run_bench(&[args, &["--json", "--timeout", "2m"]].concat());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON report")
}

/// Every expected delivery arrived verified, once or more, and nothing else did.
fn assert_exact(tally: &Value, expected: u64) {
    assert_eq!(tally["deliveries_expected"], expected, "{tally}");
    assert_eq!(tally["deliveries_distinct"], expected, "{tally}");
    assert_eq!(tally["deliveries_unexpected"], 0, "{tally}");
    assert_eq!(tally["signature_failures"], 0, "{tally}");
    assert!(tally["deliveries_verified"].as_u64().expect("count") >= expected);
}

#[test]
fn a_small_throughput_run_delivers_every_event_to_every_webhook_verified() {
    let report = bench_report(&[
        "--scenario",
        "throughput",
        "--events",
        "2000",
        "--ceiling-requests",
        "500",
        "--physical-connections",
        "16",
    ]);
    assert_eq!(report["events"], 2000);
    assert_eq!(report["fanout"], 10);
    assert_exact(&report, 20_000);
    assert!(report["deliveries_per_sec"].as_f64().expect("rate") > 0.0);
    assert!(report["ceiling_requests_per_sec"].as_f64().expect("rate") > 0.0);
    assert!(report["share_of_ceiling"].as_f64().expect("share") > 0.0);
    assert!(
        report["physical_ceiling_requests_per_sec"]
            .as_f64()
            .expect("rate")
            > 0.0
    );
    assert!(report["share_of_physical_ceiling"].as_f64().expect("share") > 0.0);
    assert_eq!(report["physical_connections"], 16);
    assert!(report["service_peak_in_flight"].as_u64().expect("count") > 0);
}

#[test]
fn a_small_ingest_run_delivers_every_accepted_event_verified() {
    let report = bench_report(&[
        "--scenario",
        "ingest",
        "--events",
        "1000",
        "--ceiling-requests",
        "300",
    ]);
    assert_eq!(report["scenario"], "ingest");
    assert_eq!(report["events"], 1000);
    assert_exact(&report, 1000);
    assert!(report["events_per_sec"].as_f64().expect("rate") > 0.0);
}

#[test]
fn a_small_latency_run_times_every_delivery_and_its_ceiling() {
    let report = bench_report(&["--scenario", "latency", "--rate", "200", "--duration", "2s"]);
    assert_eq!(report["events"], 400);
    assert_exact(&report, 400);
    assert_eq!(report["latency"]["samples"], 400);
    assert_eq!(report["ceiling_latency"]["samples"], 400);
    let (p50, p99) = (&report["latency"]["p50_ms"], &report["latency"]["p99_ms"]);
    assert!(p50.as_f64() <= p99.as_f64(), "{report}");
}

#[test]
fn a_small_backlog_run_holds_deliveries_while_paused_then_drains_them_all() {
    let report = bench_report(&[
        "--scenario",
        "backlog",
        "--backlog",
        "4000",
        "--reference-backlog",
        "1000",
        "--ceiling-requests",
        "200",
    ]);
    for (run, deliveries) in [("reference", 1000), ("backlog", 4000)] {
        let drain = &report[run];
        assert_eq!(drain["deliveries"], deliveries, "{report}");
        assert_eq!(drain["events"], deliveries / 10, "{report}");
        assert_exact(drain, deliveries);
        assert_eq!(drain["delivered_while_paused"], 0, "{report}");
        assert!(drain["peak_rss_bytes"].as_u64().expect("bytes") > 0);
    }
}

#[test]
fn a_small_isolation_run_delivers_every_healthy_event_beside_a_stalled_webhook() {
    let report = bench_report(&[
        "--scenario",
        "isolation",
        "--rate",
        "210",
        "--duration",
        "2s",
    ]);
    // 420 events over 21 webhooks: 20 for each, the 21st stalls.
    assert_eq!(report["events"], 420);
    assert_exact(&report["without_stalled"], 400);
    assert_exact(&report["with_stalled"], 400);
    assert!(
        report["stalled_connections"].as_u64().expect("count") > 0,
        "the stalled webhook was never attempted: {report}"
    );
}

#[test]
fn a_flag_the_scenario_does_not_use_is_refused_by_name() {
    let output = run_bench(&["--scenario", "latency", "--events", "5"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--events"), "{stderr}");
}

#[test]
fn a_small_sustained_run_reports_the_latency_of_each_window() {
    let report = bench_report(&[
        "--scenario",
        "sustained",
        "--rate",
        "100",
        "--fanout",
        "2",
        "--duration",
        "3s",
        "--window",
        "1s",
    ]);
    assert_exact(&report, 600);
    let windows = report["windows"].as_array().expect("windows");
    assert_eq!(windows.len(), 3, "{report}");
    for window in windows {
        assert_eq!(window["samples"], 200, "{report}");
    }
    assert!(report["p99_last_vs_first_window"].as_f64().expect("ratio") > 0.0);
    // SQLite: no PostgreSQL table statistics.
    assert_eq!(report["tables"], Value::Null);
}

/// A small throughput run (100 events x 2 webhooks) with `--fault FAULT`; its exit code
/// and report.
fn run_with_fault(fault: &str) -> (Option<i32>, Value) {
    let output = run_bench(&[
        "--scenario",
        "throughput",
        "--events",
        "100",
        "--fanout",
        "2",
        "--ceiling-requests",
        "100",
        "--json",
        "--timeout",
        "3s",
        "--fault",
        fault,
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "one JSON report ({e}); stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code(), report)
}

#[test]
fn a_run_whose_receiver_expects_another_secret_exits_1() {
    let (code, report) = run_with_fault("wrong-secret");
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["deliveries_distinct"], 0, "{report}");
    assert!(report["signature_failures"].as_u64().expect("count") > 0);
}

#[test]
fn a_run_with_one_delivery_answered_but_never_recorded_exits_1() {
    let (code, report) = run_with_fault("drop-one");
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["deliveries_expected"], 200, "{report}");
    assert_eq!(report["deliveries_distinct"], 199, "{report}");
    assert_eq!(report["signature_failures"], 0, "{report}");
}
