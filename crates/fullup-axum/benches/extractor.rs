//! In-process cost of verification: one request through an axum `Router`, without
//! sockets, for the same 1 KiB body `scripts/bench-receivers.sh` sends over loopback.
//!
//! Benchmark ids are `receiver/<mode>`: `plain` (handler taking `Bytes`), `bytes`
//! (`Verified<Bytes>`), `json` (`Verified<Json<Value>>`) and `layer` (`VerifyLayer` in
//! front of the plain handler). The difference to `plain` is what verification adds.

use std::hint::black_box;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use criterion::{Criterion, criterion_main};
use fullup_axum::VerifyConfig;
use fullup_signature::{Secret, sign};
use tower::ServiceExt as _;

#[path = "../examples/bench_server/receivers.rs"]
mod receivers;

const BODY: &[u8] = include_bytes!("../../../scripts/bench/body-1k.json");

fn receiver(c: &mut Criterion) {
    let secret = Secret::parse("your_shared_secret_key").expect("valid secret");
    let signature = sign(&secret, BODY).to_hex();
    // The script sends body-only signatures: this measures `fullup-signature` alone.
    let config = VerifyConfig::new([secret])
        .expect("one secret")
        .allow_untimestamped();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let request = || {
        Request::post("/webhook-endpoint")
            .header("content-type", "application/json")
            .header("fullup-signature", signature.as_str())
            .body(Body::from(Bytes::from_static(BODY)))
            .expect("valid request")
    };
    let mut group = c.benchmark_group("receiver");
    for mode in receivers::MODES {
        let router = receivers::router(mode, config.clone()).expect("a known mode");
        group.bench_function(mode, |b| {
            b.iter(|| {
                let response = runtime
                    .block_on(router.clone().oneshot(black_box(request())))
                    .expect("infallible");
                assert_eq!(response.status(), StatusCode::OK);
            })
        });
    }
    group.finish();
}

/// `criterion_group!` defines an undocumented `pub fn`; a private module keeps it internal.
mod group {
    criterion::criterion_group!(benches, super::receiver);
}
criterion_main!(group::benches);
