//! The ceilings a run is read against: the same envelopes, signed with both schemes,
//! sent straight to the same receiver with no service in between, through two clients.
//!
//! - The **matched ceiling** goes through the service's own delivery stack,
//!   `fullup_server::delivery::sender::Sender` with the default `DeliveryConfig` (the
//!   outbound guard, the pinned reqwest clients, both signatures computed per request,
//!   the answer read up to 4 KiB), at the concurrency the service reached in the run
//!   ([`Receiver::peak_in_flight`](super::receiver::Receiver::peak_in_flight), at least
//!   1): what the service's deliveries could reach were everything before the HTTP
//!   request free. Latency scenarios send through it at their rate.
//! - The **physical ceiling** goes through a plain hyper client with
//!   `--physical-connections` kept-alive connections (128): what the receiver and the
//!   loopback take on this machine, whatever the client.

use std::sync::Arc;

use anyhow::Context as _;
use axum::body::Bytes;
use fullup_server::delivery::DeliveryConfig;
use fullup_server::delivery::guard::{OutboundGuard, SystemLookup};
use fullup_server::delivery::sender::Sender;
use fullup_server::delivery::ssrf::NetworkPolicy;
use fullup_server::domain::clock::{Clock as _, SystemClock};
use fullup_server::domain::event_type::{EventFilter, EventType};
use fullup_server::domain::health::Health;
use fullup_server::domain::ids::{DeliveryId, EventId, SiteId, WebhookId};
use fullup_server::domain::webhook::{Secrets, Webhook};
use fullup_server::domain::webhook_url::WebhookUrl;
use fullup_server::store::ClaimedDelivery;
use fullup_signature::{Signer, standard};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use super::Bench;
use super::load::{Events, Pace, Requests};
use super::receiver::Expect;
use super::report::{Latency, Row, percent, ratio};

/// The ceilings of a closed-loop run, and the run's rate as a share of each.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ceilings {
    /// The most requests the service had in flight to the receiver at once (its
    /// connections); the matched ceiling ran at this concurrency, or 1 if it is 0.
    pub service_peak_in_flight: usize,
    /// Requests/s of the matched ceiling: the service's client at its concurrency.
    pub ceiling_requests_per_sec: f64,
    /// The run's rate over the matched ceiling.
    pub share_of_ceiling: f64,
    /// Requests/s of the physical ceiling: a plain hyper client.
    pub physical_ceiling_requests_per_sec: f64,
    /// Its kept-alive connections.
    pub physical_connections: usize,
    /// The run's rate over the physical ceiling.
    pub share_of_physical_ceiling: f64,
}

impl Ceilings {
    /// The table's rows.
    pub fn rows(&self, rows: &mut Vec<Row>) {
        rows.push((
            "service's peak in flight",
            format!(
                "{} requests (connections to the receiver at once)",
                self.service_peak_in_flight
            ),
        ));
        rows.push((
            "ceiling (service's client)",
            format!(
                "{:.0} requests/s, {} in flight",
                self.ceiling_requests_per_sec,
                self.service_peak_in_flight.max(1)
            ),
        ));
        rows.push(("share of ceiling", percent(self.share_of_ceiling)));
        rows.push((
            "physical ceiling (hyper)",
            format!(
                "{:.0} requests/s, {} connections",
                self.physical_ceiling_requests_per_sec, self.physical_connections
            ),
        ));
        rows.push((
            "share of physical ceiling",
            percent(self.share_of_physical_ceiling),
        ));
    }
}

impl Bench {
    /// Both ceilings of a closed-loop run whose figure was `ours` per second and whose
    /// service had at most `peak_in_flight` requests in flight: `requests` envelopes
    /// through each client.
    pub async fn ceilings(
        &mut self,
        ours: f64,
        requests: usize,
        peak_in_flight: usize,
    ) -> anyhow::Result<Ceilings> {
        let concurrency = peak_in_flight.max(1);
        let label = format!("ceiling: the service's client, {concurrency} in flight");
        let matched = self.matched_requests()?;
        let ceiling = self
            .ceiling_rate(&label, matched, requests, concurrency)
            .await?;
        let connections = self.plan.physical_connections;
        let label = format!("physical ceiling: hyper, {connections} connections");
        let lean = self.lean_requests()?;
        let physical = self
            .ceiling_rate(&label, lean, requests, connections)
            .await?;
        Ok(Ceilings {
            service_peak_in_flight: peak_in_flight,
            ceiling_requests_per_sec: ceiling,
            share_of_ceiling: ratio(ours, ceiling),
            physical_ceiling_requests_per_sec: physical,
            physical_connections: connections,
            share_of_physical_ceiling: ratio(ours, physical),
        })
    }

    /// The matched ceiling of an open-loop run: `requests` envelopes through the
    /// service's client at `rate`; their send-to-verified latency.
    pub async fn ceiling_latency(&mut self, requests: usize, rate: f64) -> anyhow::Result<Latency> {
        let expect = Expect::FanOut {
            events: requests,
            hooks: 1,
        };
        let make = self.matched_requests()?;
        let label = "ceiling: the service's client";
        let sent = self.send(label, make, expect, Pace::Open { rate }).await?;
        Ok(self.settle(&sent).await.latency())
    }

    /// `requests` of `make`, `concurrency` at a time; requests/s.
    async fn ceiling_rate(
        &mut self,
        label: &str,
        make: Requests,
        requests: usize,
        concurrency: usize,
    ) -> anyhow::Result<f64> {
        let expect = Expect::FanOut {
            events: requests.max(1),
            hooks: 1,
        };
        let pace = Pace::Closed { concurrency };
        Ok(self.send(label, make, expect, pace).await?.per_sec())
    }

    /// Envelopes to webhook 0 through the service's `Sender`, as one webhook's
    /// deliveries: each request builds its delivery (new ids) and the sender vets the
    /// URL, signs both schemes and reads the answer, as for every attempt of the service.
    fn matched_requests(&self) -> anyhow::Result<Requests> {
        // The bench reaches only its own receiver, wherever `--receiver-url` puts it; the
        // guard still judges every address, as the service's does.
        let policy = NetworkPolicy {
            allow: vec!["0.0.0.0/0".parse()?, "::/0".parse()?],
            ..NetworkPolicy::default()
        };
        let guard = OutboundGuard::new(policy, Arc::new(SystemLookup));
        let sender = Arc::new(
            Sender::new(&DeliveryConfig::default(), guard)
                .context("building the service's delivery client")?,
        );
        let now = SystemClock.now();
        let webhook = Webhook {
            id: WebhookId::new(now),
            site_id: SiteId::new(now),
            url: WebhookUrl::parse(&self.receiver.url(0))?,
            event_types: vec![EventFilter::All],
            description: String::new(),
            headers: Default::default(),
            health: Health::default(),
            paused: false,
            rate_limit: None,
            ordering: Default::default(),
            secrets: Ok(Secrets::new(self.receiver_secret.clone())),
            created_at: now,
            updated_at: now,
        };
        let events = Events::uniform(self.plan.data_bytes);
        let event_type = EventType::parse(Events::UNIFORM_TYPE)?;
        Ok(Requests::new(move |seq| {
            let now = SystemClock.now();
            let event_id = EventId::new(now);
            let delivery = ClaimedDelivery {
                delivery_id: DeliveryId::new(now),
                attempt_count: 0,
                interrupted: None,
                event_id,
                event_type: event_type.clone(),
                payload: events.envelope(seq, &event_id.to_string()),
                webhook: webhook.clone(),
            };
            let sender = sender.clone();
            Box::pin(async move {
                let result = sender.send(&delivery, 1, SystemClock.now()).await;
                anyhow::ensure!(
                    result.succeeded(),
                    "the receiver did not take the service client's request: {}",
                    result
                        .error_message
                        .unwrap_or_else(|| format!("status {:?}", result.status))
                );
                Ok(())
            })
        }))
    }

    /// Envelopes to webhook 0 through a plain hyper client (no timeouts, no guard, one
    /// pool), signed with both schemes as the service signs them.
    fn lean_requests(&self) -> anyhow::Result<Requests> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        let uri: hyper::Uri = self.receiver.url(0).parse().context("the receiver's URL")?;
        let signer = Signer::new(&self.receiver_secret);
        let events = Events::uniform(self.plan.data_bytes);
        Ok(Requests::new(move |seq| {
            let now = SystemClock.now();
            let id = EventId::new(now).to_string();
            let body = events.envelope(seq, &id);
            let timestamp = now.unix_secs();
            let request = hyper::Request::post(uri.clone())
                .header("content-type", "application/json")
                .header(
                    fullup_signature::SIGNATURE_HEADER,
                    signer.sign(body.as_bytes()).to_string(),
                )
                .header(
                    standard::SIGNATURE_HEADER,
                    signer.sign_standard(&id, timestamp, body.as_bytes()),
                )
                .header(standard::ID_HEADER, id)
                .header(standard::TIMESTAMP_HEADER, timestamp)
                .body(Full::new(Bytes::from(body)));
            let client = client.clone();
            Box::pin(async move {
                let response = client
                    .request(request?)
                    .await
                    .context("posting to the receiver")?;
                let status = response.status();
                response
                    .into_body()
                    .collect()
                    .await
                    .context("reading the receiver's answer")?;
                anyhow::ensure!(status.is_success(), "the receiver answered {status}");
                Ok(())
            })
        }))
    }
}
