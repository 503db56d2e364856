//! `fullup secret new`: print a fresh webhook secret.

use std::process::ExitCode;

use fullup_signature::Secret;

use super::sign::print_line;

/// Arguments of `fullup secret`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print a new secret: `whsec_` + base64 of 32 random bytes (Standard Webhooks format).
    New,
}

/// Runs `fullup secret <command>`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::New => print_line(Secret::generate().expose())?,
    }
    Ok(ExitCode::SUCCESS)
}
