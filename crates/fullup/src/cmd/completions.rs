//! `fullup completions SHELL` and `fullup man`: generated from the command definitions
//! themselves (clap_complete, clap_mangen), so they never fall behind them.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;

/// Arguments of `fullup completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell, e.g. `fullup completions bash > /etc/bash_completion.d/fullup`.
    shell: clap_complete::Shell,
}

/// Prints the completion script of `command` for the shell.
pub fn run(args: Args, mut command: clap::Command) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "fullup", &mut script);
    write_stdout(&script)
}

/// Prints the man page of `command` (roff).
pub fn man(command: clap::Command) -> anyhow::Result<ExitCode> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .context("rendering the man page")?;
    write_stdout(&page)
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(err).context("writing to standard output")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}
