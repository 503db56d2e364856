//! `fullup admin rotate-admin-token`: replaces the admin token stored in the database
//! (the one `fullup serve` generated on its first start) with a new one.
//!
//! The new token goes to a new file (mode 0600) or, when stdout is a terminal, to the
//! screen; never into a log. A token given in `FULLUP_ADMIN_TOKEN` is not stored, so
//! there is nothing here to rotate: change the variable and restart instead.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fullup_server::config::{DEFAULT_DATABASE_URL, GeneratedAdminToken};
use fullup_server::crypto::{MainKey, default_key_file};

use super::admin::main_key_from_env;

/// Environment variable of a configured admin token, which this command cannot rotate.
const ADMIN_TOKEN_ENV: &str = "FULLUP_ADMIN_TOKEN";

/// Arguments of `fullup admin rotate-admin-token`.
#[derive(Debug, clap::Args)]
pub struct RotateAdminTokenArgs {
    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST/DATABASE`.
    #[arg(long, env = "FULLUP_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    /// The main key file (default `fullup.key` beside the database), unless
    /// `FULLUP_MAIN_KEY` holds the key.
    #[arg(long, env = "FULLUP_MAIN_KEY_FILE", value_name = "PATH")]
    main_key_file: Option<PathBuf>,
    /// Where to write the new token: a new file, mode 0600. Without it, the token is
    /// shown when stdout is a terminal; otherwise nothing is changed.
    #[arg(long, env = "FULLUP_ADMIN_TOKEN_FILE", value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
}

/// Replaces the stored admin token; the old one stops working when the service
/// restarts (on PostgreSQL: every node).
pub fn run(args: RotateAdminTokenArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        std::env::var_os(ADMIN_TOKEN_ENV).is_none(),
        "{ADMIN_TOKEN_ENV} is set: a service given its admin token in {ADMIN_TOKEN_ENV} uses that one, \
         not the stored one; to rotate it, set a new value (`fullup secret new` prints one) on every \
         node and restart them (unset {ADMIN_TOKEN_ENV} here to rotate the stored token)"
    );
    let to = match args.admin_token_file.clone() {
        Some(path) => GeneratedAdminToken::File(path),
        None if std::io::stdout().is_terminal() => GeneratedAdminToken::Returned,
        None => GeneratedAdminToken::Refused,
    };
    let key = match main_key_from_env()? {
        Some(key) => key,
        None => {
            let file = args
                .main_key_file
                .or_else(|| default_key_file(&args.database_url))
                .context("no main key: set FULLUP_MAIN_KEY or --main-key-file")?;
            MainKey::read_file(&file)?
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let token = runtime.block_on(async {
        let store = fullup_server::store::open(&args.database_url, key.clone())
            .await
            .context("opening the database (stop the service first on SQLite)")?;
        let rotated = fullup_server::app::rotate_admin_token(&*store, &key, &to).await;
        store.close().await;
        rotated
    })?;
    match &args.admin_token_file {
        Some(path) => println!(
            "Replaced the admin token; the new one is in {} (mode 0600).",
            path.display()
        ),
        None => {
            println!("Replaced the admin token (shown once; only its hash is stored):");
            println!("  export {ADMIN_TOKEN_ENV}={token}");
        }
    }
    println!(
        "Restart the service (every node) to end the old token; until then running nodes accept it."
    );
    Ok(ExitCode::SUCCESS)
}
