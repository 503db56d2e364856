//! `fullup delivery list|attempts|retry`: where a site's events stand at their
//! receivers, and a manual retry.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use fullup_client::{Attempt, Client, Delivery, DeliveryFilter, DeliveryState};
use futures::{StreamExt as _, TryStreamExt as _};

use super::remote::{Remote, block_on};
use super::sign::print_line;

/// How often `--wait` asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Arguments of `fullup delivery`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List a site's deliveries, newest first: id, state, attempts, event, webhook.
    List(ListArgs),
    /// Show a delivery and its attempts, newest first.
    Attempts {
        /// The site's id.
        #[arg(long, value_name = "ID")]
        site: String,
        /// The delivery's id.
        delivery: String,
    },
    /// Attempt a delivery again now, whatever its state.
    Retry {
        /// The site's id.
        #[arg(long, value_name = "ID")]
        site: String,
        /// The delivery's id.
        delivery: String,
    },
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// The site's id.
    #[arg(long, value_name = "ID")]
    site: String,
    /// Only this event's deliveries.
    #[arg(long, value_name = "ID")]
    event: Option<String>,
    /// Only this webhook's deliveries.
    #[arg(long, value_name = "ID")]
    webhook: Option<String>,
    /// Only deliveries in this state.
    #[arg(long, value_enum)]
    state: Option<StateArg>,
    /// Show the most recent N.
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
    /// First wait until none of them is pending (exit 2 after --timeout).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print the ids alone, one a line.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum StateArg {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
}

impl From<StateArg> for DeliveryState {
    fn from(state: StateArg) -> Self {
        match state {
            StateArg::Pending => Self::Pending,
            StateArg::Succeeded => Self::Succeeded,
            StateArg::Failed => Self::Failed,
            StateArg::Cancelled => Self::Cancelled,
        }
    }
}

/// Runs `fullup delivery <command>`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    block_on(async move {
        match args.command {
            Command::List(list_args) => {
                let page_size = u32::try_from(list_args.limit).unwrap_or(u32::MAX);
                list(&client.with_page_size(page_size), list_args).await?
            }
            Command::Attempts { site, delivery } => attempts(&client, &site, &delivery).await?,
            Command::Retry { site, delivery } => {
                let delivery = client.retry_delivery(&site, &delivery).await?;
                print_line(&format!(
                    "delivery {} is {} again: it is attempted now",
                    delivery.id, delivery.state
                ))?;
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })?
}

async fn list(client: &Client, args: ListArgs) -> anyhow::Result<()> {
    let filter = DeliveryFilter {
        event_id: args.event,
        webhook_id: args.webhook,
        state: args.state.map(DeliveryState::from),
    };
    let started = Instant::now();
    let deliveries = loop {
        let deliveries: Vec<Delivery> = client
            .deliveries(&args.site, &filter)
            .take(args.limit)
            .try_collect()
            .await?;
        let pending = deliveries
            .iter()
            .filter(|d| d.state == DeliveryState::Pending)
            .count();
        if !args.wait || pending == 0 {
            break deliveries;
        }
        anyhow::ensure!(
            started.elapsed() < args.timeout,
            "{pending} deliveries still pending after {}; `fullup delivery attempts` shows why",
            humantime::format_duration(args.timeout)
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    if args.quiet {
        for delivery in &deliveries {
            print_line(&delivery.id)?;
        }
        return Ok(());
    }
    print_line(&format!(
        "{:<30}  {:<9}  {:>8}  {:<30}  WEBHOOK",
        "DELIVERY", "STATE", "ATTEMPTS", "EVENT"
    ))?;
    for d in &deliveries {
        print_line(&format!(
            "{:<30}  {:<9}  {:>8}  {:<30}  {}",
            d.id, d.state, d.attempt_count, d.event_id, d.webhook_id
        ))?;
    }
    Ok(())
}

async fn attempts(client: &Client, site: &str, id: &str) -> anyhow::Result<()> {
    let delivery = client.delivery(site, id).await?;
    let attempts: Vec<Attempt> = client.attempts(site, id).try_collect().await?;
    print_line(&format!(
        "delivery {} {} after {} attempt(s): event {} to webhook {}",
        delivery.id, delivery.state, delivery.attempt_count, delivery.event_id, delivery.webhook_id
    ))?;
    if let Some(next) = delivery.next_attempt_at {
        print_line(&format!("next attempt at {}", next.to_rfc3339()))?;
    }
    if attempts.is_empty() {
        return Ok(());
    }
    print_line(&format!(
        "{:>3}  {:<24}  {:>8}  RESULT",
        "#", "STARTED", "DURATION"
    ))?;
    for a in &attempts {
        let result = match (a.status_code, &a.error_kind, &a.error_message) {
            (Some(status), None, _) => format!("answered {status}"),
            (Some(status), Some(kind), _) => format!("answered {status} ({kind})"),
            (None, Some(kind), Some(message)) => format!("{kind}: {message}"),
            (None, Some(kind), None) => kind.clone(),
            (None, None, _) => "no answer".to_owned(),
        };
        print_line(&format!(
            "{:>3}  {:<24}  {:>5} ms  {result}",
            a.attempt_number,
            a.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            a.duration_ms
        ))?;
    }
    Ok(())
}
