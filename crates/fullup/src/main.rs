//! The `fullup` command: thin glue over the workspace's libraries.
//!
//! Exit codes follow ripgrep: 0 ok, 1 "no" (a signature did not verify, the service
//! refused a request), 2 error.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

mod cmd;

/// Fullup webhooks: run the service (serve), manage it (site, webhook, event, delivery),
/// receive and check webhooks (listen, verify, sign, secret), measure it (bench).
#[derive(Debug, Parser)]
#[command(name = "fullup", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the webhook service: management API and delivery workers.
    Serve(cmd::serve::Args),
    /// Wait until a service is ready (answers /readyz), for scripts that just started it.
    WaitReady(cmd::wait_ready::Args),
    /// Create and list sites (tenants) on a running service.
    Site(cmd::site::Args),
    /// Create and list a site's webhooks.
    Webhook(cmd::webhook::Args),
    /// Send an event to a site.
    Event(cmd::event::Args),
    /// List deliveries, show their attempts, retry one.
    Delivery(cmd::delivery::Args),
    /// Run a local receiver that prints and verifies every webhook it gets.
    Listen(cmd::listen::Args),
    /// Check a fullup-signature against a body (exit 0 valid, 1 mismatch, 2 error).
    Verify(cmd::verify::Args),
    /// Print the fullup-signature of a body.
    Sign(cmd::sign::Args),
    /// Manage webhook secrets.
    Secret(cmd::secret::Args),
    /// Maintain a stopped service's database (rotate the main key).
    Admin(cmd::admin::Args),
    /// Measure the service end to end on loopback, every delivery verified.
    Bench(cmd::bench::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(cmd::completions::Args),
    /// Print the man page (roff), e.g. `fullup man > fullup.1`.
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::WaitReady(args) => cmd::wait_ready::run(args),
        Command::Site(args) => cmd::site::run(args),
        Command::Webhook(args) => cmd::webhook::run(args),
        Command::Event(args) => cmd::event::run(args),
        Command::Delivery(args) => cmd::delivery::run(args),
        Command::Listen(args) => cmd::listen::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Sign(args) => cmd::sign::run(args),
        Command::Secret(args) => cmd::secret::run(args),
        Command::Admin(args) => cmd::admin::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Completions(args) => cmd::completions::run(args, Cli::command()),
        Command::Man => cmd::completions::man(Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("fullup: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// 1 when the service refused the request (the answer is "no"), 2 for other errors.
fn exit_code(err: &anyhow::Error) -> u8 {
    let refused = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<fullup_client::Error>(),
            Some(fullup_client::Error::Api { .. })
        )
    });
    if refused { 1 } else { 2 }
}
