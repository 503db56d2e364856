//! `fullup webhook create|list`: where a site's events go.

use std::process::ExitCode;

use fullup_client::{CustomHeaders, NewWebhook};
use futures::TryStreamExt as _;

use super::remote::{Remote, block_on};
use super::sign::print_line;

/// Arguments of `fullup webhook`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a webhook; prints its id and its signing secret, shown this once.
    Create(CreateArgs),
    /// List a site's webhooks, newest first.
    List {
        /// The site's id.
        #[arg(long, value_name = "ID")]
        site: String,
    },
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The site's id.
    #[arg(long, value_name = "ID")]
    site: String,
    /// The receiver's http(s) URL.
    #[arg(value_name = "RECEIVER_URL")]
    receiver_url: String,
    /// Event types it receives: `*`, a prefix such as `form.*`, or a type. Repeatable;
    /// default `*`.
    #[arg(long = "event-type", value_name = "TYPE")]
    event_types: Vec<String>,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    /// A header sent with every delivery besides the service's own (not signed), as
    /// `NAME: VALUE`, such as `--header 'Authorization: Bearer …'`. Repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Print the secret alone, for `FULLUP_SECRET=$(fullup webhook create … --quiet)`.
    #[arg(long, short)]
    quiet: bool,
}

/// Runs `fullup webhook <command>`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    block_on(async move {
        match args.command {
            Command::Create(create) => {
                let hook = NewWebhook {
                    event_types: create.event_types,
                    description: create.description,
                    headers: CustomHeaders(create.headers.into_iter().collect()),
                    ..NewWebhook::new(create.receiver_url)
                };
                let created = client.create_webhook(&create.site, &hook).await?;
                if create.quiet {
                    print_line(created.secret.expose())?;
                } else {
                    let webhook = &created.webhook;
                    print_line(&format!(
                        "created webhook {} to {} for {}",
                        webhook.id,
                        webhook.url,
                        webhook.event_types.join(", ")
                    ))?;
                    print_line(&format!(
                        "secret (shown once; the receiver verifies with it): {}",
                        created.secret.expose()
                    ))?;
                }
            }
            Command::List { site } => {
                let mut webhooks = client.webhooks(&site);
                while let Some(webhook) = webhooks.try_next().await? {
                    let state = match (webhook.enabled, webhook.paused) {
                        (false, _) => "disabled",
                        (true, true) => "paused",
                        (true, false) => "enabled",
                    };
                    print_line(&format!(
                        "{}  {:<8}  {}  {}",
                        webhook.id,
                        state,
                        webhook.url,
                        webhook.event_types.join(",")
                    ))?;
                }
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })?
}

/// `NAME: VALUE` (the service checks the name and the value).
fn parse_header(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| format!("`{raw}` is not `NAME: VALUE`"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}
