//! The receivers measured by `scripts/bench-receivers.sh` (over loopback) and by the
//! criterion bench `benches/extractor.rs` (in process), defined once for both.

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use fullup_axum::{Verified, VerifyConfig, VerifyLayer};

/// The benchmark modes, in the order the table reports them.
pub const MODES: [&str; 4] = ["plain", "bytes", "json", "layer"];

async fn plain(_body: Bytes) -> StatusCode {
    StatusCode::OK
}

async fn verified_bytes(_body: Verified<Bytes>) -> StatusCode {
    StatusCode::OK
}

async fn verified_json(_body: Verified<Json<serde_json::Value>>) -> StatusCode {
    StatusCode::OK
}

/// POST /webhook-endpoint answering 200, verified (or not) as `mode` says:
/// `plain` reads the body as `Bytes`, `bytes` takes `Verified<Bytes>`, `json` takes
/// `Verified<Json<Value>>`, `layer` puts `VerifyLayer` in front of `plain`.
pub fn router(mode: &str, config: VerifyConfig) -> Option<Router> {
    let route = match mode {
        "plain" | "layer" => post(plain),
        "bytes" => post(verified_bytes),
        "json" => post(verified_json),
        _ => return None,
    };
    let router = Router::new().route("/webhook-endpoint", route);
    let router = match mode {
        "layer" => router.layer(VerifyLayer::new(config.clone())),
        _ => router,
    };
    Some(router.with_state(config))
}
