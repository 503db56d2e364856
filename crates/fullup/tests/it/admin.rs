//! `fullup admin rotate-main-key` as an operator runs it: stop, rotate, start again.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support_receiver::RecordingReceiver;
use crate::support_server::{ADMIN_TOKEN, Server, call, create_site_and_webhook};

#[tokio::test]
async fn rotating_the_main_key_keeps_every_webhook_secret_usable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let key_file = dir.path().join("fullup.key");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let receiver = RecordingReceiver::start().await;

    let mut server = Server::start(&database_url, &[], &[]).await;
    let site = create_site_and_webhook(&client, &server.base, &receiver).await;
    assert!(server.terminate(Duration::from_secs(30)).success());
    let old_key = std::fs::read(&key_file).expect("the first start wrote the key file");

    let rotated = Command::new(env!("CARGO_BIN_EXE_fullup"))
        .args(["admin", "rotate-main-key", "--database-url", &database_url])
        .output()
        .expect("run rotate-main-key");
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let new_key = std::fs::read(&key_file).expect("the key file is replaced");
    assert_ne!(old_key, new_key, "a new key is in place");

    // The restarted service opens the secrets with the new key and still signs with
    // the webhook's secret: the receiver verifies the delivery.
    let server = Server::start(&database_url, &[], &[]).await;
    let event = call(
        &client,
        format!("{}/v1/sites/{site}/events", server.base),
        json!({"type": "form.submitted", "data": {"after": "rotation"}}),
        202,
    )
    .await;
    let id = event["id"].as_str().expect("event id").to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !receiver.received().contains(&id) {
        assert!(
            std::time::Instant::now() < deadline,
            "no verified delivery after the rotation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.failures(), 0);

    // The old key no longer opens the database.
    drop(server);
    std::fs::write(&key_file, &old_key).expect("put the old key back");
    let refused = Command::new(env!("CARGO_BIN_EXE_fullup"))
        .args([
            "serve",
            "--database-url",
            &database_url,
            "--listen",
            "127.0.0.1:0",
        ])
        .env("FULLUP_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run serve with the old key");
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("main key"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// Issue 18: `--new-key-file` at an existing path was overwritten, losing the key there.
#[test]
fn an_existing_new_key_file_is_never_overwritten() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let existing = dir.path().join("precious.key");
    std::fs::write(&existing, "a key some backup needs\n").expect("write");
    let current = dir.path().join("fullup.key");
    std::fs::write(&current, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").expect("write");
    let existing_arg = existing.display().to_string();
    let current_arg = current.display().to_string();
    let runs: [(&[&str], Option<&str>); 2] = [
        (&["--main-key-file", &current_arg], None),
        (&[], Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
    ];
    for (args, env_key) in runs {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fullup"));
        command
            .args(["admin", "rotate-main-key", "--database-url", &database_url])
            .args(args)
            .args(["--new-key-file", &existing_arg])
            .env_remove("FULLUP_MAIN_KEY")
            .env_remove("FULLUP_MAIN_KEY_FILE");
        if let Some(key) = env_key {
            command.env("FULLUP_MAIN_KEY", key);
        }
        let output = command.output().expect("run rotate-main-key");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("--new-key-file") && stderr.contains("exists"),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&existing).expect("still there"),
            "a key some backup needs\n"
        );
    }
    assert!(!dir.path().join("fullup.db").exists(), "nothing was opened");
}

/// Issue 18: the default key file sits beside the database, where one snapshot of the
/// folder holds both; the service says so at start.
#[tokio::test]
async fn a_key_file_beside_the_database_is_warned_about() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let (mut server, lines) = Server::start_capturing_logs(&database_url, &[], "warn").await;
    assert!(server.terminate(Duration::from_secs(30)).success());
    let lines = lines.join().expect("the log reader ends").join("\n");
    assert!(
        lines.contains("the main key file is in the database's folder"),
        "{lines}"
    );

    let elsewhere = tempfile::tempdir().expect("temp dir");
    let key_file = elsewhere.path().join("fullup.key").display().to_string();
    let database_url = format!("sqlite://{}", dir.path().join("other.db").display());
    let (mut server, lines) =
        Server::start_capturing_logs(&database_url, &["--main-key-file", &key_file], "warn").await;
    assert!(server.terminate(Duration::from_secs(30)).success());
    let lines = lines.join().expect("the log reader ends").join("\n");
    assert!(!lines.contains("database's folder"), "{lines}");
    assert!(elsewhere.path().join("fullup.key").exists());
}

/// Status of `GET /v1/sites` with `token`.
async fn sites_status(client: &reqwest::Client, base: &str, token: &str) -> u16 {
    client
        .get(format!("{base}/v1/sites"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the API answers")
        .status()
        .as_u16()
}

fn rotate_admin_token(database_url: &str, token_file: Option<&Path>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fullup"));
    command
        .args([
            "admin",
            "rotate-admin-token",
            "--database-url",
            database_url,
        ])
        .env_remove("FULLUP_ADMIN_TOKEN");
    if let Some(file) = token_file {
        command.arg("--admin-token-file").arg(file);
    }
    command.output().expect("run rotate-admin-token")
}

/// Issue 18: the generated admin token went to stdout (and so to journald or container
/// logs), and could not be replaced.
#[tokio::test]
async fn the_generated_admin_token_goes_to_a_private_file_and_rotates() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let read_token = |path: &Path| {
        let mode = std::fs::metadata(path)
            .expect("token file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        std::fs::read_to_string(path)
            .expect("token file")
            .trim()
            .to_owned()
    };

    // No terminal, no file, no FULLUP_ADMIN_TOKEN: the first start refuses to print one.
    let refused = Command::new(env!("CARGO_BIN_EXE_fullup"))
        .args([
            "serve",
            "--database-url",
            &database_url,
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("FULLUP_ADMIN_TOKEN")
        .output()
        .expect("run serve");
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("--admin-token-file") && err.contains("FULLUP_ADMIN_TOKEN"),
        "{err}"
    );

    let first = dir.path().join("admin-token");
    let first_arg = first.display().to_string();
    let mut server = Server::start(
        &database_url,
        &["--admin-token-file", &first_arg],
        &[("FULLUP_ADMIN_TOKEN", "")],
    )
    .await;
    let generated = read_token(&first);
    assert!(generated.starts_with("fadm_"), "{generated}");
    assert_eq!(sites_status(&client, &server.base, &generated).await, 200);
    assert!(server.terminate(Duration::from_secs(30)).success());

    // Without a file and without a terminal, nothing is changed.
    let no_file = rotate_admin_token(&database_url, None);
    assert_eq!(no_file.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&no_file.stderr).contains("--admin-token-file"),
        "{}",
        String::from_utf8_lossy(&no_file.stderr)
    );
    // An existing file is never overwritten.
    let over = rotate_admin_token(&database_url, Some(&first));
    assert_eq!(over.status.code(), Some(2));
    assert_eq!(read_token(&first), generated);

    let second = dir.path().join("admin-token-2");
    let rotated = rotate_admin_token(&database_url, Some(&second));
    let stdout = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let new_token = read_token(&second);
    assert!(
        !stdout.contains(&new_token),
        "the token is not printed: {stdout}"
    );
    assert!(stdout.contains(&second.display().to_string()), "{stdout}");

    let server = Server::start(&database_url, &[], &[("FULLUP_ADMIN_TOKEN", "")]).await;
    assert_eq!(sites_status(&client, &server.base, &new_token).await, 200);
    assert_eq!(sites_status(&client, &server.base, &generated).await, 401);
}
