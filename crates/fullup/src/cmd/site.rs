//! `fullup site create|list`: the sites (tenants) of a running service.

use std::process::ExitCode;

use futures::TryStreamExt as _;

use super::remote::{Remote, block_on};
use super::sign::print_line;

/// Arguments of `fullup site`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create a site (admin token); prints its id.
    Create {
        /// A human name, 1 to 200 characters.
        name: String,
        /// Print the id alone, for `SITE=$(fullup site create NAME --quiet)`.
        #[arg(long, short)]
        quiet: bool,
    },
    /// List the sites, newest first (admin token).
    List,
}

/// Runs `fullup site <command>`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = args.remote.client()?;
    block_on(async move {
        match args.command {
            Command::Create { name, quiet } => {
                let site = client.create_site(&name).await?;
                match quiet {
                    true => print_line(&site.id)?,
                    false => print_line(&format!("created site {} ({})", site.id, site.name))?,
                }
            }
            Command::List => {
                let mut sites = client.sites();
                while let Some(site) = sites.try_next().await? {
                    print_line(&format!("{}  {}", site.id, site.name))?;
                }
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })?
}
