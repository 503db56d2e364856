//! Receiver URLs: parsed once, so the rest of the code only ever holds a usable one.

use std::fmt;

use url::Url;

/// The longest URL accepted; browsers and proxies commonly cap at 2 KiB.
pub const MAX_URL_LEN: usize = 2048;

/// Why a webhook URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookUrlError {
    /// Not a URL at all.
    #[error("url is not valid: {0}")]
    Invalid(String),
    /// A scheme other than http or https.
    #[error("url scheme `{0}` is not allowed: use http or https")]
    Scheme(String),
    /// No host.
    #[error("url has no host")]
    NoHost,
    /// Credentials in the URL would be stored and logged with it.
    #[error("url must not contain a user name or password: put credentials in the path or query")]
    Credentials,
    /// Longer than [`MAX_URL_LEN`].
    #[error("url is longer than {MAX_URL_LEN} characters")]
    TooLong,
}

/// An http(s) URL with a host, no credentials, and no fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

/// What [`WebhookUrl::unreadable`] holds: a name under `.invalid` (RFC 2606), which
/// never resolves.
const UNREADABLE_URL: &str = "https://unreadable.invalid/";

impl WebhookUrl {
    /// Stands for a stored URL that did not open on this node. Its webhook's secrets
    /// are unreadable too, so nothing is ever sent to it, and the store refuses to
    /// write such a webhook back.
    pub fn unreadable() -> Self {
        Self(Url::parse(UNREADABLE_URL).unwrap_or_else(|_| unreachable!("a valid URL")))
    }

    /// Parses with the WHATWG URL rules (the `url` crate).
    pub fn parse(s: &str) -> Result<Self, WebhookUrlError> {
        if s.len() > MAX_URL_LEN {
            return Err(WebhookUrlError::TooLong);
        }
        let mut url = Url::parse(s.trim()).map_err(|e| WebhookUrlError::Invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(WebhookUrlError::Scheme(url.scheme().to_owned()));
        }
        if url.host().is_none() {
            return Err(WebhookUrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebhookUrlError::Credentials);
        }
        url.set_fragment(None);
        Ok(Self(url))
    }

    /// The parsed URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https_only() {
        assert!(WebhookUrl::parse("https://example.com/hook").is_ok());
        assert!(WebhookUrl::parse("http://127.0.0.1:3000/webhook-endpoint").is_ok());
        assert_eq!(
            WebhookUrl::parse("ftp://example.com"),
            Err(WebhookUrlError::Scheme("ftp".into()))
        );
        assert!(WebhookUrl::parse("not a url").is_err());
        assert_eq!(
            WebhookUrl::parse("https://u:p@example.com/"),
            Err(WebhookUrlError::Credentials)
        );
    }
}
