//! `fullup wait-ready`: wait until a service answers `/readyz`, so that a script that
//! has just started `fullup serve &` does not race its start-up.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::remote::{Remote, block_on};

/// How often it asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long one request may take: a service that accepts connections but does not
/// answer is not ready either.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Arguments of `fullup wait-ready`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Give up (exit 2) after this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    remote: Remote,
}

/// Polls `/readyz` until it answers 200.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.remote.anonymous(REQUEST_TIMEOUT)?;
    let started = Instant::now();
    block_on(async move {
        loop {
            let last = match client.ready().await {
                Ok(true) => return anyhow::Ok(ExitCode::SUCCESS),
                Ok(false) => {
                    "it answers /readyz with 503 (its database does not answer)".to_owned()
                }
                Err(err) => format!("{err}"),
            };
            anyhow::ensure!(
                started.elapsed() < args.timeout,
                "{} is not ready after {}: {last}",
                args.remote.url,
                humantime::format_duration(args.timeout)
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })?
}
