//! `fullup sign [FILE|-]`: print the `fullup-signature` header value for a body, once
//! per secret given (a line each, in flag order), such as the old and the new one of a
//! rotation.
//!
//! Also home of the body-input and stdout helpers that `verify` and `secret` share.

use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use fullup_signature::sign;

use super::secret_args::SecretArgs;

/// Arguments of `fullup sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The body to sign, byte for byte; `-` or nothing reads standard input.
    #[arg(value_name = "FILE|-")]
    pub input: Option<PathBuf>,

    #[command(flatten)]
    pub secret: SecretArgs,
}

/// Prints the lowercase hex HMAC-SHA256 of the body with each secret, a line each.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let secrets = args.secret.load_all()?;
    let body = read_body(args.input.as_deref())?;
    for secret in &secrets {
        print_line(&sign(secret, &body).to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the whole body from `input`, or from standard input for `None` or `-`.
pub(crate) fn read_body(input: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match input {
        Some(path) if path != Path::new("-") => {
            std::fs::read(path).with_context(|| format!("reading the body from {}", path.display()))
        }
        _ => {
            let mut body = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut body)
                .context("reading the body from standard input")?;
            Ok(body)
        }
    }
}

/// Writes one line to standard output; a closed pipe (`| head`) is not an error.
pub(crate) fn print_line(line: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            Err(err).context("writing to standard output")
        }
        _ => Ok(()),
    }
}
