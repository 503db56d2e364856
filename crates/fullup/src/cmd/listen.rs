//! `fullup listen`: a local receiver that shows every webhook it gets and why it did
//! or did not verify, and can relay verified ones to the app being developed.
//!
//! The first line on stdout is the bound address (`listening on http://ADDR/PATH`, or
//! `{"listening":"http://ADDR/PATH"}` with `--json`), so `--port 0` is usable from scripts.

mod report;
mod server;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context as _;
use fullup_axum::VerifyConfig;
use http::StatusCode;

use super::secret_args::SecretArgs;

/// Arguments of `fullup listen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Port to listen on; 0 picks a free one (the first output line names it).
    #[arg(long, env = "FULLUP_LISTEN_PORT", default_value_t = 3000)]
    port: u16,

    /// Address to listen on; keep the loopback default unless the sender is remote.
    #[arg(long, env = "FULLUP_LISTEN_HOST", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,

    /// Path receiving the webhooks; requests elsewhere are shown and answered 404.
    #[arg(long, env = "FULLUP_LISTEN_PATH", default_value = "/webhook-endpoint", value_parser = parse_path)]
    path: String,

    /// Relay verified requests unchanged (headers and bytes) to this URL and answer
    /// with its answer.
    #[arg(long, env = "FULLUP_LISTEN_FORWARD_TO", value_name = "URL")]
    forward_to: Option<reqwest::Url>,

    /// Answer verified requests with this status instead, to simulate failures.
    #[arg(long, env = "FULLUP_LISTEN_STATUS", value_name = "CODE", value_parser = parse_status)]
    status: Option<StatusCode>,

    /// Print one JSON object per line instead of readable blocks.
    #[arg(long, env = "FULLUP_LISTEN_JSON")]
    json: bool,

    /// Accept deliveries signed only with fullup-signature, without the timestamped
    /// webhook-* headers: for a sender that signs only the body. Such deliveries can be
    /// replayed by anyone who captured one; Fullup always sends the webhook-* headers.
    #[arg(long, env = "FULLUP_LISTEN_ALLOW_UNTIMESTAMPED")]
    allow_untimestamped: bool,

    #[command(flatten)]
    secrets: SecretArgs,
}

/// Runs the receiver until Ctrl-C (or until its output is closed).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config =
        VerifyConfig::new(args.secrets.load_all()?)?.require_timestamped(!args.allow_untimestamped);
    let settings = server::Settings {
        config,
        path: args.path,
        forward_to: args.forward_to,
        status: args.status,
        json: args.json,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let address = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}; pick another --port"))?;
        let url = format!("http://{}{}", listener.local_addr()?, settings.path);
        let first_line = match settings.json {
            true => serde_json::json!({ "listening": url }).to_string(),
            false => format!("listening on {url}"),
        };
        let mut out = std::io::stdout();
        // The bound port must reach scripts before the first request does.
        writeln!(out, "{first_line}")
            .and_then(|()| out.flush())
            .context("cannot write to stdout")?;
        server::serve(listener, settings, Box::new(out)).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn parse_path(path: &str) -> Result<String, String> {
    match path.starts_with('/') {
        true => Ok(path.to_owned()),
        false => Err(format!("the path must start with '/', e.g. /{path}")),
    }
}

fn parse_status(code: &str) -> Result<StatusCode, String> {
    code.parse::<u16>()
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| format!("{code:?} is not an HTTP status code (100-999)"))
}
