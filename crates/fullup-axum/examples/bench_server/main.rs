//! The Rust side of `scripts/bench-receivers.sh`: one receiver per measured mode.
//!
//! `bench_server <plain|bytes|json|layer> [port]` serves POST /webhook-endpoint (see
//! `receivers.rs`) with the seed document's secret and prints
//! `listening on http://ADDR/webhook-endpoint`.

mod receivers;

use fullup_axum::VerifyConfig;
use fullup_signature::Secret;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let port = args.next().unwrap_or_else(|| "0".to_owned());
    // scripts/bench-receivers.sh sends body-only signatures, as the seed receivers verify.
    let config =
        VerifyConfig::new([Secret::parse("your_shared_secret_key")?])?.allow_untimestamped();
    let app = receivers::router(&mode, config).ok_or_else(|| {
        format!(
            "unknown mode {mode:?}: use one of {}",
            receivers::MODES.join(", ")
        )
    })?;
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!(
        "listening on http://{}/webhook-endpoint",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
