//! `fullup event send`: send an event to a site, as a platform's backend would.

use std::process::ExitCode;

use anyhow::Context as _;
use fullup_client::NewEvent;
use serde_json::value::RawValue;

use super::remote::{Remote, block_on};
use super::sign::print_line;

/// Arguments of `fullup event`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Send an event; prints its id once the service has stored it and its deliveries.
    Send(SendArgs),
}

#[derive(Debug, clap::Args)]
struct SendArgs {
    /// The site's id.
    #[arg(long, value_name = "ID")]
    site: String,
    /// The event type, such as `form.submitted`.
    #[arg(long = "type", value_name = "TYPE")]
    event_type: String,
    /// The event's data: JSON text, delivered unchanged.
    #[arg(value_name = "DATA_JSON")]
    data: String,
    /// Sending again with the same key makes no second event (the same id is answered).
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Print the id alone, for `EVENT=$(fullup event send … --quiet)`.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `fullup event <command>`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Command::Send(send) = args.command;
    let data = RawValue::from_string(send.data).context("DATA_JSON is not JSON")?;
    let mut event = NewEvent::from_raw(send.event_type, data);
    event.idempotency_key = send.idempotency_key;
    let client = args.remote.client()?;
    let id = block_on(async move { client.create_event(&send.site, &event).await })??;
    match send.quiet {
        true => print_line(&id)?,
        false => print_line(&format!("accepted event {id}"))?,
    }
    Ok(ExitCode::SUCCESS)
}
