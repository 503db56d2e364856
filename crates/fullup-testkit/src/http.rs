//! A blocking HTTP/1.1 client for tests that need to see exactly what a server answered.
//!
//! Every status is a result here, never an error: a test asserting a 403 must be able to
//! read it. Redirects are not followed, for the same reason.

use std::time::Duration;

/// Long enough for a Flask reloader child that is still importing when the request
/// queues in the listen backlog; a hung receiver still fails the test instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// POSTs `body` with `headers` to `url` and returns the status code and the response body.
///
/// No header is added besides what HTTP/1.1 needs (`host`, `content-length`) and ureq's
/// `user-agent` and `accept`; pass `content-type` yourself. Panics on transport errors
/// (connection refused, timeout), naming the URL.
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .into();
    let request = headers
        .iter()
        .fold(agent.post(url), |request, (name, value)| {
            request.header(*name, *value)
        });
    let mut response = request
        .send(body)
        .unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_vec()
        .unwrap_or_else(|e| panic!("reading the response body of POST {url} failed: {e}"));
    (status, body)
}
