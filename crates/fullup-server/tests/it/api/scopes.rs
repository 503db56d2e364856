//! API key scopes (issue 18, item 4): every authenticated operation of the OpenAPI
//! document (which `openapi.rs` proves lists every route) is tried with an `ingest`
//! key, a `manage` key and the admin token. An `ingest` key reaches only ingest and
//! the event and delivery reads; everything else answers 403. A new route cannot be
//! forgotten: an operation missing from [`RULES`] fails the test.

use reqwest::Method;
use serde_json::{Value, json};

use super::assert_error;
use super::auth::create_scoped_key;
use crate::support::{Backend, TestServer, store_test};

/// Who may call an operation, besides the admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Any key of the site (`ingest` or `manage`).
    Ingest,
    /// A `manage` key.
    Manage,
    /// The admin token alone.
    Admin,
}

/// Every authenticated operation: what it needs, and a request body it accepts.
const RULES: &[(&str, Needs, Option<&str>)] = &[
    ("createSite", Needs::Admin, Some(r#"{"name": "new"}"#)),
    ("listSites", Needs::Admin, None),
    ("deleteSite", Needs::Admin, None),
    ("createApiKey", Needs::Admin, Some(r#"{"name": "more"}"#)),
    ("getSite", Needs::Manage, None),
    ("updateSite", Needs::Manage, Some(r#"{"name": "renamed"}"#)),
    ("listApiKeys", Needs::Manage, None),
    ("deleteApiKey", Needs::Manage, None),
    ("createPortalLink", Needs::Manage, None),
    (
        "createWebhook",
        Needs::Manage,
        Some(r#"{"url": "http://127.0.0.1:9/new"}"#),
    ),
    ("listWebhooks", Needs::Manage, None),
    ("getWebhook", Needs::Manage, None),
    (
        "updateWebhook",
        Needs::Manage,
        Some(r#"{"url": "http://127.0.0.1:9/elsewhere"}"#),
    ),
    ("deleteWebhook", Needs::Manage, None),
    ("getWebhookSecret", Needs::Manage, None),
    ("rotateWebhookSecret", Needs::Manage, Some("{}")),
    (
        "recoverWebhook",
        Needs::Manage,
        Some(r#"{"since": "2020-01-01T00:00:00Z"}"#),
    ),
    ("sendTestEvent", Needs::Manage, None),
    ("retryDelivery", Needs::Manage, None),
    (
        "createEvent",
        Needs::Ingest,
        Some(r#"{"type": "form.submitted", "data": {}}"#),
    ),
    ("listEvents", Needs::Ingest, None),
    ("getEvent", Needs::Ingest, None),
    ("listDeliveries", Needs::Ingest, None),
    ("getDelivery", Needs::Ingest, None),
    ("listAttempts", Needs::Ingest, None),
    (
        "putEventType",
        Needs::Manage,
        Some(r#"{"description": "A form was submitted."}"#),
    ),
    ("deleteEventType", Needs::Manage, None),
    ("listEventTypes", Needs::Ingest, None),
    ("getEventType", Needs::Ingest, None),
];

/// One authenticated operation of the document.
struct Operation {
    id: String,
    method: Method,
    template: String,
}

/// The operations of `doc` that need a bearer token, deletions last (so the others
/// find what they act on).
fn authenticated_operations(doc: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if op.get("security").is_none() {
                continue;
            }
            found.push(Operation {
                id: op["operationId"].as_str().expect("operationId").to_owned(),
                method: Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"),
                template: template.clone(),
            });
        }
    }
    found.sort_by_key(|op| op.method == Method::DELETE);
    found
}

/// The ids the path templates name, all of one site.
struct Ids {
    site: String,
    key: String,
    webhook: String,
    event: String,
    delivery: String,
}

impl Ids {
    fn path(&self, template: &str) -> String {
        template
            .replace("{site_id}", &self.site)
            .replace("{key_id}", &self.key)
            .replace("{webhook_id}", &self.webhook)
            .replace("{event_id}", &self.event)
            .replace("{delivery_id}", &self.delivery)
            .replace("{name}", EVENT_TYPE)
    }
}

/// The catalogued event type the `{name}` routes act on.
const EVENT_TYPE: &str = "form.submitted";

/// A site with a catalogued event type, a webhook, an event, its delivery and a
/// spare key to revoke.
async fn site_with_everything(server: &TestServer) -> Ids {
    let site = server.create_site().await;
    let (status, body) = server
        .call(
            Method::PUT,
            &format!("/v1/sites/{site}/event-types/{EVENT_TYPE}"),
            Some(json!({"description": "A form was submitted."})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (webhook, _) = server
        .create_webhook(&site, "http://127.0.0.1:9/hook", &["*"])
        .await;
    let event = server.send_event(&site, EVENT_TYPE, json!({"a": 1})).await;
    let deliveries = server.deliveries(&site, &format!("event_id={event}")).await;
    let delivery = deliveries[0]["id"]
        .as_str()
        .expect("delivery id")
        .to_owned();
    let (key, _) = create_scoped_key(server, &site, None).await;
    Ids {
        site,
        key,
        webhook,
        event,
        delivery,
    }
}

fn rule(id: &str) -> (Needs, Option<Value>) {
    let (_, needs, body) = RULES
        .iter()
        .find(|(op, _, _)| *op == id)
        .unwrap_or_else(|| {
            panic!(
                "operation {id} has no scope rule: add it to RULES (and require its scope in the handler)"
            )
        });
    (
        *needs,
        body.map(|b| serde_json::from_str(b).expect("rule body is JSON")),
    )
}

async fn document(server: &TestServer) -> Value {
    let (status, doc) = server
        .call_as(None, Method::GET, "/openapi.json", None)
        .await;
    assert_eq!(status, 200, "{doc}");
    doc
}

store_test!(an_ingest_key_gets_403_on_every_management_route_and_on_secrets);
async fn an_ingest_key_gets_403_on_every_management_route_and_on_secrets(backend: Backend) {
    let server = backend.start().await;
    let ids = site_with_everything(&server).await;
    let (_, ingest) = create_scoped_key(&server, &ids.site, None).await;
    let operations = authenticated_operations(&document(&server).await);
    assert!(
        operations.len() >= RULES.len(),
        "every rule is an operation"
    );
    for op in &operations {
        let (needs, body) = rule(&op.id);
        let path = ids.path(&op.template);
        let got = server
            .call_as(Some(&ingest), op.method.clone(), &path, body)
            .await;
        match needs {
            Needs::Ingest => assert!(
                (200..300).contains(&got.0),
                "{} {path} with an ingest key: {} {}",
                op.id,
                got.0,
                got.1
            ),
            Needs::Manage => {
                let message = assert_error(&got, 403, "insufficient_scope");
                assert!(
                    message.contains("`manage`") && message.contains("`ingest`"),
                    "{}: {message}",
                    op.id
                );
            }
            Needs::Admin => {
                assert_error(&got, 403, "forbidden");
            }
        }
    }
    // Nothing an ingest key tried changed the site.
    let (status, webhook) = server
        .call(
            Method::GET,
            &format!("/v1/sites/{}/webhooks/{}", ids.site, ids.webhook),
            None,
        )
        .await;
    assert_eq!(status, 200, "{webhook}");
    assert_eq!(webhook["url"], "http://127.0.0.1:9/hook");
    server.stop().await;
}

store_test!(a_manage_key_reaches_every_route_of_its_site_but_the_admins);
async fn a_manage_key_reaches_every_route_of_its_site_but_the_admins(backend: Backend) {
    let server = backend.start().await;
    let ids = site_with_everything(&server).await;
    let (_, manage) = create_scoped_key(&server, &ids.site, Some(&["manage"])).await;
    for op in authenticated_operations(&document(&server).await) {
        let (needs, body) = rule(&op.id);
        let path = ids.path(&op.template);
        let got = server
            .call_as(Some(&manage), op.method.clone(), &path, body)
            .await;
        if needs == Needs::Admin {
            assert_error(&got, 403, "forbidden");
        } else {
            assert!(
                (200..300).contains(&got.0),
                "{} {path} with a manage key: {} {}",
                op.id,
                got.0,
                got.1
            );
        }
    }
    server.stop().await;
}

store_test!(scopes_are_validated_listed_and_ingest_by_default);
async fn scopes_are_validated_listed_and_ingest_by_default(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let path = format!("/v1/sites/{site}/api-keys");
    create_scoped_key(&server, &site, None).await;
    create_scoped_key(&server, &site, Some(&["ingest", "manage"])).await;
    for scopes in [json!([]), json!(["admin"]), json!(["ingest", "write"])] {
        let got = server
            .call(
                Method::POST,
                &path,
                Some(json!({"name": "x", "scopes": scopes})),
            )
            .await;
        let message = assert_error(&got, 422, "invalid_scopes");
        assert!(message.contains("`manage`"), "{message}");
    }
    let (status, listed) = server.call(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{listed}");
    let scopes: Vec<&Value> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|k| &k["scopes"])
        .collect();
    assert_eq!(
        scopes,
        [&json!(["ingest", "manage"]), &json!(["ingest"])],
        "newest first"
    );
    server.stop().await;
}
