//! The seed document's webhook receiver, in Rust, done right.
//!
//! Where the seed's Express and Flask examples go wrong, this one does not:
//! it verifies the exact bytes received (Express verified `JSON.stringify(req.body)`,
//! which fails on any body the sender did not serialize like V8), compares in constant
//! time (Express used `===`), answers 400 rather than crashing with a 500 when the header
//! is missing (Flask), bounds the body size, reads the secret from the environment instead
//! of the source code, and parses the JSON only after it verified.
//!
//! ```text
//! FULLUP_SECRET=your_shared_secret_key cargo run -p fullup-axum --example receiver
//! body='{"type":"ping"}'
//! curl -i localhost:3000/webhook-endpoint -H 'content-type: application/json' \
//!   -H "fullup-signature: $(printf %s "$body" | openssl dgst -sha256 -hmac your_shared_secret_key -r | cut -d' ' -f1)" \
//!   --data-raw "$body"
//! ```

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use fullup_axum::{Verified, VerifyConfig};
use fullup_signature::Secret;
use serde_json::Value;

/// Runs only on verified deliveries; rejections were already answered with a JSON error.
async fn webhook(
    Verified {
        body: Json(event),
        delivery,
    }: Verified<Json<Value>>,
) -> (StatusCode, &'static str) {
    // Log what identifies the event, never the payload itself: it may hold personal data.
    tracing::info!(
        event_type = %event["type"],
        event_id = delivery.event_id(),
        secret_index = delivery.secret_index,
        "verified webhook"
    );
    // Deliveries are retried until answered 2xx: deduplicate on `delivery.event_id()`
    // (Standard Webhooks `webhook-id`) before doing anything that must happen once.
    (StatusCode::OK, "Webhook processed successfully.")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    // A comma-separated list accepts the old and the new secret during a rotation.
    let secrets = std::env::var("FULLUP_SECRET")
        .map_err(|_| "set FULLUP_SECRET to the webhook's secret (never hard-code it)")?
        .split(',')
        .map(Secret::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let config = VerifyConfig::new(secrets)?;
    let app = Router::new()
        .route("/webhook-endpoint", post(webhook))
        .with_state(config);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!(
        "listening on http://{}/webhook-endpoint",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
