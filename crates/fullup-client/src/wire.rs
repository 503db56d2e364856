//! The wire side of the client: the bodies of the service's answers that are not a
//! public model, and reading an answer (bounded) into a model or an [`Error`].

use reqwest::Url;
use serde::de::DeserializeOwned;

use crate::{ApiKey, Error, MAX_RESPONSE_BYTES, Secret, Webhook};

/// The body of a list answer.
#[derive(serde::Deserialize)]
pub(crate) struct Page<T> {
    pub(crate) data: Vec<T>,
    #[serde(default)]
    pub(crate) next_cursor: Option<String>,
}

/// The API's error shape.
#[derive(serde::Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

#[derive(serde::Deserialize)]
pub(crate) struct ErrorDetail {
    pub(crate) code: String,
    pub(crate) message: String,
}

/// `POST …/events` answer.
#[derive(serde::Deserialize)]
pub(crate) struct CreatedEvent {
    pub(crate) id: String,
}

/// `POST …/webhooks` answer: a webhook with its secret.
#[derive(serde::Deserialize)]
pub(crate) struct WebhookWithSecret {
    #[serde(flatten)]
    pub(crate) webhook: Webhook,
    pub(crate) secret: String,
}

/// `POST …/api-keys` answer: a key with its token.
#[derive(serde::Deserialize)]
pub(crate) struct ApiKeyWithToken {
    #[serde(flatten)]
    pub(crate) key: ApiKey,
    pub(crate) token: String,
}

/// `POST …/rotate-secret` answer.
#[derive(serde::Deserialize)]
pub(crate) struct RotateAnswer {
    pub(crate) secret: String,
    pub(crate) previous_secret_valid_until: chrono::DateTime<chrono::Utc>,
    pub(crate) fullup_signature_switches_at: chrono::DateTime<chrono::Utc>,
}

/// `POST …/test` answer.
#[derive(serde::Deserialize)]
pub(crate) struct TestAnswer {
    pub(crate) event_id: String,
}

/// `GET …/secret` answer.
#[derive(serde::Deserialize)]
pub(crate) struct SecretBody {
    pub(crate) secret: String,
}

pub(crate) async fn execute<T: DeserializeOwned>(
    url: &Url,
    request: reqwest::RequestBuilder,
) -> Result<T, Error> {
    let response = request
        .send()
        .await
        .map_err(|source| transport(url, source))?;
    let body = checked_body(url, response).await?;
    serde_json::from_slice(&body).map_err(|source| Error::Decode {
        url: without_query(url),
        source,
    })
}

pub(crate) fn transport(url: &Url, source: reqwest::Error) -> Error {
    Error::Transport {
        url: without_query(url),
        source,
    }
}

pub(crate) fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

/// `secret` (a `what`, such as "webhook secret") in a [`Secret`], which `Debug` redacts.
pub(crate) fn parse_secret(url: &Url, what: &str, secret: &str) -> Result<Secret, Error> {
    Secret::parse(secret).map_err(|err| Error::Decode {
        url: without_query(url),
        source: serde::de::Error::custom(format!("the {what} is not usable: {err}")),
    })
}

/// The body of a 2xx answer, read up to [`MAX_RESPONSE_BYTES`]; any other status is an
/// [`Error::Api`].
pub(crate) async fn checked_body(
    url: &Url,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, Error> {
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| transport(url, source))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(Error::TooLarge {
                url: without_query(url),
                limit: MAX_RESPONSE_BYTES,
            });
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_success() {
        return Ok(body);
    }
    Err(match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody { error }) => Error::Api {
            status,
            code: error.code,
            message: error.message,
        },
        Err(_) => Error::Api {
            status,
            code: String::new(),
            message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        },
    })
}
