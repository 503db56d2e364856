//! A proxy named in the environment (`HTTP_PROXY` and friends) is never used for
//! deliveries: a proxy would see every payload and could reach what the guard refuses.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support_receiver::RecordingReceiver;
use crate::support_server::{Server, call, create_site_and_webhook};

#[tokio::test]
async fn deliveries_ignore_proxy_environment_variables() {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind proxy");
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let recorder = tokio::spawn(async move {
        while let Ok((_socket, _)) = proxy.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("fullup.db").display());
    let envs = [
        ("HTTP_PROXY", proxy_url.as_str()),
        ("http_proxy", proxy_url.as_str()),
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("https_proxy", proxy_url.as_str()),
        ("ALL_PROXY", proxy_url.as_str()),
        ("all_proxy", proxy_url.as_str()),
    ];
    let server = Server::start(&database_url, &[], &envs).await;
    let receiver = RecordingReceiver::start().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let site = create_site_and_webhook(&client, &server.base, &receiver).await;
    let event = call(
        &client,
        format!("{}/v1/sites/{site}/events", server.base),
        json!({"type": "form.submitted", "data": {"n": 1}}),
        202,
    )
    .await;
    let id = event["id"].as_str().expect("event id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !receiver.received().contains(&id) {
        assert!(Instant::now() < deadline, "the delivery never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.failures(), 0);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the proxy was never contacted"
    );
    recorder.abort();
}
