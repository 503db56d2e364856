//! Where subcommands get webhook secrets from: environment variables or files, never
//! argv (which other users can read in `ps` and which lands in shell history).
//!
//! Shared by `sign`, `verify` and `listen`. With neither flag the secret comes from
//! `FULLUP_SECRET`. Errors name the flag or variable to fix and never echo a secret.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use fullup_signature::Secret;
use zeroize::Zeroizing;

/// The variable read when neither `--secret-env` nor `--secret-file` is given.
pub const DEFAULT_SECRET_ENV: &str = "FULLUP_SECRET";

/// Secret source options; flatten into a subcommand's `Args`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecretArgs {
    /// Read a secret from environment variable VAR [default: FULLUP_SECRET].
    /// Repeatable: several secrets (a rotation's old and new) are all used, these first.
    #[arg(long = "secret-env", value_name = "VAR")]
    pub secret_env: Vec<String>,

    /// Read a secret from file PATH (one secret; a single trailing newline is
    /// ignored). Repeatable, like --secret-env.
    #[arg(long = "secret-file", value_name = "PATH", env = "FULLUP_SECRET_FILE")]
    pub secret_file: Vec<PathBuf>,
}

impl SecretArgs {
    /// Loads every secret: the `--secret-env` variables in order, then the
    /// `--secret-file` files in order; `FULLUP_SECRET` alone when neither flag is given.
    pub fn load_all(&self) -> anyhow::Result<Vec<Secret>> {
        if self.secret_env.is_empty() && self.secret_file.is_empty() {
            return Ok(vec![from_env(DEFAULT_SECRET_ENV)?]);
        }
        let from_vars = self.secret_env.iter().map(|var| from_env(var));
        let from_files = self.secret_file.iter().map(|path| from_file(path));
        from_vars.chain(from_files).collect()
    }
}

fn from_env(var: &str) -> anyhow::Result<Secret> {
    let value = match std::env::var(var) {
        Ok(value) => Zeroizing::new(value),
        Err(std::env::VarError::NotPresent) => bail!(
            "environment variable {var} is not set; export it, or choose the secret with \
             --secret-env VAR or --secret-file PATH"
        ),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("environment variable {var} is not valid UTF-8; fix its value")
        }
    };
    Secret::parse(&value).with_context(|| format!("environment variable {var}"))
}

fn from_file(path: &Path) -> anyhow::Result<Secret> {
    let shown = path.display();
    let bytes = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("--secret-file {shown}: cannot read it"))?,
    );
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow::anyhow!("--secret-file {shown}: the file is not valid UTF-8"))?;
    let line = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    Secret::parse(line).with_context(|| format!("--secret-file {shown}"))
}
