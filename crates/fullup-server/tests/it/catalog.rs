//! The event-type catalog (issue 15, item 4): CRUD with a site's key or the admin token
//! (another site's key: 404), ingest validated against a type's schema (422 with the
//! JSON Pointer of the first error), strict mode at ingest and at subscription, and
//! hostile schemas bounded so they cannot hurt other sites.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::assert_error;
use crate::support::{Backend, TestReceiver, TestServer, store_test};

const WAIT: Duration = Duration::from_secs(10);

/// A `manage`-scoped site API key's token (the catalog is managed with one).
async fn site_key(server: &TestServer, site: &str) -> String {
    let (status, body) = server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/api-keys"),
            Some(json!({"name": "backend", "scopes": ["ingest", "manage"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["amount"],
        "properties": {
            "amount": {"type": "integer", "minimum": 0},
            "lines": {"type": "array", "items": {"type": "object", "required": ["sku"]}}
        }
    })
}

async fn ingest(server: &TestServer, site: &str, event_type: &str, data: Value) -> (u16, Value) {
    server
        .call(
            Method::POST,
            &format!("/v1/sites/{site}/events"),
            Some(json!({"type": event_type, "data": data})),
        )
        .await
}

store_test!(event_types_are_managed_by_the_site_or_the_admin_only);
async fn event_types_are_managed_by_the_site_or_the_admin_only(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let other = server.create_site().await;
    let key = site_key(&server, &site).await;
    let other_key = site_key(&server, &other).await;
    let path = format!("/v1/sites/{site}/event-types/order.paid");
    let entry = json!({"description": "An order was paid.", "schema": order_schema(),
                       "example": {"amount": 12, "lines": [{"sku": "A-1"}]}});

    let (status, created) = server
        .call_as(Some(&key), Method::PUT, &path, Some(entry.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "order.paid");
    assert_eq!(created["schema"], order_schema());
    assert_eq!(created["example"]["amount"], 12);
    let (status, replaced) = server
        .call(Method::PUT, &path, Some(json!({"description": "Paid."})))
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_eq!(
        replaced["schema"],
        Value::Null,
        "PUT replaces the whole entry"
    );
    server.call(Method::PUT, &path, Some(entry)).await;

    let (status, read) = server.call_as(Some(&key), Method::GET, &path, None).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["description"], "An order was paid.");
    let (_, list) = server
        .call_as(
            Some(&key),
            Method::GET,
            &format!("/v1/sites/{site}/event-types"),
            None,
        )
        .await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["next_cursor"], Value::Null);

    // Another site's key sees nothing and changes nothing.
    for method in [Method::GET, Method::DELETE] {
        let got = server.call_as(Some(&other_key), method, &path, None).await;
        assert_error(&got, 404, "not_found");
    }
    let got = server
        .call_as(Some(&other_key), Method::PUT, &path, Some(json!({})))
        .await;
    assert_error(&got, 404, "not_found");
    let got = server
        .call_as(
            Some(&other_key),
            Method::GET,
            &format!("/v1/sites/{site}/event-types"),
            None,
        )
        .await;
    assert_error(&got, 404, "not_found");

    // Refusals name the rule.
    let got = server
        .call(Method::PUT, &path, Some(json!({"schema": {"type": 12}})))
        .await;
    assert_error(&got, 422, "invalid_schema");
    let got = server
        .call(
            Method::PUT,
            &path,
            Some(json!({"schema": order_schema(), "example": {"amount": -1}})),
        )
        .await;
    let message = assert_error(&got, 422, "invalid_example");
    assert!(message.contains("/amount"), "{message}");
    let got = server
        .call(
            Method::PUT,
            &format!("/v1/sites/{site}/event-types/a..b"),
            Some(json!({})),
        )
        .await;
    assert_error(&got, 422, "invalid_event_type");
    let got = server
        .call(
            Method::PUT,
            &format!("/v1/sites/{site}/event-types/webhook.disabled"),
            Some(json!({})),
        )
        .await;
    assert_error(&got, 422, "reserved_event_type");

    let (status, _) = server
        .call_as(Some(&key), Method::DELETE, &path, None)
        .await;
    assert_eq!(status, 204);
    let got = server.call(Method::GET, &path, None).await;
    assert_error(&got, 404, "not_found");
    server.stop().await;
}

store_test!(events_of_a_type_with_a_schema_are_validated_with_the_pointer_of_the_first_error);
async fn events_of_a_type_with_a_schema_are_validated_with_the_pointer_of_the_first_error(
    backend: Backend,
) {
    let server = backend.start().await;
    let mut receiver = TestReceiver::start().await;
    let site = server.create_site().await;
    let (_, secret) = server.create_webhook(&site, &receiver.url(), &["*"]).await;
    receiver.expect_secret(secret);
    let path = format!("/v1/sites/{site}/event-types/order.paid");
    let (status, _) = server
        .call(Method::PUT, &path, Some(json!({"schema": order_schema()})))
        .await;
    assert_eq!(status, 201);

    let (status, body) = ingest(&server, &site, "order.paid", json!({"amount": 5})).await;
    assert_eq!(status, 202, "{body}");
    let got = receiver.next(WAIT).await;
    assert_eq!(got.json()["data"], json!({"amount": 5}));

    let refused = [
        (json!({"amount": "5"}), "`/amount`"),
        (
            json!({"amount": 1, "lines": [{"sku": "a"}, {}]}),
            "`/lines/1`",
        ),
        (json!({}), "``"),
    ];
    for (data, pointer) in refused {
        let got = ingest(&server, &site, "order.paid", data.clone()).await;
        let message = assert_error(&got, 422, "schema_mismatch");
        assert!(message.contains(pointer), "{data}: {message}");
    }
    let got = ingest(
        &server,
        &site,
        "order.paid",
        json!({"amount": 1, "lines": [{}]}),
    )
    .await;
    let message = assert_error(&got, 422, "schema_mismatch");
    assert_eq!(
        message,
        "data does not match the schema of event type `order.paid` at `/lines/0`: \"sku\" is a required property (JSON Pointer into data)"
    );
    // A type outside the catalog is free (the site is not strict).
    let (status, _) = ingest(&server, &site, "note.added", json!("anything")).await;
    assert_eq!(status, 202);

    // A changed schema applies at once (the compiled one is not reused).
    let loose = json!({"schema": {"type": "object"}});
    let (status, _) = server.call(Method::PUT, &path, Some(loose)).await;
    assert_eq!(status, 200);
    let (status, body) = ingest(&server, &site, "order.paid", json!({"amount": "5"})).await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = server.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, body) = ingest(&server, &site, "order.paid", json!([1])).await;
    assert_eq!(status, 202, "{body}");
    server.stop().await;
}

store_test!(strict_mode_refuses_unknown_types_at_ingest_and_at_subscription);
async fn strict_mode_refuses_unknown_types_at_ingest_and_at_subscription(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let key = site_key(&server, &site).await;
    let webhooks = format!("/v1/sites/{site}/webhooks");
    // Created before strict mode: kept as it is.
    let (_, before) = server
        .call(
            Method::POST,
            &webhooks,
            Some(json!({"url": "https://example.com/a", "event_types": ["user.created"]})),
        )
        .await;
    for name in ["order.paid", "order.refunded"] {
        let (status, _) = server
            .call(
                Method::PUT,
                &format!("/v1/sites/{site}/event-types/{name}"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, body) = server
        .call_as(
            Some(&key),
            Method::PATCH,
            &format!("/v1/sites/{site}"),
            Some(json!({"strict_event_types": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["strict_event_types"], true);
    assert_eq!(body["name"], "test site", "a PATCH without a name keeps it");

    let got = ingest(&server, &site, "user.created", json!({})).await;
    let message = assert_error(&got, 422, "unknown_event_type");
    assert!(message.contains("user.created"), "{message}");
    let (status, _) = ingest(&server, &site, "order.paid", json!({})).await;
    assert_eq!(status, 202);

    let subscribe = |filters: Value| {
        let server = &server;
        let webhooks = &webhooks;
        async move {
            server
                .call(
                    Method::POST,
                    webhooks,
                    Some(json!({"url": "https://example.com/b", "event_types": filters})),
                )
                .await
        }
    };
    for (filters, named) in [
        (json!(["order.shipped"]), "order.shipped"),
        (json!(["order.paid", "user.*"]), "user.*"),
    ] {
        let got = subscribe(filters).await;
        let message = assert_error(&got, 422, "unknown_event_type");
        assert!(message.contains(named), "{message}");
    }
    for filters in [
        json!(["order.*"]),
        json!(["*"]),
        json!(["order.refunded", "webhook.disabled"]),
    ] {
        let (status, body) = subscribe(filters.clone()).await;
        assert_eq!(status, 201, "{filters}: {body}");
    }
    let before = format!("{webhooks}/{}", before["id"].as_str().expect("id"));
    let got = server
        .call(
            Method::PATCH,
            &before,
            Some(json!({"event_types": ["user.*"]})),
        )
        .await;
    assert_error(&got, 422, "unknown_event_type");
    let (status, _) = server
        .call(Method::PATCH, &before, Some(json!({"description": "kept"})))
        .await;
    assert_eq!(
        status, 200,
        "a change that leaves the filters alone is not checked"
    );

    // Off again: anything goes.
    let (status, _) = server
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}"),
            Some(json!({"strict_event_types": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = ingest(&server, &site, "user.created", json!({})).await;
    assert_eq!(status, 202);
    server.stop().await;
}

store_test!(hostile_schemas_are_bounded_and_do_not_reach_other_sites);
async fn hostile_schemas_are_bounded_and_do_not_reach_other_sites(backend: Backend) {
    let server = backend.start().await;
    let mut receiver = TestReceiver::start().await;
    let hostile = server.create_site().await;
    let calm = server.create_site().await;
    let put = |name: &str, schema: Value| {
        let server = &server;
        let path = format!("/v1/sites/{hostile}/event-types/{name}");
        async move {
            server
                .call(Method::PUT, &path, Some(json!({"schema": schema})))
                .await
        }
    };
    let huge = json!({"description": "x".repeat(17 * 1024)});
    let got = put("huge", huge).await;
    assert_error(&got, 422, "invalid_schema");
    let mut deep = json!({"type": "string"});
    for _ in 0..40 {
        deep = json!({"items": deep});
    }
    let got = put("deep", deep).await;
    assert_error(&got, 422, "invalid_schema");
    let mut graph = serde_json::Map::new();
    for i in 0..30 {
        let next = format!("#/$defs/d{}", i + 1);
        graph.insert(
            format!("d{i}"),
            json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
        );
    }
    let got = put("graph", json!({"$defs": graph, "$ref": "#/$defs/d0"})).await;
    let message = assert_error(&got, 422, "invalid_schema");
    assert!(message.contains("$ref"), "{message}");
    let got = put(
        "remote",
        json!({"$schema": "https://example.com/evil-meta"}),
    )
    .await;
    assert_error(&got, 422, "invalid_schema");

    // A catastrophic pattern for a backtracking engine runs in linear time here.
    let (status, body) = put("redos", json!({"type": "string", "pattern": "^(a+)+$"})).await;
    assert_eq!(status, 201, "{body}");
    let attack = format!("{}!", "a".repeat(200_000));
    for _ in 0..3 {
        let got = ingest(&server, &hostile, "redos", json!(attack)).await;
        assert_error(&got, 422, "schema_mismatch");
    }

    // The other site's events go through.
    let (_, secret) = server.create_webhook(&calm, &receiver.url(), &["*"]).await;
    receiver.expect_secret(secret);
    let (status, _) = ingest(&server, &calm, "redos", json!(attack)).await;
    assert_eq!(status, 202, "another site's catalog does not apply");
    let got = receiver.next(WAIT).await;
    assert!(got.fullup_ok);
    server.stop().await;
}

store_test!(the_console_lists_a_sites_event_types);
async fn the_console_lists_a_sites_event_types(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let mut browser = crate::console::Browser::new(&server);
    browser.sign_in().await;
    let path = format!("/console/sites/{site}/event-types");
    let empty = browser.get(&path).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert!(
        empty.body.contains("No event type catalogued yet"),
        "{}",
        empty.body
    );

    let entry = json!({"description": "Paid <script>alert(1)</script>", "schema": order_schema(),
                       "example": {"amount": 7}});
    server
        .call(
            Method::PUT,
            &format!("/v1/sites/{site}/event-types/order.paid"),
            Some(entry),
        )
        .await;
    server
        .call(
            Method::PUT,
            &format!("/v1/sites/{site}/event-types/note.added"),
            Some(json!({})),
        )
        .await;
    server
        .call(
            Method::PATCH,
            &format!("/v1/sites/{site}"),
            Some(json!({"strict_event_types": true})),
        )
        .await;
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    crate::console::assert_security_headers(&page);
    let (note, order) = (
        page.body.find("note.added").expect("note.added listed"),
        page.body.find("order.paid").expect("order.paid listed"),
    );
    assert!(note < order, "listed by name");
    assert!(
        page.body.contains("&lt;script&gt;"),
        "descriptions are escaped"
    );
    assert!(
        !page.body.contains("<script>alert"),
        "descriptions are escaped"
    );
    assert!(
        page.body.contains("&quot;amount&quot;"),
        "the schema is shown"
    );
    assert!(page.body.contains("strict"), "strict mode is shown");
    let site_page = browser.get(&format!("/console/sites/{site}")).await;
    assert!(
        site_page.body.contains(&path),
        "the site's page links to its catalog"
    );
    server.stop().await;
}

// Regression: `PUT …/event-types/{name}` answered 200 to the body `[]` (found by the
// hostile API suite): serde reads a struct from a sequence, and every field of this body
// is optional. Every body of the API must be an object.
store_test!(a_body_that_is_not_an_object_is_refused);
async fn a_body_that_is_not_an_object_is_refused(backend: Backend) {
    let server = backend.start().await;
    let site = server.create_site().await;
    let path = format!("/v1/sites/{site}/event-types/order.paid");
    for body in [
        json!([]),
        json!(["An order was paid."]),
        json!(null),
        json!(7),
    ] {
        let got = server.call(Method::PUT, &path, Some(body)).await;
        let message = assert_error(&got, 422, "invalid_body");
        assert!(message.contains("JSON object"), "{message}");
    }
    let got = server.call(Method::GET, &path, None).await;
    assert_error(&got, 404, "not_found");
    let got = server
        .call(
            Method::PUT,
            &path,
            Some(json!({"description": "An order was paid."})),
        )
        .await;
    assert_eq!(got.0, 201, "{}", got.1);
}
