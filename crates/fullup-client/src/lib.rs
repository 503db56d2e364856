//! A typed async client of the [Fullup](https://github.com/fullup/fullup) webhook
//! service's management API: create sites and webhooks, send events, follow their
//! deliveries and attempts, retry.
//!
//! ```no_run
//! # async fn send() -> Result<(), fullup_client::Error> {
//! use fullup_client::{Client, NewEvent};
//!
//! let token = std::env::var("FULLUP_ADMIN_TOKEN").unwrap_or_default();
//! let client = Client::new("http://127.0.0.1:8080", &token)?;
//! let event = NewEvent::new("form.submitted", &serde_json::json!({"name": "Ada"}))?;
//! let id = client.create_event("site_01J…", &event.idempotency_key("form-42")).await?;
//! # Ok(()) }
//! ```
//!
//! Lists are [`Stream`]s that fetch the next page as they are read
//! ([`Client::deliveries`], ...). Errors are an [`Error`]: the service's refusal with its
//! status and code, or a transport or decoding failure. The token (the admin token, or a
//! site's API key) is sent as a bearer token and never shown by `Debug`.

mod error;
mod models;
mod wire;

/// Compiles the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

use futures::stream::{self, BoxStream, Stream, StreamExt as _, TryStreamExt as _};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use wire::{
    ApiKeyWithToken, CreatedEvent, Page, RotateAnswer, SecretBody, TestAnswer, WebhookWithSecret,
    checked_body, execute, parse_secret, transport,
};

pub use error::Error;
pub use fullup_signature::Secret;
pub use models::{
    ApiKey, ApiKeyScope, Attempt, CreatedApiKey, CreatedWebhook, CustomHeaders, Delivery,
    DeliveryFilter, DeliveryState, Event, EventSummary, NewEvent, NewWebhook, RotatedSecret, Site,
    Webhook, WebhookUpdate,
};
/// The HTTP client this crate is built on, for [`Client::with_http_client`] and
/// [`Error::Api`]'s status.
pub use reqwest;

/// Largest answer the client reads: a page of 250 items, or an event with its payload,
/// is far smaller; anything bigger is not the API talking.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Items a list call asks for per page unless [`Client::with_page_size`] says otherwise
/// (the service's largest page, for the fewest round trips).
pub const DEFAULT_PAGE_SIZE: u32 = 250;

/// How long [`Client::new`]'s calls wait for an answer: above the service's own API
/// timeout (30 s by default), after which it answers 503 itself.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long [`Client::new`] waits for a connection.
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The header that makes a retried event send safe.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// A client of one service's management API. Cheap to clone: clones share one
/// connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The service's base URL, ending in `/`.
    base: Url,
    /// `Bearer TOKEN`, marked sensitive; none for [`Client::without_token`].
    authorization: Option<HeaderValue>,
    page_size: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("authorization", &"[redacted]")
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the service at `base_url` (such as `http://127.0.0.1:8080`) that
    /// authenticates with `token`: the admin token, or a site's API key. Calls give up
    /// after [`DEFAULT_TIMEOUT`].
    pub fn new(base_url: &str, token: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("fullup-client/", env!("CARGO_PKG_VERSION")))
            .timeout(DEFAULT_TIMEOUT)
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
            .build()
            .map_err(|source| Error::Transport {
                url: base_url.to_owned(),
                source,
            })?;
        Self::with_http_client(http, base_url, token)
    }

    /// [`Client::new`] over an HTTP client of your own (timeouts, proxies, pool).
    pub fn with_http_client(
        http: reqwest::Client,
        base_url: &str,
        token: &str,
    ) -> Result<Self, Error> {
        if token.is_empty() {
            return Err(Error::InvalidToken);
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::InvalidToken)?;
        authorization.set_sensitive(true);
        let mut client = Self::without_token(http, base_url)?;
        client.authorization = Some(authorization);
        Ok(client)
    }

    /// A client that sends no token: enough for [`Client::ready`] and
    /// [`Client::metrics`]; the API's other routes answer it 401.
    pub fn without_token(http: reqwest::Client, base_url: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidBaseUrl {
            url: base_url.to_owned(),
        };
        let mut base = Url::parse(base_url).map_err(|_| invalid())?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(invalid());
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self {
            http,
            base,
            authorization: None,
            page_size: DEFAULT_PAGE_SIZE,
        })
    }

    /// Lists fetch `size` items per page, clamped to the service's range, 1 to 250.
    pub fn with_page_size(mut self, size: u32) -> Self {
        self.page_size = size.clamp(1, DEFAULT_PAGE_SIZE);
        self
    }

    /// The service's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Whether the service is ready: `GET /readyz` answered 200 (its database answers).
    /// A 503 is `Ok(false)`; no answer at all is an [`Error::Transport`].
    pub async fn ready(&self) -> Result<bool, Error> {
        let (_, response) = self.probe("readyz").await?;
        Ok(response.status() == StatusCode::OK)
    }

    /// The Prometheus text of `GET /metrics`.
    pub async fn metrics(&self) -> Result<String, Error> {
        let (url, response) = self.probe("metrics").await?;
        let body = checked_body(&url, response).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `GET /{route}` without a token: the operator's routes need none.
    async fn probe(&self, route: &str) -> Result<(Url, reqwest::Response), Error> {
        let url = self.url(&[route]);
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|source| transport(&url, source))?;
        Ok((url, response))
    }

    /// Creates a site (admin token only).
    pub async fn create_site(&self, name: &str) -> Result<Site, Error> {
        let body = serde_json::json!({ "name": name });
        self.send(Method::POST, self.url(&["v1", "sites"]), Some(&body))
            .await
    }

    /// Gets a site.
    pub async fn site(&self, site_id: &str) -> Result<Site, Error> {
        self.send::<(), _>(Method::GET, self.url(&["v1", "sites", site_id]), None)
            .await
    }

    /// Deletes a site with its webhooks, events, deliveries and keys (admin token only).
    pub async fn delete_site(&self, site_id: &str) -> Result<(), Error> {
        self.send_empty(Method::DELETE, self.url(&["v1", "sites", site_id]))
            .await
    }

    /// Every site, newest first (admin token only).
    pub fn sites(&self) -> BoxStream<'static, Result<Site, Error>> {
        self.paged(self.url(&["v1", "sites"]), Vec::new())
    }

    /// Renames a site.
    pub async fn rename_site(&self, site_id: &str, name: &str) -> Result<Site, Error> {
        let body = serde_json::json!({ "name": name });
        self.send(
            Method::PATCH,
            self.url(&["v1", "sites", site_id]),
            Some(&body),
        )
        .await
    }

    /// Creates an API key that reaches `site_id` only, allowed `scopes` there (none:
    /// the service's default, [`ApiKeyScope::Ingest`]); admin token only. The answer
    /// carries its token, this once.
    pub async fn create_api_key(
        &self,
        site_id: &str,
        name: &str,
        scopes: &[ApiKeyScope],
    ) -> Result<CreatedApiKey, Error> {
        let url = self.url(&["v1", "sites", site_id, "api-keys"]);
        let mut body = serde_json::json!({ "name": name });
        if !scopes.is_empty() {
            body["scopes"] = serde_json::json!(scopes);
        }
        let created: ApiKeyWithToken = self.send(Method::POST, url.clone(), Some(&body)).await?;
        Ok(CreatedApiKey {
            key: created.key,
            token: parse_secret(&url, "API key token", &created.token)?,
        })
    }

    /// A site's API keys (without their tokens), newest first.
    pub fn api_keys(&self, site_id: &str) -> BoxStream<'static, Result<ApiKey, Error>> {
        self.paged(self.url(&["v1", "sites", site_id, "api-keys"]), Vec::new())
    }

    /// Revokes an API key.
    pub async fn delete_api_key(&self, site_id: &str, key_id: &str) -> Result<(), Error> {
        let url = self.url(&["v1", "sites", site_id, "api-keys", key_id]);
        self.send_empty(Method::DELETE, url).await
    }

    /// Creates a webhook; the answer carries its secret, this once.
    pub async fn create_webhook(
        &self,
        site_id: &str,
        webhook: &NewWebhook,
    ) -> Result<CreatedWebhook, Error> {
        let url = self.url(&["v1", "sites", site_id, "webhooks"]);
        let created: WebhookWithSecret =
            self.send(Method::POST, url.clone(), Some(webhook)).await?;
        Ok(CreatedWebhook {
            webhook: created.webhook,
            secret: parse_secret(&url, "webhook secret", &created.secret)?,
        })
    }

    /// Gets a webhook (without its secret).
    pub async fn webhook(&self, site_id: &str, webhook_id: &str) -> Result<Webhook, Error> {
        let url = self.url(&["v1", "sites", site_id, "webhooks", webhook_id]);
        self.send::<(), _>(Method::GET, url, None).await
    }

    /// Gets a webhook's current signing secret.
    pub async fn webhook_secret(&self, site_id: &str, webhook_id: &str) -> Result<Secret, Error> {
        let url = self.url(&["v1", "sites", site_id, "webhooks", webhook_id, "secret"]);
        let body: SecretBody = self.send::<(), _>(Method::GET, url.clone(), None).await?;
        parse_secret(&url, "webhook secret", &body.secret)
    }

    /// Changes a webhook (pause, resume, new URL or filters...).
    pub async fn update_webhook(
        &self,
        site_id: &str,
        webhook_id: &str,
        changes: &WebhookUpdate,
    ) -> Result<Webhook, Error> {
        let url = self.url(&["v1", "sites", site_id, "webhooks", webhook_id]);
        self.send(Method::PATCH, url, Some(changes)).await
    }

    /// Deletes a webhook; its deliveries and attempts stay readable (pending ones
    /// cancelled) until retention prunes them.
    pub async fn delete_webhook(&self, site_id: &str, webhook_id: &str) -> Result<(), Error> {
        let url = self.url(&["v1", "sites", site_id, "webhooks", webhook_id]);
        self.send_empty(Method::DELETE, url).await
    }

    /// Replaces a webhook's secret with a generated one; the replaced one keeps signing
    /// for `grace` (default a day, at most a week; zero retires it at once), so the
    /// receiver can switch without a failed delivery.
    pub async fn rotate_webhook_secret(
        &self,
        site_id: &str,
        webhook_id: &str,
        grace: Option<std::time::Duration>,
    ) -> Result<RotatedSecret, Error> {
        let url = self.url(&[
            "v1",
            "sites",
            site_id,
            "webhooks",
            webhook_id,
            "rotate-secret",
        ]);
        let body = match grace {
            Some(grace) => serde_json::json!({ "grace_period_secs": grace.as_secs() }),
            None => serde_json::json!({}),
        };
        let rotated: RotateAnswer = self.send(Method::POST, url.clone(), Some(&body)).await?;
        Ok(RotatedSecret {
            secret: parse_secret(&url, "webhook secret", &rotated.secret)?,
            previous_secret_valid_until: rotated.previous_secret_valid_until,
            fullup_signature_switches_at: rotated.fullup_signature_switches_at,
        })
    }

    /// Sends a `ping` event to this webhook alone; returns the event's id.
    pub async fn test_webhook(&self, site_id: &str, webhook_id: &str) -> Result<String, Error> {
        let url = self.url(&["v1", "sites", site_id, "webhooks", webhook_id, "test"]);
        let answer: TestAnswer = self.send::<(), _>(Method::POST, url, None).await?;
        Ok(answer.event_id)
    }

    /// A site's webhooks, newest first.
    pub fn webhooks(&self, site_id: &str) -> BoxStream<'static, Result<Webhook, Error>> {
        self.paged(self.url(&["v1", "sites", site_id, "webhooks"]), Vec::new())
    }

    /// Sends an event; returns its id once the service has stored it with its
    /// deliveries. With an idempotency key, sending it again returns the same id and
    /// makes no second event, so a send that failed in transit is safe to retry.
    pub async fn create_event(&self, site_id: &str, event: &NewEvent) -> Result<String, Error> {
        let url = self.url(&["v1", "sites", site_id, "events"]);
        let mut request = self.request(Method::POST, url.clone()).json(event);
        if let Some(key) = &event.idempotency_key {
            request = request.header(IDEMPOTENCY_HEADER, key);
        }
        let created: CreatedEvent = execute(&url, request).await?;
        Ok(created.id)
    }

    /// Gets an event with its payload.
    pub async fn event(&self, site_id: &str, event_id: &str) -> Result<Event, Error> {
        let url = self.url(&["v1", "sites", site_id, "events", event_id]);
        self.send::<(), _>(Method::GET, url, None).await
    }

    /// A site's events, newest first, without their data ([`Client::event`] has it).
    pub fn events(&self, site_id: &str) -> BoxStream<'static, Result<EventSummary, Error>> {
        self.paged(self.url(&["v1", "sites", site_id, "events"]), Vec::new())
    }

    /// A site's deliveries that match `filter`, newest first.
    pub fn deliveries(
        &self,
        site_id: &str,
        filter: &DeliveryFilter,
    ) -> BoxStream<'static, Result<Delivery, Error>> {
        let query = [
            ("event_id", filter.event_id.clone()),
            ("webhook_id", filter.webhook_id.clone()),
            ("state", filter.state.map(|s| s.as_str().to_owned())),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect();
        self.paged(self.url(&["v1", "sites", site_id, "deliveries"]), query)
    }

    /// Gets a delivery.
    pub async fn delivery(&self, site_id: &str, delivery_id: &str) -> Result<Delivery, Error> {
        let url = self.url(&["v1", "sites", site_id, "deliveries", delivery_id]);
        self.send::<(), _>(Method::GET, url, None).await
    }

    /// Attempts a delivery again now, whatever its state (a replay when it had
    /// succeeded); returns it, pending.
    pub async fn retry_delivery(
        &self,
        site_id: &str,
        delivery_id: &str,
    ) -> Result<Delivery, Error> {
        let url = self.url(&["v1", "sites", site_id, "deliveries", delivery_id, "retry"]);
        self.send::<(), _>(Method::POST, url, None).await
    }

    /// A delivery's attempts, newest first.
    pub fn attempts(
        &self,
        site_id: &str,
        delivery_id: &str,
    ) -> BoxStream<'static, Result<Attempt, Error>> {
        let url = self.url(&[
            "v1",
            "sites",
            site_id,
            "deliveries",
            delivery_id,
            "attempts",
        ]);
        self.paged(url, Vec::new())
    }

    /// The base URL with `segments` appended, each percent-encoded (an id holding a
    /// `/` stays one segment).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.authorization {
            Some(authorization) => request.header(AUTHORIZATION, authorization.clone()),
            None => request,
        }
    }

    async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let mut request = self.request(method, url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        execute(&url, request).await
    }

    /// A call whose answer has no body (204).
    async fn send_empty(&self, method: Method, url: Url) -> Result<(), Error> {
        let response = self
            .request(method, url.clone())
            .send()
            .await
            .map_err(|source| transport(&url, source))?;
        checked_body(&url, response).await.map(drop)
    }

    /// The items of every page of `url`, fetched as the stream is read.
    fn paged<T: DeserializeOwned + Send + 'static>(
        &self,
        url: Url,
        query: Vec<(&'static str, String)>,
    ) -> BoxStream<'static, Result<T, Error>> {
        let client = self.clone();
        // The state is the next page's cursor: `Some(None)` for the first page, `None`
        // once the last page has been read.
        let pages = stream::try_unfold(Some(None::<String>), move |cursor| {
            let (client, url, query) = (client.clone(), url.clone(), query.clone());
            async move {
                let Some(cursor) = cursor else {
                    return Ok(None);
                };
                let page: Page<T> = client.page(url, query, cursor).await?;
                let items = stream::iter(page.data.into_iter().map(Ok));
                Ok(Some((items, page.next_cursor.map(Some))))
            }
        });
        pages.try_flatten().boxed()
    }

    async fn page<T: DeserializeOwned>(
        &self,
        url: Url,
        mut query: Vec<(&'static str, String)>,
        cursor: Option<String>,
    ) -> Result<Page<T>, Error> {
        query.push(("limit", self.page_size.to_string()));
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor));
        }
        let request = self.request(Method::GET, url.clone()).query(&query);
        execute(&url, request).await
    }
}

/// Collects a list into a `Vec`: for short lists (a delivery's attempts), when a
/// stream is more than the caller needs.
pub async fn collect<T>(list: impl Stream<Item = Result<T, Error>>) -> Result<Vec<T>, Error> {
    list.try_collect().await
}
