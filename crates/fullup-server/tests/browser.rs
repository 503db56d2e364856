//! The console in real headless Chromium: this test runs the service and hands
//! `testdata/console/e2e.mjs` (playwright-core driving Debian's Chromium, axe-core on
//! every page) what it needs; the script signs in, creates a webhook to a receiver of
//! its own, follows a test event, a failure and a retry, checks that nothing users or
//! receivers wrote runs as script, and proves a portal session reaches no other site.
//!
//! Screenshots of every page go to `FULLUP_ARTIFACTS` (default
//! `target/tmp/console-screenshots`); with `UPDATE_SCREENSHOTS=1` two of them are copied
//! to `docs/` for the README.
//!
//! A test binary of its own, unlike the crate's other integration tests (`tests/it`):
//! Chromium keeps both cores of a 2-core machine busy for some seconds, and beside it
//! the `it` binary's tests that wait a bounded time for a delivery ran out of time.
//! Cargo runs test binaries one after another, so nothing runs beside the browser.
//! It shares `it`'s harness (`tests/it/support`).

#[allow(dead_code, unused_imports, unused_macros)]
#[path = "it/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::support::server::ADMIN_TOKEN;
use crate::support::{TestReceiver, TestServer};

const TEST: &str = "the_console_works_in_a_real_browser";
/// The screenshots the README shows: (artifact, committed copy under `docs/`).
const README_SHOTS: [(&str, &str); 2] = [
    ("06-delivery-failed.png", "console-delivery.png"),
    ("09-site-webhooks.png", "console-webhooks.png"),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    let script_dir = repo_root().join("testdata/console");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    if !fullup_testkit::require_tool("node", &["--version"], TEST)
        || !fullup_testkit::require_tool(&chromium, &["--version"], TEST)
        || !fullup_testkit::require(
            script_dir.join("node_modules/playwright-core").is_dir()
                && script_dir.join("node_modules/axe-core").is_dir(),
            "testdata/console/node_modules (run `npm ci` there)",
            TEST,
        )
    {
        return;
    }
    // Failed attempts wait an hour: only the console's "retry now" retries in the test.
    let server = TestServer::start_with(|c| {
        c.delivery.retry = fullup_server::domain::retry::RetrySchedule::new(
            vec![std::time::Duration::from_secs(3600)],
            0.0,
        );
    })
    .await;
    let site = server.create_site().await;

    // Another site, with a webhook and a delivery the portal must never reach.
    let mut receiver = TestReceiver::start().await;
    let other = server.create_site().await;
    let (other_webhook, _) = server.create_webhook(&other, &receiver.url(), &["*"]).await;
    let event = server.send_event(&other, "order.paid", json!({})).await;
    let other_delivery = server.wait_for_state(&other, &event, "succeeded").await;
    let _ = receiver.next(std::time::Duration::from_secs(5)).await;
    let (status, link) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/portal-links"),
            None,
        )
        .await;
    assert_eq!(status, 201, "{link}");

    let artifacts = std::env::var_os("FULLUP_ARTIFACTS").map_or_else(
        || PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"),
        PathBuf::from,
    );
    let output = tokio::task::spawn_blocking({
        let (base, artifacts) = (server.base.clone(), artifacts.clone());
        let portal = link["url"].as_str().expect("url").to_owned();
        let other_delivery = other_delivery["id"].as_str().expect("id").to_owned();
        move || {
            Command::new("node")
                .arg("e2e.mjs")
                .current_dir(&script_dir)
                .env("FULLUP_URL", base)
                .env("FULLUP_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("FULLUP_SITE", site)
                .env("FULLUP_OTHER_SITE", other)
                .env("FULLUP_OTHER_WEBHOOK", other_webhook)
                .env("FULLUP_OTHER_DELIVERY", other_delivery)
                .env("FULLUP_PORTAL_URL", portal)
                .env("FULLUP_ARTIFACTS", &artifacts)
                .env("CHROMIUM", chromium)
                .output()
                .expect("run node e2e.mjs")
        }
    })
    .await
    .expect("the script's task");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "the browser test failed ({}); screenshots in {}",
        output.status,
        artifacts.display()
    );
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        for (shot, committed) in README_SHOTS {
            std::fs::copy(
                artifacts.join(shot),
                repo_root().join("docs").join(committed),
            )
            .expect("copy a screenshot to docs/");
        }
    }
    server.stop().await;
}
