//! The OpenAPI document: it lists every route the router serves, the server serves the
//! generated one, and `docs/openapi.json` is that document byte for byte.
//!
//! Regenerate the file after changing the API with
//! `UPDATE_OPENAPI=1 cargo test -p fullup-server --test it openapi`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use fullup_server::api::openapi::document;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::TestServer;

/// Every route of the router, as (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/v1/sites"),
    ("get", "/v1/sites"),
    ("get", "/v1/sites/{site_id}"),
    ("patch", "/v1/sites/{site_id}"),
    ("delete", "/v1/sites/{site_id}"),
    ("post", "/v1/sites/{site_id}/api-keys"),
    ("post", "/v1/sites/{site_id}/portal-links"),
    ("get", "/v1/sites/{site_id}/api-keys"),
    ("delete", "/v1/sites/{site_id}/api-keys/{key_id}"),
    ("post", "/v1/sites/{site_id}/webhooks"),
    ("get", "/v1/sites/{site_id}/webhooks"),
    ("get", "/v1/sites/{site_id}/webhooks/{webhook_id}"),
    ("patch", "/v1/sites/{site_id}/webhooks/{webhook_id}"),
    ("delete", "/v1/sites/{site_id}/webhooks/{webhook_id}"),
    ("get", "/v1/sites/{site_id}/webhooks/{webhook_id}/secret"),
    ("post", "/v1/sites/{site_id}/webhooks/{webhook_id}/recover"),
    (
        "post",
        "/v1/sites/{site_id}/webhooks/{webhook_id}/rotate-secret",
    ),
    ("post", "/v1/sites/{site_id}/webhooks/{webhook_id}/test"),
    ("post", "/v1/sites/{site_id}/events"),
    ("get", "/v1/sites/{site_id}/events"),
    ("get", "/v1/sites/{site_id}/events/{event_id}"),
    ("get", "/v1/sites/{site_id}/event-types"),
    ("get", "/v1/sites/{site_id}/event-types/{name}"),
    ("put", "/v1/sites/{site_id}/event-types/{name}"),
    ("delete", "/v1/sites/{site_id}/event-types/{name}"),
    ("get", "/v1/sites/{site_id}/deliveries"),
    ("get", "/v1/sites/{site_id}/deliveries/{delivery_id}"),
    ("post", "/v1/sites/{site_id}/deliveries/{delivery_id}/retry"),
    (
        "get",
        "/v1/sites/{site_id}/deliveries/{delivery_id}/attempts",
    ),
];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The (method, path) of every operation in an OpenAPI document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut found = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            if HTTP_METHODS.contains(&method.as_str()) {
                found.insert((method.clone(), path.clone()));
            }
        }
    }
    found
}

/// A concrete path for a template: each `{x_id}` becomes a well-formed id of its kind.
fn concrete(template: &str) -> String {
    const ULID: &str = "01JDQ3W5Z8K9T2M4N6P8R0S2V4";
    [
        ("{site_id}", "site_"),
        ("{key_id}", "key_"),
        ("{webhook_id}", "wh_"),
        ("{event_id}", "evt_"),
        ("{delivery_id}", "dlv_"),
        ("{name}", "order."),
    ]
    .iter()
    .fold(template.to_owned(), |path, (param, prefix)| {
        path.replace(param, &format!("{prefix}{ULID}"))
    })
}

#[tokio::test]
async fn the_served_document_lists_every_route_and_each_is_routed() {
    let server = TestServer::start().await;
    let (status, served) = server
        .call_as(None, Method::GET, "/openapi.json", None)
        .await;
    assert_eq!(status, 200, "{served}");
    assert_eq!(
        served["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(
        operations(&served),
        expected,
        "the document and the router disagree"
    );
    let generated: Value = serde_json::from_str(&document()).expect("document() is JSON");
    assert_eq!(served, generated, "GET /openapi.json serves document()");

    for (method, template) in ROUTES {
        let path = concrete(template);
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let (status, body) = server.call_as(None, method.clone(), &path, None).await;
        let want = if template.starts_with("/v1/") {
            401
        } else {
            200
        };
        assert_eq!(
            status, want,
            "{method} {path} is not routed as documented: {body}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn every_operation_documents_its_error_shape_and_bearer_auth() {
    let doc: Value = serde_json::from_str(&document()).expect("document() is JSON");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (method, path) in ROUTES.iter().filter(|(_, p)| p.starts_with("/v1/")) {
        let op = &doc["paths"][*path][*method];
        assert_eq!(
            op["security"],
            serde_json::json!([{"bearer": []}]),
            "{method} {path}"
        );
        assert!(
            op["summary"].is_string() || op["description"].is_string(),
            "{method} {path} has no text"
        );
    }
}

#[test]
fn docs_openapi_json_is_the_generated_document() {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = format!("{}\n", document());
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&file, &generated).expect("write docs/openapi.json");
        return;
    }
    let on_disk = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        on_disk == generated,
        "docs/openapi.json is not the generated document; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p fullup-server --test it openapi` and commit it"
    );
}

/// The operations of the document, as (method, path, operation).
fn all_operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if HTTP_METHODS.contains(&method.as_str()) {
                found.push((method.clone(), path.clone(), op.clone()));
            }
        }
    }
    found
}

#[test]
fn operation_ids_are_unique_camel_case_and_every_operation_has_one_known_tag() {
    let doc: Value = serde_json::from_str(&document()).expect("document() is JSON");
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("top-level tags")
        .iter()
        .map(|t| t["name"].as_str().expect("tag name"))
        .collect();
    assert_eq!(
        tags,
        BTreeSet::from([
            "sites",
            "api-keys",
            "webhooks",
            "events",
            "event-types",
            "deliveries",
            "monitoring"
        ])
    );
    let mut ids = BTreeSet::new();
    for (method, path, op) in all_operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        let camel = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_alphanumeric())
            && id.chars().any(|c| c.is_ascii_uppercase());
        assert!(camel, "{method} {path}: operationId {id:?} is not verbNoun");
        assert!(ids.insert(id.clone()), "operationId {id} repeats");
        let op_tags = op["tags"].as_array().expect("tags");
        assert_eq!(op_tags.len(), 1, "{method} {path}");
        assert!(
            tags.contains(op_tags[0].as_str().unwrap_or_default()),
            "{method} {path}: {op_tags:?}"
        );
    }
    for expected in [
        "createSite",
        "listSites",
        "createWebhook",
        "rotateWebhookSecret",
        "createEvent",
        "listEvents",
        "listDeliveries",
        "retryDelivery",
        "listAttempts",
    ] {
        assert!(ids.contains(expected), "no operation {expected}");
    }
}

#[test]
fn every_operation_documents_the_errors_its_shape_allows_with_the_error_body() {
    let doc: Value = serde_json::from_str(&document()).expect("document() is JSON");
    let error_body = json!({"$ref": "#/components/schemas/ErrorBody"});
    for (method, path, op) in all_operations(&doc) {
        if !path.starts_with("/v1/") {
            continue;
        }
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let in_ = |place: &str| params.iter().any(|p| p["in"] == place);
        let mut expected = vec!["401", "500", "503"];
        if path.contains('{') {
            expected.push("404");
            assert!(in_("path"), "{method} {path} declares no path parameter");
        }
        if in_("query") || in_("header") || op.get("requestBody").is_some() {
            expected.push("400");
        }
        if op.get("requestBody").is_some() {
            expected.extend(["413", "415", "422"]);
        }
        for status in expected {
            let response = &op["responses"][status];
            assert_eq!(
                response["content"]["application/json"]["schema"], error_body,
                "{method} {path} does not document {status} with ErrorBody"
            );
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status} has no description"
            );
        }
    }
    let create_event = &doc["paths"]["/v1/sites/{site_id}/events"]["post"];
    assert_eq!(
        create_event["responses"]["429"]["content"]["application/json"]["schema"],
        error_body
    );
    for (method, path) in [("post", "/v1/sites"), ("get", "/v1/sites")] {
        assert!(
            doc["paths"][path][method]["responses"]["403"].is_object(),
            "{method} {path}: the admin-only route documents 403"
        );
    }
}

#[test]
fn schemas_say_what_the_routes_accept() {
    let doc: Value = serde_json::from_str(&document()).expect("document() is JSON");
    let schemas = &doc["components"]["schemas"];
    let data = &schemas["CreateEvent"]["properties"]["data"];
    assert!(
        data.get("type").is_none(),
        "event data may be any JSON value, not only an object: {data}"
    );
    let item = &schemas["ListResponse_EventSummary"]["properties"]["data"]["items"];
    assert_eq!(item, &json!({"$ref": "#/components/schemas/EventSummary"}));
    assert!(
        schemas["EventSummary"]["properties"]
            .get("payload")
            .is_none()
    );
    let rotate = &doc["paths"]["/v1/sites/{site_id}/webhooks/{webhook_id}/rotate-secret"]["post"];
    assert_eq!(
        rotate["requestBody"]["required"], false,
        "rotate-secret takes an empty body"
    );
}
