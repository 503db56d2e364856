//! The tower layer: verified bytes and `DeliveryInfo` reach the inner service, nothing else does.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use fullup_axum::{DeliveryInfo, VerifyLayer};
use http_body_util::{BodyExt as _, Full};
use tower::{Layer as _, ServiceExt as _, service_fn};

use crate::{SECRET, assert_error, body_only, config, json, signed, timestamped};

type Seen = Arc<Mutex<Vec<(Bytes, Option<DeliveryInfo>)>>>;

/// A plain tower service (no axum) that records what it was given.
fn recorder(
    seen: Seen,
) -> impl tower::Service<
    http::Request<Full<Bytes>>,
    Response = http::Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(move |request: http::Request<Full<Bytes>>| {
        let seen = Arc::clone(&seen);
        async move {
            let delivery = request.extensions().get::<DeliveryInfo>().cloned();
            let body = request.into_body().collect().await?.to_bytes();
            seen.lock().expect("not poisoned").push((body, delivery));
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("inner"))))
        }
    })
}

#[tokio::test]
async fn verified_bytes_and_info_reach_the_inner_service() {
    let seen = Seen::default();
    let service = VerifyLayer::new(config()).layer(recorder(Arc::clone(&seen)));
    let body: &'static [u8] = b"{ \"type\": \"order.paid\" }\n";
    let response = service
        .oneshot(timestamped(body, "msg_9", crate::now()))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let answer = response
        .into_body()
        .collect()
        .await
        .expect("in memory")
        .to_bytes();
    assert_eq!(answer, "inner");
    let seen = seen.lock().expect("not poisoned");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, body);
    let delivery = seen[0].1.as_ref().expect("the layer inserts DeliveryInfo");
    assert_eq!(
        (delivery.secret_index, delivery.event_id()),
        (0, Some("msg_9"))
    );
}

#[tokio::test]
async fn rejected_requests_never_reach_the_inner_service() {
    let seen = Seen::default();
    let service = VerifyLayer::new(body_only()).layer(recorder(Arc::clone(&seen)));
    let response = service
        .oneshot(signed(b"{}", "another_secret"))
        .await
        .expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("in memory").to_bytes();
    let answer = (
        parts.status,
        serde_json::from_slice(&bytes).expect("JSON error"),
    );
    assert_error(&answer, StatusCode::FORBIDDEN, "signature_mismatch");
    assert!(seen.lock().expect("not poisoned").is_empty());
}

#[tokio::test]
async fn layer_applies_its_body_limit() {
    let seen = Seen::default();
    let service =
        VerifyLayer::new(body_only().with_body_limit(4)).layer(recorder(Arc::clone(&seen)));
    let response = service
        .oneshot(signed(b"{\"a\":1}", SECRET))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(seen.lock().expect("not poisoned").is_empty());
}

#[tokio::test]
async fn layer_works_on_an_axum_router() {
    async fn handler(Extension(delivery): Extension<DeliveryInfo>, body: Bytes) -> String {
        format!("secret {} saw {} bytes", delivery.secret_index, body.len())
    }
    let app = axum::Router::new()
        .route("/hook", post(handler))
        .layer(VerifyLayer::new(body_only()));
    let response = app
        .clone()
        .oneshot(signed(b"{\"a\":1}", SECRET))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response
        .into_body()
        .collect()
        .await
        .expect("in memory")
        .to_bytes();
    assert_eq!(text, "secret 0 saw 7 bytes");
    let answer = json(
        app.oneshot(crate::post(&b"{}"[..], &[]))
            .await
            .expect("infallible"),
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "missing_signature");
}
