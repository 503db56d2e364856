//! `fullup serve` as a child process, on loopback or on a host of a
//! [`fullup_hosts::Cluster`], and the admin calls tests make against it.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fullup_hosts::{Cluster, ServeProcess};
use fullup_signature::Secret;
use serde_json::{Value, json};

use crate::support_receiver::RecordingReceiver;

/// The admin token the child runs with.
pub const ADMIN_TOKEN: &str = "crash-test-admin-token-0123456789";
/// Every node seals with this main key (base64 of bytes 0 to 31); PostgreSQL needs one.
pub const MAIN_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// `--request-timeout` of the suites whose receivers or network stall: short, so that
/// the stalled attempts end quickly. [`Server::start_quick_to_give_up`] sets it.
pub const SHORT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How far past its timeout an attempt may end (issue 17's bound).
pub const TIMEOUT_GRACE: Duration = Duration::from_secs(1);
/// The benchmarks' bound on the service's peak RSS (docs/benchmarks.md, backlog); a
/// 1 GiB body read whole would pass it four times.
pub const PEAK_RSS_LIMIT: u64 = 256 * 1024 * 1024;
/// A debug build on a busy 2-core machine can take a while to open the database.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `fullup serve`; killed (SIGKILL) and reaped when dropped, so no exit path
/// of the test leaves it running.
pub struct Server {
    process: ServeProcess,
    /// `http://ADDR` of its API.
    pub base: String,
}

impl Server {
    /// Starts the binary on `database_url` and port 0, and reads the address it prints.
    pub async fn start(database_url: &str, extra_args: &[&str], envs: &[(&str, &str)]) -> Server {
        Self::launch(database_url, extra_args, envs, "warn", Stdio::inherit()).await
    }

    /// [`Server::start`] with [`MAIN_KEY`], a service that gives up on a receiver
    /// quickly: `--request-timeout` [`SHORT_REQUEST_TIMEOUT`], `--connect-timeout` 1 s,
    /// `retry_schedule` as its retries, no ingest rate limit.
    pub async fn start_quick_to_give_up(database_url: &str, retry_schedule: &str) -> Server {
        let timeout = format!("{}s", SHORT_REQUEST_TIMEOUT.as_secs());
        let args = [
            "--request-timeout",
            &timeout,
            "--connect-timeout",
            "1s",
            "--retry-schedule",
            retry_schedule,
            "--ingest-rate-limit",
            "0",
        ];
        Self::start(database_url, &args, &[("FULLUP_MAIN_KEY", MAIN_KEY)]).await
    }

    /// [`Server::start`] logging at `rust_log` into a pipe; the thread returned yields
    /// every line written there once the process has exited.
    pub async fn start_capturing_logs(
        database_url: &str,
        extra_args: &[&str],
        rust_log: &str,
    ) -> (Server, std::thread::JoinHandle<Vec<String>>) {
        Self::start_capturing_logs_with_env(database_url, extra_args, &[], rust_log).await
    }

    /// [`Server::start_capturing_logs`] with `envs` set as in [`Server::start`].
    pub async fn start_capturing_logs_with_env(
        database_url: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
        rust_log: &str,
    ) -> (Server, std::thread::JoinHandle<Vec<String>>) {
        let mut server =
            Self::launch(database_url, extra_args, envs, rust_log, Stdio::piped()).await;
        let stderr = server.process.take_stderr().expect("stderr is piped");
        let lines = std::thread::spawn(move || {
            BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .collect()
        });
        (server, lines)
    }

    /// Starts the binary on host `index` of `cluster`, on its database, with webhooks to
    /// the root namespace allowed (and no request timeout of its own: pass one).
    pub async fn start_on(
        cluster: &Cluster,
        index: usize,
        extra_args: &[&str],
        envs: &[(&str, &str)],
    ) -> Server {
        let exe = Path::new(env!("CARGO_BIN_EXE_fullup"));
        let command = cluster.serve_command(index, exe);
        Self::spawn(command, extra_args, envs, "warn", Stdio::inherit()).await
    }

    async fn launch(
        database_url: &str,
        extra_args: &[&str],
        envs: &[(&str, &str)],
        rust_log: &str,
        stderr: Stdio,
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fullup"));
        command
            .args(["serve", "--database-url", database_url])
            .args(["--listen", "127.0.0.1:0"])
            .args(["--allow-network", "127.0.0.0/8"])
            // Leases last connect + request timeout + 30 s. A 5-minute request timeout
            // makes them outlast the whole test, so only the restart's release of the
            // dead process's leases can get its claimed deliveries out in time.
            .args(unless_given(extra_args, "--request-timeout", "5m"));
        Self::spawn(command, extra_args, envs, rust_log, stderr).await
    }

    async fn spawn(
        mut command: Command,
        extra_args: &[&str],
        envs: &[(&str, &str)],
        rust_log: &str,
        stderr: Stdio,
    ) -> Server {
        command
            .args(unless_given(
                extra_args,
                "--retry-schedule",
                "1s,1s,1s,1s,1s",
            ))
            .args(extra_args)
            .env("FULLUP_ADMIN_TOKEN", ADMIN_TOKEN)
            .envs(envs.iter().copied())
            .env("RUST_LOG", rust_log)
            .stderr(stderr);
        // An empty value in `envs` unsets the variable (such as the admin token).
        for (name, _) in envs.iter().filter(|(_, value)| value.is_empty()) {
            command.env_remove(name);
        }
        let process = ServeProcess::start(command, START_TIMEOUT)
            .await
            .expect("`fullup serve` prints its address");
        Server {
            base: process.base_url(),
            process,
        }
    }

    /// The most memory the process has held so far (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> u64 {
        let path = format!("/proc/{}/status", self.process.pid());
        let status = std::fs::read_to_string(&path).expect("the server's /proc status");
        let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
        let kib = line.and_then(|l| l.trim().strip_suffix("kB")?.trim().parse::<u64>().ok());
        kib.expect("a VmHWM line in kB") * 1024
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        self.process
            .terminate(within)
            .expect("send SIGTERM to `fullup serve`")
            .expect("`fullup serve` exits after SIGTERM")
    }

    /// Sends SIGKILL and waits until the process is gone.
    pub fn kill(&mut self) {
        self.process.kill().expect("SIGKILL `fullup serve`");
    }
}

/// `[flag, value]`, or nothing when `extra_args` sets `flag` itself (clap refuses a
/// flag given twice).
fn unless_given<'a>(extra_args: &[&str], flag: &'a str, value: &'a str) -> Vec<&'a str> {
    if extra_args.contains(&flag) {
        Vec::new()
    } else {
        vec![flag, value]
    }
}

/// An admin API call that must answer `expected`; returns the JSON answer.
pub async fn call(client: &reqwest::Client, url: String, body: Value, expected: u16) -> Value {
    let response = client
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("the API answers JSON");
    assert_eq!(status, expected, "POST {url}: {body}");
    body
}

/// An admin API GET that must answer 200; returns the JSON answer.
pub async fn fetch(client: &reqwest::Client, url: String) -> Value {
    let response = client
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("the API answers JSON");
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

/// Creates a site with a webhook to `receiver`; returns the site id.
pub async fn create_site_and_webhook(
    client: &reqwest::Client,
    base: &str,
    receiver: &RecordingReceiver,
) -> String {
    create_site_with_webhooks(client, base, &[receiver]).await
}

/// Creates a site with a webhook to each of `receivers` (every event goes to each);
/// returns the site id.
pub async fn create_site_with_webhooks(
    client: &reqwest::Client,
    base: &str,
    receivers: &[&RecordingReceiver],
) -> String {
    let site = create_site(client, base).await;
    for receiver in receivers {
        add_webhook(client, base, &site, &receiver.url(), receiver).await;
    }
    site
}

/// Creates a site; returns its id.
pub async fn create_site(client: &reqwest::Client, base: &str) -> String {
    let site = call(
        client,
        format!("{base}/v1/sites"),
        json!({"name": "crash"}),
        201,
    )
    .await;
    site["id"].as_str().expect("a site id").to_owned()
}

/// Adds a webhook to `url` (every event type) on `site`; `receiver`, which `url` leads
/// to (directly or through a proxy), verifies its signatures from then on.
pub async fn add_webhook(
    client: &reqwest::Client,
    base: &str,
    site: &str,
    url: &str,
    receiver: &RecordingReceiver,
) {
    let webhook = call(
        client,
        format!("{base}/v1/sites/{site}/webhooks"),
        json!({"url": url, "event_types": ["*"], "description": "crash test"}),
        201,
    )
    .await;
    let secret = webhook["secret"].as_str().expect("the webhook's secret");
    receiver.expect_secret(Secret::parse(secret).expect("a usable secret"));
}

/// Waits, at most `within`, until no delivery of `site` is pending.
pub async fn wait_until_recorded(
    client: &reqwest::Client,
    base: &str,
    site: &str,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    let url = format!("{base}/v1/sites/{site}/deliveries?state=pending&limit=1");
    loop {
        let pending = fetch(client, url.clone()).await;
        let Some(first) = pending["data"].get(0) else {
            return;
        };
        assert!(
            Instant::now() < deadline,
            "deliveries still pending after {within:?}, e.g. {first}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Panics unless the longest attempt of `what`, `longest_ms`, ended within
/// [`SHORT_REQUEST_TIMEOUT`] plus [`TIMEOUT_GRACE`].
pub fn assert_within_timeout(what: &str, longest_ms: u64) {
    let bound = SHORT_REQUEST_TIMEOUT + TIMEOUT_GRACE;
    assert!(
        u128::from(longest_ms) <= bound.as_millis(),
        "{what}: an attempt took {longest_ms} ms, past the {SHORT_REQUEST_TIMEOUT:?} timeout \
         by more than {TIMEOUT_GRACE:?}"
    );
}
