//! What can go wrong talking to the service: the service said no ([`Error::Api`]), the
//! request never got an answer ([`Error::Transport`]), or the answer was not what the API
//! promises ([`Error::Decode`], [`Error::TooLarge`]).

use reqwest::StatusCode;

/// A failed call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service answered with an error status; `code` and `message` come from its
    /// `{"error": {"code", "message"}}` body.
    #[error("the service answered {status} ({code}): {message}")]
    Api {
        /// The HTTP status, such as 404.
        status: StatusCode,
        /// The stable machine-readable code, such as `not_found` (empty when the
        /// answer was not the API's error shape, as from a proxy in front of it).
        code: String,
        /// What went wrong and how to fix it, as the service says it (or the start of
        /// the body, when it was not the API's error shape).
        message: String,
    },
    /// The request got no answer: connection refused, timeout, TLS failure...
    #[error("cannot reach {url}; check the URL and that the service runs")]
    Transport {
        /// The URL called, without its query.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The answer did not decode into the type the API documents; the service may be a
    /// newer, incompatible version.
    #[error("cannot decode the answer of {url}: {source}")]
    Decode {
        /// The URL called, without its query.
        url: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The answer was larger than [`MAX_RESPONSE_BYTES`](crate::MAX_RESPONSE_BYTES).
    #[error("the answer of {url} is larger than {limit} bytes; refusing to read it")]
    TooLarge {
        /// The URL called, without its query.
        url: String,
        /// The limit it went over.
        limit: usize,
    },
    /// The base URL given to [`Client::new`](crate::Client::new) is not an http(s) URL.
    #[error("{url:?} is not an http:// or https:// URL")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
    },
    /// The token given to [`Client::new`](crate::Client::new) cannot travel in an HTTP
    /// header (it holds control characters, or is empty).
    #[error("the token is empty or holds characters an HTTP header cannot carry")]
    InvalidToken,
    /// A value given to the client does not serialize into JSON.
    #[error("cannot encode the request body: {0}")]
    Encode(#[source] serde_json::Error),
}

impl Error {
    /// The HTTP status of an [`Error::Api`].
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API's error code (such as `not_found`) of an [`Error::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the service answered 404: the site, webhook, event or delivery does not
    /// exist (or is not the caller's).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }
}
