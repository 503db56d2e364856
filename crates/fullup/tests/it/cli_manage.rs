//! `fullup site|webhook|event|delivery|wait-ready` against a running `fullup serve`, and
//! the rest of the command line's surface: the top-level help, completions, the man page,
//! the admin token's warnings.

use std::process::{Command, Output};

use crate::support_server::{ADMIN_TOKEN, Server};

/// Runs `fullup args` with `FULLUP_URL=url` and the given token variables only.
fn fullup(args: &[&str], url: &str, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fullup"))
        .args(args)
        .env_remove("FULLUP_ADMIN_TOKEN")
        .env_remove("FULLUP_API_KEY")
        .env("FULLUP_URL", url)
        .envs(env.iter().copied())
        .output()
        .expect("run fullup")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn the_management_commands_create_send_list_and_retry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let server = Server::start(&database_url, &[], &[]).await;
    let url = server.base.as_str();
    let admin = [("FULLUP_ADMIN_TOKEN", ADMIN_TOKEN)];

    assert!(fullup(&["wait-ready"], url, &[]).status.success());
    let site = fullup(&["site", "create", "demo", "--quiet"], url, &admin);
    assert!(site.status.success(), "{}", stderr(&site));
    let site = stdout(&site).trim().to_owned();
    assert!(site.starts_with("site_"), "{site}");

    // Nothing listens on port 9 of loopback: the delivery stays pending.
    let hook = fullup(
        &[
            "webhook",
            "create",
            "--site",
            &site,
            "http://127.0.0.1:9/hook",
            "--event-type",
            "order.*",
            "--header",
            "X-Tenant: acme",
        ],
        url,
        &admin,
    );
    assert!(hook.status.success(), "{}", stderr(&hook));
    let shown = stdout(&hook);
    assert!(shown.contains("created webhook wh_"), "{shown}");
    let listed: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/v1/sites/{site}/webhooks"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed["data"][0]["headers"],
        serde_json::json!({"x-tenant": "acme"}),
        "--header is sent"
    );
    let refused = fullup(
        &[
            "webhook",
            "create",
            "--site",
            &site,
            "http://127.0.0.1:9/h",
            "--header",
            "Host: x",
        ],
        url,
        &admin,
    );
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a refusal: {}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("host"), "{}", stderr(&refused));
    assert!(shown.contains("secret (shown once"), "{shown}");
    assert!(shown.contains("whsec_"), "{shown}");

    let send = [
        "event",
        "send",
        "--site",
        &site,
        "--type",
        "order.paid",
        r#"{"n":1}"#,
    ];
    let args = [&send[..], &["--idempotency-key", "order-1", "--quiet"]].concat();
    let first = fullup(&args, url, &admin);
    let again = fullup(&args, url, &admin);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stdout(&first), stdout(&again), "one key, one event");
    let event = stdout(&first).trim().to_owned();

    let list = ["delivery", "list", "--site", &site, "--event", &event];
    let ids = fullup(&[&list[..], &["--quiet"]].concat(), url, &admin);
    let ids = stdout(&ids);
    assert_eq!(ids.lines().count(), 1, "{ids}");
    let delivery = ids.trim();
    let table = stdout(&fullup(&list, url, &admin));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(delivery) && l.contains("pending")),
        "{table}"
    );

    let retried = fullup(
        &["delivery", "retry", "--site", &site, delivery],
        url,
        &admin,
    );
    assert!(retried.status.success(), "{}", stderr(&retried));
    assert!(
        stdout(&retried).contains("pending again"),
        "{}",
        stdout(&retried)
    );
    let attempts = fullup(
        &["delivery", "attempts", "--site", &site, delivery],
        url,
        &admin,
    );
    assert!(attempts.status.success(), "{}", stderr(&attempts));
    assert!(
        stdout(&attempts).starts_with(&format!("delivery {delivery} pending")),
        "{}",
        stdout(&attempts)
    );
}

#[tokio::test]
async fn a_refusal_exits_1_and_other_errors_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let server = Server::start(&database_url, &[], &[]).await;
    let url = server.base.as_str();

    let wrong = [("FULLUP_ADMIN_TOKEN", "not-the-token-of-this-service")];
    let refused = fullup(&["site", "create", "demo"], url, &wrong);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("401"), "{}", stderr(&refused));

    let admin = [("FULLUP_ADMIN_TOKEN", ADMIN_TOKEN)];
    let missing = [
        "delivery",
        "attempts",
        "--site",
        "site_01J00000000000000000000000",
        "dlv_x",
    ];
    let missing = fullup(&missing, url, &admin);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("does not exist"),
        "{}",
        stderr(&missing)
    );

    let no_token = fullup(&["site", "list"], url, &[]);
    assert_eq!(no_token.status.code(), Some(2));
    assert!(
        stderr(&no_token).contains("FULLUP_ADMIN_TOKEN"),
        "{}",
        stderr(&no_token)
    );

    let bad_json = [
        "event",
        "send",
        "--site",
        "site_x",
        "--type",
        "t",
        "{not json",
    ];
    let bad_json = fullup(&bad_json, url, &admin);
    assert_eq!(bad_json.status.code(), Some(2));
    assert!(
        stderr(&bad_json).contains("DATA_JSON is not JSON"),
        "{}",
        stderr(&bad_json)
    );
}

#[test]
fn wait_ready_gives_up_after_its_timeout_with_exit_2() {
    let port = fullup_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let output = fullup(&["wait-ready", "--timeout", "300ms"], &url, &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("is not ready after"),
        "{}",
        stderr(&output)
    );
}

/// Regression: the top-level help named 4 of the 7 commands.
#[test]
fn the_top_level_help_names_every_command() {
    let help = stdout(&fullup(&["--help"], "http://127.0.0.1:1", &[]));
    for command in [
        "serve",
        "wait-ready",
        "site",
        "webhook",
        "event",
        "delivery",
        "listen",
        "verify",
        "sign",
        "secret",
        "admin",
        "bench",
        "completions",
        "man",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} is not listed:\n{help}"
        );
        let about = help.lines().next().unwrap_or_default();
        let mentioned = about.contains(command)
            || ["wait-ready", "completions", "man", "admin"].contains(&command);
        assert!(
            mentioned,
            "the first line does not mention {command}: {about}"
        );
    }
}

#[test]
fn completions_and_the_man_page_cover_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let output = fullup(&["completions", shell], "http://127.0.0.1:1", &[]);
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        assert!(
            script.contains("wait-ready") && script.contains("delivery"),
            "{shell}"
        );
    }
    let output = fullup(&["man"], "http://127.0.0.1:1", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let page = stdout(&output);
    assert!(
        page.starts_with(".ie") || page.contains(".TH fullup"),
        "{page}"
    );
    assert!(page.contains("wait\\-ready"), "{page}");
}

/// Regression: a one-character admin token was accepted without a word.
/// Issue 18: any non-empty admin token passed.
#[test]
fn a_short_admin_token_is_refused_unless_the_development_flag_is_given() {
    // A database in a folder that does not exist: serve stops (exit 2) after reading
    // its configuration, without listening anywhere.
    let args = [
        "serve",
        "--database-url",
        "sqlite:///nonexistent/folder/fullup.db",
        "--listen",
        "127.0.0.1:0",
    ];
    let short = fullup(&args, "http://127.0.0.1:1", &[("FULLUP_ADMIN_TOKEN", "x")]);
    assert_eq!(short.status.code(), Some(2), "{}", stderr(&short));
    let err = stderr(&short);
    assert!(
        err.contains("1 characters")
            && err.contains("32")
            && err.contains("--insecure-dev-admin-token"),
        "{err}"
    );
    assert!(
        !err.contains("database"),
        "refused before the database is opened: {err}"
    );
    let mut dev_args = args.to_vec();
    dev_args.push("--insecure-dev-admin-token");
    let dev = fullup(
        &dev_args,
        "http://127.0.0.1:1",
        &[("FULLUP_ADMIN_TOKEN", "x")],
    );
    assert_eq!(dev.status.code(), Some(2), "{}", stderr(&dev));
    let err = stderr(&dev);
    assert!(
        err.contains("WARNING") && err.contains("1 characters") && err.contains("database"),
        "accepted with a warning, then the database fails: {err}"
    );
    let long = fullup(
        &args,
        "http://127.0.0.1:1",
        &[("FULLUP_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    assert_eq!(long.status.code(), Some(2), "{}", stderr(&long));
    assert!(!stderr(&long).contains("WARNING"), "{}", stderr(&long));
}
