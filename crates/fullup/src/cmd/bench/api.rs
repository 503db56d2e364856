//! The few management API calls a run makes: a site, its webhooks, pausing and resuming
//! them, and removing the site from a deployment the bench did not start.

use anyhow::Context as _;
use fullup_signature::Secret;
use serde_json::{Value, json};

/// A client of one deployment's management API.
#[derive(Debug, Clone)]
pub struct Api {
    /// The HTTP client shared by the whole run.
    pub client: reqwest::Client,
    /// `http(s)://HOST:PORT`, without a trailing slash.
    pub base: String,
    /// The admin token.
    pub token: String,
}

/// A webhook to create.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// The receiver URL.
    pub url: String,
    /// Its filter.
    pub event_type: String,
    /// The secret the receiver verifies with.
    pub secret: Secret,
    /// Created paused: deliveries queue up until it is resumed.
    pub paused: bool,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {}{path}", self.base))?;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status == expected,
            "{method} {path} answered {status}: {answer}"
        );
        Ok(answer)
    }

    /// Checks that the service answers `/health`.
    pub async fn health(&self) -> anyhow::Result<()> {
        self.get_ok("/health").await.map(drop)
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self.get_ok("/metrics").await?.text().await?)
    }

    /// `GET path` without a token, which must answer 2xx.
    async fn get_ok(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "{url} answered {}",
            response.status()
        );
        Ok(response)
    }

    /// Creates a site; returns its id.
    pub async fn create_site(&self) -> anyhow::Result<String> {
        let site = self
            .call(
                reqwest::Method::POST,
                "/v1/sites",
                Some(json!({"name": "fullup bench"})),
                201,
            )
            .await?;
        Ok(site["id"].as_str().context("the new site's id")?.to_owned())
    }

    /// Deletes a site with its webhooks and deliveries.
    pub async fn delete_site(&self, site: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/v1/sites/{site}"),
            None,
            204,
        )
        .await
        .map(drop)
    }

    /// Creates a webhook; returns its id.
    pub async fn create_webhook(&self, site: &str, hook: &NewWebhook) -> anyhow::Result<String> {
        let mut body = json!({
            "url": hook.url,
            "event_types": [hook.event_type],
            "secret": hook.secret.expose(),
        });
        if hook.paused {
            body["paused"] = Value::Bool(true);
        }
        let path = format!("/v1/sites/{site}/webhooks");
        let created = self
            .call(reqwest::Method::POST, &path, Some(body), 201)
            .await
            .context(if hook.paused {
                "creating a paused webhook (this needs a service that accepts `\"paused\": true`)"
            } else {
                "creating a webhook"
            })?;
        if hook.paused {
            anyhow::ensure!(
                created["paused"] == Value::Bool(true),
                "the service created the webhook without pausing it: {created}"
            );
        }
        Ok(created["id"]
            .as_str()
            .context("the new webhook's id")?
            .to_owned())
    }

    /// Sends one event of `event_type` to `site`; returns its id.
    pub async fn send_event(
        &self,
        site: &str,
        event_type: &str,
        data: Value,
    ) -> anyhow::Result<String> {
        let path = format!("/v1/sites/{site}/events");
        let body = json!({ "type": event_type, "data": data });
        let created = self
            .call(reqwest::Method::POST, &path, Some(body), 202)
            .await?;
        Ok(created["id"]
            .as_str()
            .context("the new event's id")?
            .to_owned())
    }

    /// Pauses or resumes a webhook.
    pub async fn set_paused(&self, site: &str, webhook: &str, paused: bool) -> anyhow::Result<()> {
        let path = format!("/v1/sites/{site}/webhooks/{webhook}");
        let updated = self
            .call(
                reqwest::Method::PATCH,
                &path,
                Some(json!({ "paused": paused })),
                200,
            )
            .await?;
        anyhow::ensure!(
            updated["paused"] == Value::Bool(paused),
            "the service did not set paused={paused}: {updated}"
        );
        Ok(())
    }
}
