//! The management API end to end, against the real service on port 0: who may call
//! what, resource CRUD, ingest validation and idempotency, cursor pagination, and the
//! one error shape every failure must have.

mod auth;
mod consistency;
mod credentials;
mod errors;
mod ingest;
mod pagination;
mod resources;
mod scopes;

use reqwest::Method;
use serde_json::Value;

use crate::support::TestServer;
use crate::support::server::ADMIN_TOKEN;

/// Asserts a response is `status` with exactly `{"error":{"code","message"}}`, `code`
/// and a non-empty message; returns the message.
pub(crate) fn assert_error(got: &(u16, Value), status: u16, code: &str) -> String {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "status of {body}");
    let object = body.as_object().expect("error body is an object");
    assert_eq!(object.len(), 1, "only `error` at the top: {body}");
    let error = body["error"].as_object().expect("`error` is an object");
    let mut keys: Vec<&str> = error.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message"], "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"]
        .as_str()
        .expect("message is a string");
    assert!(!message.trim().is_empty(), "empty message: {body}");
    message.to_owned()
}

/// A request with raw body bytes and extra headers, for what `TestServer::call` cannot
/// send (invalid JSON, oversized bodies, `Idempotency-Key`), as JSON.
async fn raw(
    server: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    bare(server, method, path, &all, body).await
}

/// A request as admin with raw body bytes and exactly `headers` (no content type of its
/// own), returning status and JSON (Null if none).
async fn bare(
    server: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(ADMIN_TOKEN)
        .body(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Every item of a list route, following `next_cursor` with pages of `limit`; asserts
/// each page but the last is full and the last one's cursor is null.
async fn all_pages(server: &TestServer, path_and_query: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let after = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let sep = if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        let (status, body) = server
            .call(
                Method::GET,
                &format!("{path_and_query}{sep}limit={limit}{after}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let page = body["data"].as_array().expect("data").clone();
        assert!(
            page.len() <= limit as usize,
            "page larger than limit: {body}"
        );
        items.extend(page.iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(
                    page.len(),
                    limit as usize,
                    "a page with a next cursor is full"
                );
                cursor = Some(next.to_owned());
            }
            None => {
                assert!(body["next_cursor"].is_null(), "{body}");
                return items;
            }
        }
    }
    panic!("pagination of {path_and_query} never ended");
}

/// The `id` of each item.
fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}
