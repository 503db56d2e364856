//! `fullup verify --signature HEX [FILE|-]`: check a `fullup-signature` value against a
//! body, with the exit codes scripts expect: 0 valid, 1 mismatch, 2 error.
//!
//! Several `--secret-env`/`--secret-file` flags check a body during a secret rotation;
//! the output says which secret matched.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fullup_signature::{Verifier, VerifyError};

use super::secret_args::SecretArgs;
use super::sign::{print_line, read_body};

/// Arguments of `fullup verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The received `fullup-signature` header value (64 hex digits).
    #[arg(long, value_name = "HEX")]
    pub signature: String,

    /// The body exactly as received; `-` or nothing reads standard input.
    #[arg(value_name = "FILE|-")]
    pub input: Option<PathBuf>,

    #[command(flatten)]
    pub secret: SecretArgs,
}

/// Verifies; prints `valid (secret #N)` (N from 1, in flag order) on success, a one-line reason on mismatch.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let verifier = Verifier::new(args.secret.load_all()?).context("loading secrets")?;
    let body = read_body(args.input.as_deref())?;
    match verifier.verify(Some(&args.signature), &body) {
        Ok(verified) => {
            // Numbered from 1, as `fullup listen` numbers them (`verified with secret #1`).
            print_line(&format!("valid (secret #{})", verified.secret_index + 1))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(VerifyError::Mismatch) => {
            eprintln!("fullup: {}", VerifyError::Mismatch);
            Ok(ExitCode::from(1))
        }
        Err(err) => Err(err).context("--signature"),
    }
}
