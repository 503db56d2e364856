//! The API contract as third-party tools read it: schemathesis fuzzes the served
//! `/openapi.json` (no server error, no undocumented status, no answer outside its
//! schema), and a client that openapi-python-client generates from `docs/openapi.json`
//! creates a site and a webhook, sends an event and reads its delivery. Both tools are
//! pinned in `testdata/contract/requirements.txt`, which `.ci/run` installs; the
//! schemathesis command is the one `docs/api.md` gives.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use fullup_signature::Secret;
use serde_json::Value;

use crate::support::server::ADMIN_TOKEN;
use crate::support::{Backend, TestReceiver, TestServer, store_test};

/// The checks that must hold for every generated case.
const CHECKS: &str = "not_a_server_error,status_code_conformance,response_schema_conformance";
/// Cases per operation and phase: about 1,900 cases over every operation, in well under
/// a minute on one core.
const MAX_EXAMPLES: &str = "40";
/// A fixed seed, so that a failure found in CI reproduces on a laptop.
const SEED: &str = "1";
/// Fewer cases than this means schemathesis did not really exercise the API.
const MIN_CASES: u64 = 1000;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `program` with `args` in `dir`, returning its output (stdout and stderr captured).
async fn run(program: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("could not run {program}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The `N` of schemathesis' closing "N generated, M passed" line.
fn generated_cases(stdout: &str) -> Option<u64> {
    stdout.lines().find_map(|line| {
        let (count, rest) = line.trim().split_once(' ')?;
        rest.starts_with("generated").then(|| count.parse().ok())?
    })
}

store_test!(schemathesis_finds_no_server_error_undocumented_status_or_schema_mismatch);
async fn schemathesis_finds_no_server_error_undocumented_status_or_schema_mismatch(
    backend: Backend,
) {
    const TEST: &str =
        "contract::schemathesis_finds_no_server_error_undocumented_status_or_schema_mismatch";
    if !fullup_testkit::require_tool("schemathesis", &["--version"], TEST) {
        return;
    }
    // An API-only node: schemathesis registers webhooks at random URLs, public IP
    // literals among them, and a test must not send traffic off the machine.
    let server = backend.start_with(|c| c.delivery.workers = 0).await;
    // schemathesis keeps its Hypothesis database in the working directory.
    let work = tempfile::tempdir().expect("temp dir");
    let schema = format!("{}/openapi.json", server.base);
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let args = [
        "run",
        &schema,
        "--checks",
        CHECKS,
        "--header",
        &auth,
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "1",
        // Well above the API's own 30 s timeout (a documented 503): a loaded CI machine
        // must not turn a slow answer into a failure.
        "--request-timeout",
        "60",
    ];
    let output = run("schemathesis", &args, work.path(), &[]).await;
    let report = text(&output);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}"
    );
    let cases = generated_cases(&String::from_utf8_lossy(&output.stdout));
    assert!(
        cases.is_some_and(|n| n >= MIN_CASES),
        "schemathesis ran {cases:?} cases, fewer than {MIN_CASES}:\n{report}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_generated_from_the_document_sees_an_event_delivered() {
    const TEST: &str = "contract::a_client_generated_from_the_document_sees_an_event_delivered";
    if !fullup_testkit::require_tool("openapi-python-client", &["--version"], TEST)
        || !fullup_testkit::require_tool("python3", &["-c", "import httpx, attrs, dateutil"], TEST)
    {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let document = repo_root().join("docs/openapi.json");
    let package = work.path().join("fullup_api");
    let generate = [
        "generate",
        "--path",
        document.to_str().expect("UTF-8 path"),
        "--output-path",
        package.to_str().expect("UTF-8 path"),
        "--meta",
        "none",
        "--fail-on-warning",
    ];
    let output = run("openapi-python-client", &generate, work.path(), &[]).await;
    assert!(
        output.status.success(),
        "openapi-python-client could not generate a client from docs/openapi.json:\n{}",
        text(&output)
    );

    let server = TestServer::start().await;
    let mut receiver = TestReceiver::start().await;
    let secret = Secret::generate();
    receiver.expect_secret(Secret::parse(secret.expose()).expect("secret"));
    let script = repo_root().join("testdata/contract/client_roundtrip.py");
    let receiver_url = receiver.url();
    let args = [
        script.to_str().expect("UTF-8 path"),
        "fullup_api",
        &server.base,
        &receiver_url,
    ];
    let env = [
        ("PYTHONPATH", work.path().to_str().expect("UTF-8 path")),
        ("FULLUP_ADMIN_TOKEN", ADMIN_TOKEN),
        ("FULLUP_WEBHOOK_SECRET", secret.expose()),
    ];
    let output = run("python3", &args, work.path(), &env).await;
    assert!(
        output.status.success(),
        "the generated client failed:\n{}",
        text(&output)
    );
    let answer: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("the script printed no JSON ({e}):\n{}", text(&output)));
    assert_eq!(answer["state"], "succeeded", "{answer}");
    assert_eq!(
        answer["delivery_webhook_id"], answer["webhook_id"],
        "{answer}"
    );
    assert_eq!(
        answer["attempt_status_codes"],
        serde_json::json!([200]),
        "{answer}"
    );

    let received = receiver.next(Duration::from_secs(5)).await;
    assert!(
        received.fullup_ok,
        "the delivery's signature does not verify"
    );
    let body = received.json();
    assert_eq!(body["id"], answer["event_id"], "{body}");
    assert_eq!(body["type"], "order.paid", "{body}");
    assert_eq!(body["data"], serde_json::json!({"order": 42}), "{body}");
    server.stop().await;
}
