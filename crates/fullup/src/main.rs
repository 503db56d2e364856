//! The `fullup` command: thin glue over the workspace's libraries.
//!
//! Exit codes follow ripgrep: 0 ok, 1 "no" (a signature did not verify), 2 error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Fullup webhooks: sign, verify, receive and send signed webhooks.
#[derive(Debug, Parser)]
#[command(name = "fullup", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage webhook secrets.
    Secret(cmd::secret::Args),
    /// Print the fullup-signature of a body.
    Sign(cmd::sign::Args),
    /// Check a fullup-signature against a body (exit 0 valid, 1 mismatch, 2 error).
    Verify(cmd::verify::Args),
    /// Run a local receiver that prints and verifies every webhook it gets.
    Listen(cmd::listen::Args),
    /// Run the webhook service: management API and delivery workers.
    Serve(cmd::serve::Args),
    /// Maintain a stopped service's database (rotate the main key).
    Admin(cmd::admin::Args),
    /// Measure the service end to end on loopback, every delivery verified.
    Bench(cmd::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Secret(args) => cmd::secret::run(args),
        Command::Sign(args) => cmd::sign::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Listen(args) => cmd::listen::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Admin(args) => cmd::admin::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("fullup: {err:#}");
            ExitCode::from(2)
        }
    }
}
