//! The load: the requests a run sends (events to the service, or, for the ceilings, the
//! same envelopes straight to the receiver: see `ceiling.rs`) and the two ways of
//! sending them: as fast as N clients can (closed loop) or at a fixed rate whatever the
//! answers take (open loop).
//!
//! Event number `seq` carries `"seq":N` as the first field of its data, which is how the
//! receiver matches each delivery to the moment its event was sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fullup_client::{Client, NewEvent};
use serde_json::value::RawValue;

/// Open-loop runs keep at most this many requests in flight; past it they slow down
/// (which shows as an achieved rate below the one asked for) rather than open
/// connections without bound against a service that stopped answering.
const MAX_IN_FLIGHT: usize = 1024;

/// Sending one request and checking its answer.
pub type Sending = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// The requests of a run: request number `seq`, built (its body and headers ready) when
/// called and sent when awaited, failing unless the answer is the one it wants.
#[derive(Clone)]
pub struct Requests(Arc<dyn Fn(usize) -> Sending + Send + Sync>);

impl Requests {
    /// Requests made by `make`.
    pub fn new(make: impl Fn(usize) -> Sending + Send + Sync + 'static) -> Self {
        Self(Arc::new(make))
    }
}

/// The events of a run: their data and types.
#[derive(Debug, Clone)]
pub struct Events {
    fill: Arc<str>,
    types: Arc<[String]>,
}

impl Events {
    /// Events with about `data_bytes` of data each; event `seq` has type
    /// `types[seq % types.len()]`.
    pub fn new(data_bytes: usize, types: Vec<String>) -> Self {
        let skeleton = r#"{"seq":1234567,"form":"contact","message":""}"#;
        Self {
            fill: "x".repeat(data_bytes.saturating_sub(skeleton.len())).into(),
            types: types.into(),
        }
    }

    /// The type of [`Self::uniform`] events.
    pub const UNIFORM_TYPE: &str = "form.submitted";

    /// Events of the one type [`Self::UNIFORM_TYPE`].
    pub fn uniform(data_bytes: usize) -> Self {
        Self::new(data_bytes, vec![Self::UNIFORM_TYPE.to_owned()])
    }

    fn event_type(&self, seq: usize) -> &str {
        self.types
            .get(seq % self.types.len().max(1))
            .map_or(Self::UNIFORM_TYPE, String::as_str)
    }

    /// Event `seq`'s data, canonical JSON.
    fn data(&self, seq: usize) -> String {
        format!(
            r#"{{"seq":{seq},"form":"contact","message":"{}"}}"#,
            self.fill
        )
    }

    /// Event `seq`'s envelope as the service delivers it (`domain::envelope`: id,
    /// type, creation time, data), with event id `id`.
    pub fn envelope(&self, seq: usize, id: &str) -> String {
        format!(
            r#"{{"id":"{id}","type":"{}","created_at":"2026-01-01T00:00:00.000Z","data":{}}}"#,
            self.event_type(seq),
            self.data(seq)
        )
    }

    /// Requests ingesting event `seq` into `site`, each wanting a 202 (after the commit).
    pub fn ingest(&self, api: &Client, site: &str) -> Requests {
        let (events, api, site) = (self.clone(), api.clone(), Arc::<str>::from(site));
        Requests::new(move |seq| {
            let (api, site) = (api.clone(), site.clone());
            let data = RawValue::from_string(events.data(seq));
            let event_type = events.event_type(seq).to_owned();
            Box::pin(async move {
                let event = NewEvent::from_raw(event_type, data?);
                match api.create_event(&site, &event).await {
                    Ok(_) => Ok(()),
                    Err(err) if err.status() == Some(reqwest::StatusCode::TOO_MANY_REQUESTS) => {
                        anyhow::bail!(
                            "ingest answered 429 (rate limited): run the service with --ingest-rate-limit 0 or a limit above the bench's rate; {err}"
                        )
                    }
                    Err(err) => {
                        Err(anyhow::Error::new(err).context("sending an event to the service"))
                    }
                }
            })
        })
    }
}

/// What a load run did.
#[derive(Debug)]
pub struct Sent {
    /// When the first request was about to be sent.
    pub started: Instant,
    /// From then until the last answer.
    pub elapsed: Duration,
    /// Requests answered as they want (all of them, or the run fails).
    pub answered: usize,
    /// Per request, when it was about to be sent, in ns since the epoch.
    pub sent_at: Vec<u64>,
}

impl Sent {
    /// Requests per second from the first send to the last answer.
    pub fn per_sec(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64()
    }

    /// The rate requests were sent at, from the first send to the last.
    pub fn send_rate(&self) -> f64 {
        let first = self.sent_at.iter().copied().min().unwrap_or(0);
        let last = self.sent_at.iter().copied().max().unwrap_or(0);
        let span = Duration::from_nanos(last.saturating_sub(first)).as_secs_f64();
        if span > 0.0 {
            (self.sent_at.len() - 1) as f64 / span
        } else {
            0.0
        }
    }
}

/// How a run sends its requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// `concurrency` clients, each sending its next request when the previous one is
    /// answered: as fast as the other side goes.
    Closed {
        /// Clients.
        concurrency: usize,
    },
    /// Request `i` at `start + i / rate`, whether or not earlier ones were answered.
    Open {
        /// Requests per second.
        rate: f64,
    },
}

/// Requests `0..requests` to send, each timed against a shared epoch.
#[derive(Clone)]
pub struct Load {
    requests: Requests,
    epoch: Instant,
    sent_at: Arc<[AtomicU64]>,
    answered: Arc<AtomicUsize>,
}

impl Load {
    /// `count` of `requests`; send times count from `epoch`.
    pub fn new(requests: Requests, epoch: Instant, count: usize) -> Self {
        Self {
            requests,
            epoch,
            sent_at: (0..count).map(|_| AtomicU64::new(0)).collect(),
            answered: Arc::default(),
        }
    }

    /// A function giving the requests answered so far, for a progress bar.
    pub fn answered_counter(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let answered = self.answered.clone();
        move || answered.load(Ordering::Relaxed)
    }

    /// Sends every request at `pace`; fails on the first request that fails.
    pub async fn run(self, pace: Pace) -> anyhow::Result<Sent> {
        let started = Instant::now();
        match pace {
            Pace::Closed { concurrency } => self.closed_loop(concurrency).await?,
            Pace::Open { rate } => self.open_loop(started, rate).await?,
        }
        Ok(Sent {
            started,
            elapsed: started.elapsed(),
            answered: self.answered.load(Ordering::Relaxed),
            sent_at: self
                .sent_at
                .iter()
                .map(|t| t.load(Ordering::Relaxed))
                .collect(),
        })
    }

    async fn fire(&self, seq: usize) -> anyhow::Result<()> {
        let sending = (self.requests.0)(seq);
        self.sent_at[seq].store(nanos_since(self.epoch), Ordering::Relaxed);
        sending.await?;
        self.answered.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn closed_loop(&self, concurrency: usize) -> anyhow::Result<()> {
        let requests = self.sent_at.len();
        let next = Arc::new(AtomicUsize::new(0));
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (load, next) = (self.clone(), next.clone());
            clients.spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= requests {
                        return Ok::<_, anyhow::Error>(());
                    }
                    load.fire(seq).await?;
                }
            });
        }
        while let Some(done) = clients.join_next().await {
            done.context("a load client panicked")??;
        }
        Ok(())
    }

    async fn open_loop(&self, started: Instant, rate: f64) -> anyhow::Result<()> {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let start = tokio::time::Instant::from_std(started);
        let mut in_flight = tokio::task::JoinSet::new();
        for seq in 0..self.sent_at.len() {
            tokio::time::sleep_until(start + Duration::from_secs_f64(seq as f64 / rate)).await;
            let slot = slots.clone().acquire_owned().await?;
            let load = self.clone();
            in_flight.spawn(async move {
                let result = load.fire(seq).await;
                drop(slot);
                result
            });
            while let Some(done) = in_flight.try_join_next() {
                done.context("a load request panicked")??;
            }
        }
        while let Some(done) = in_flight.join_next().await {
            done.context("a load request panicked")??;
        }
        Ok(())
    }
}

/// `now` in ns since `epoch`, at least 1 (0 means "never").
pub fn nanos_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .max(1)
}
