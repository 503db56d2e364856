//! The log output of `fullup serve`: human-readable on a terminal, one JSON object per
//! line elsewhere (files, pipes, log shippers), coloured only where colour is read.

use std::io::IsTerminal as _;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event, coloured on a terminal unless `NO_COLOR` is set.
    Pretty,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the
    /// event's fields, flattened.
    Json,
}

/// What `fullup serve --help` says about logging.
pub const HELP: &str = "\
Logging:
  Logs go to stderr: pretty on a terminal, JSON lines otherwise (--log-format).
  RUST_LOG chooses what is logged, as tracing's EnvFilter reads it (default: info):
    RUST_LOG=debug                          also each successful attempt and each probe
    RUST_LOG=info,fullup_server::api=warn   no line per API request
  NO_COLOR=1 turns colour off (it is off anyway when stderr is not a terminal).";

/// The format to use: the one asked for, else pretty on a terminal and JSON otherwise.
pub fn choose(asked: Option<LogFormat>) -> LogFormat {
    asked.unwrap_or_else(|| {
        if std::io::stderr().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        }
    })
}

/// Installs the global subscriber: `RUST_LOG` (default `info`) to stderr in `format`.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.with_ansi(colour()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// Colour only on a terminal, and not when `NO_COLOR` is set to anything but empty
/// (no-color.org).
fn colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}
