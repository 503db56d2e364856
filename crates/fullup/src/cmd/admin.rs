//! `fullup admin`: maintenance of a stopped service's database: the main key here,
//! the admin token in [`super::admin_token`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fullup_server::config::DEFAULT_DATABASE_URL;
use fullup_server::crypto::{MainKey, default_key_file};
use fullup_server::rekey::rotate_main_key;

/// Environment variable holding the main key (base64 of 32 bytes); never a flag, since
/// argv is visible to every user of the machine.
pub const MAIN_KEY_ENV: &str = "FULLUP_MAIN_KEY";

/// The main key from `FULLUP_MAIN_KEY`, when set.
pub fn main_key_from_env() -> anyhow::Result<Option<MainKey>> {
    match std::env::var(MAIN_KEY_ENV) {
        Ok(text) => {
            Ok(Some(MainKey::from_base64(&text).with_context(|| {
                format!("{MAIN_KEY_ENV} is not usable")
            })?))
        }
        Err(_) => Ok(None),
    }
}

/// Arguments of `fullup admin`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Re-seal every webhook secret under a new main key (stop the service first).
    RotateMainKey(RotateArgs),
    /// Replace the stored admin token (the one generated on the first start) with a new
    /// one, written to --admin-token-file or shown on a terminal; restart to end the old.
    RotateAdminToken(super::admin_token::RotateAdminTokenArgs),
}

#[derive(Debug, clap::Args)]
struct RotateArgs {
    /// Database URL: `sqlite://PATH` or `postgres://USER@HOST/DATABASE`.
    #[arg(long, env = "FULLUP_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    /// The current key file (default `fullup.key` beside the database), unless
    /// `FULLUP_MAIN_KEY` holds the current key.
    #[arg(long, env = "FULLUP_MAIN_KEY_FILE", value_name = "PATH")]
    main_key_file: Option<PathBuf>,
    /// Where to write the new key (default: replace the current key file); must not
    /// exist yet.
    #[arg(long, value_name = "PATH")]
    new_key_file: Option<PathBuf>,
}

/// Runs an admin subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        AdminCommand::RotateMainKey(args) => rotate(args),
        AdminCommand::RotateAdminToken(args) => super::admin_token::run(args),
    }
}

fn rotate(args: RotateArgs) -> anyhow::Result<ExitCode> {
    if let Some(target) = &args.new_key_file {
        anyhow::ensure!(
            !target.exists(),
            "--new-key-file {} exists: it may hold a key some database needs; \
             choose a new path, or omit --new-key-file to replace the current key file",
            target.display()
        );
    }
    let current_file = args
        .main_key_file
        .or_else(|| default_key_file(&args.database_url));
    let (old, target) = match main_key_from_env()? {
        Some(key) => {
            let target = args.new_key_file.context(
                "--new-key-file is required when the current key comes from FULLUP_MAIN_KEY",
            )?;
            (key, target)
        }
        None => {
            let file =
                current_file.context("no main key: set FULLUP_MAIN_KEY or --main-key-file")?;
            let key = MainKey::read_file(&file)?;
            (key, args.new_key_file.unwrap_or(file))
        }
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let done = runtime.block_on(rotate_main_key(&args.database_url, old, &target))?;
    println!(
        "Re-sealed the secrets of {} webhook(s) under a new main key, now in {}.",
        done.webhooks,
        done.key_file.display()
    );
    println!("Back it up now; backups taken before this rotation still need the old key.");
    if std::env::var_os(MAIN_KEY_ENV).is_some() {
        println!("Set {MAIN_KEY_ENV} to that file's content before starting the service again.");
    }
    Ok(ExitCode::SUCCESS)
}
