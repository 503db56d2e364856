//! The load: setting up a site and its webhooks, ingesting events with N concurrent
//! clients, and the ceiling run that posts straight to the receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fullup_signature::{Secret, Signer};
use serde_json::{Value, json};

use super::receiver::Receiver;
use super::service::Service;

/// An ingest run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Ingested {
    /// When the first request was sent.
    pub started: Instant,
    /// Until the last answer.
    pub elapsed: Duration,
    /// Events answered 202.
    pub accepted: usize,
}

/// HTTP clients aimed at the service.
#[derive(Debug, Clone)]
pub struct Load {
    client: reqwest::Client,
    base: String,
    token: String,
    concurrency: usize,
}

/// An event's `data`: a JSON object of about `bytes` bytes, already canonical.
pub fn event_data(bytes: usize) -> String {
    let skeleton = r#"{"form":"contact","message":""}"#;
    let fill = "x".repeat(bytes.saturating_sub(skeleton.len()));
    format!(r#"{{"form":"contact","message":"{fill}"}}"#)
}

impl Load {
    /// Clients for `service` with `concurrency` requests in flight.
    pub fn new(service: &Service, concurrency: usize) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder().no_proxy().build()?,
            base: service.base.clone(),
            token: service.admin_token.clone(),
            concurrency,
        })
    }

    async fn post(&self, path: &str, body: Value, expected: u16) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status == expected,
            "POST {path} answered {status}: {answer}"
        );
        Ok(answer)
    }

    /// Creates a site with `fanout` webhooks to `receiver`, all keyed with `secret`.
    pub async fn setup(
        &self,
        receiver: &Receiver,
        secret: &Secret,
        fanout: usize,
    ) -> anyhow::Result<String> {
        let site = self
            .post("/v1/sites", json!({"name": "bench"}), 201)
            .await?;
        let site = site["id"].as_str().context("site id")?.to_owned();
        for index in 0..fanout {
            let body = json!({"url": receiver.url(index), "event_types": ["*"], "secret": secret.expose()});
            self.post(&format!("/v1/sites/{site}/webhooks"), body, 201)
                .await?;
        }
        Ok(site)
    }

    /// Ingests `events` events with `data`, `concurrency` at a time.
    pub async fn ingest(&self, site: &str, data: &str, events: usize) -> anyhow::Result<Ingested> {
        let body = format!(r#"{{"type":"form.submitted","data":{data}}}"#);
        let url = format!("{}/v1/sites/{site}/events", self.base);
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.concurrency {
            let (client, url, body, token, next) = (
                self.client.clone(),
                url.clone(),
                body.clone(),
                self.token.clone(),
                next.clone(),
            );
            workers.spawn(async move {
                let mut accepted = 0usize;
                while next.fetch_add(1, Ordering::Relaxed) < events {
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await?;
                    let status = response.status().as_u16();
                    anyhow::ensure!(
                        status == 202,
                        "ingest answered {status}: {}",
                        response.text().await.unwrap_or_default()
                    );
                    accepted += 1;
                }
                Ok::<_, anyhow::Error>(accepted)
            });
        }
        let mut accepted = 0;
        while let Some(done) = workers.join_next().await {
            accepted += done.context("an ingest client panicked")??;
        }
        Ok(Ingested {
            started,
            elapsed: started.elapsed(),
            accepted,
        })
    }

    /// Posts `requests` signed envelopes straight to the receiver with the same client
    /// and concurrency; returns requests/s.
    pub async fn ceiling(
        &self,
        receiver: &Receiver,
        secret: &Secret,
        data: &str,
        requests: usize,
    ) -> anyhow::Result<f64> {
        let signer = Arc::new(Signer::new(secret));
        let data: Arc<str> = data.into();
        let url: Arc<str> = receiver.url(0).into();
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.concurrency {
            let (client, signer, data, url, next) = (
                self.client.clone(),
                signer.clone(),
                data.clone(),
                url.clone(),
                next.clone(),
            );
            workers.spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= requests {
                        return Ok::<_, anyhow::Error>(());
                    }
                    let id = format!("ceiling_{n}");
                    let body = format!(
                        r#"{{"id":"{id}","type":"form.submitted","created_at":"2026-01-01T00:00:00.000Z","data":{data}}}"#
                    );
                    let timestamp = unix_now();
                    let response = client
                        .post(&*url)
                        .header("content-type", "application/json")
                        .header("fullup-signature", signer.sign(body.as_bytes()).to_string())
                        .header("fullup-event-id", &id)
                        .header("webhook-id", &id)
                        .header("webhook-timestamp", timestamp.to_string())
                        .header("webhook-signature", signer.sign_standard(&id, timestamp, body.as_bytes()))
                        .body(body)
                        .send()
                        .await?;
                    anyhow::ensure!(response.status().is_success(), "the receiver answered {}", response.status());
                }
            });
        }
        while let Some(done) = workers.join_next().await {
            done.context("a ceiling client panicked")??;
        }
        Ok(requests as f64 / started.elapsed().as_secs_f64())
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}
