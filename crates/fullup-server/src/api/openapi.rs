//! The OpenAPI document, generated from the handlers' annotations.
//!
//! What every route shares is added here, once, rather than on each handler: the bearer
//! scheme, the error responses that follow from an operation's shape (a path parameter
//! can name nothing: 404; a body can be too large: 413; …), and the descriptions of the
//! path parameters. So the document lists every status a route can answer, each with
//! the one error body, and a new route cannot forget one.

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{catalog, deliveries, error, events, monitoring, sites, webhooks};
use crate::domain::operational;

/// The API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Fullup webhooks API", description = "Manage sites, webhooks and events; inspect deliveries and attempts. \
        Errors share one body, `{\"error\":{\"code\",\"message\"}}`; docs/api.md says which status means what."),
    paths(
        super::health, monitoring::healthz, monitoring::readyz, monitoring::metrics, serve,
        sites::create, sites::list, sites::get, sites::update, sites::delete,
        sites::create_key, sites::list_keys, sites::delete_key, sites::create_portal_link,
        webhooks::create, webhooks::list, webhooks::get, webhooks::update, webhooks::delete,
        webhooks::secret, webhooks::rotate_secret, webhooks::recover, webhooks::test,
        events::create, events::list, events::get,
        catalog::put, catalog::list, catalog::get, catalog::delete,
        deliveries::list, deliveries::get, deliveries::retry, deliveries::attempts,
    ),
    components(schemas(
        error::ErrorBody, error::ErrorDetail, monitoring::Readiness,
        operational::WebhookFailing, operational::WebhookRecovered,
        operational::WebhookDisabled, operational::DeliveryExhausted,
    )),
    tags(
        (name = "sites", description = "Tenants: each has its own webhooks, events and API keys."),
        (name = "api-keys", description = "Bearer tokens limited to one site."),
        (name = "webhooks", description = "Where a site's events go, with which filter, signed with which secret."),
        (name = "events", description = "Ingest and the event log."),
        (name = "event-types", description = "The event-type catalog: each type's description, JSON Schema and example; strict mode."),
        (name = "deliveries", description = "One delivery per event and webhook, its attempts, manual retry."),
        (name = "monitoring", description = "Liveness, readiness, metrics and this document; no token needed."),
    ),
    modifiers(&BearerAuth, &SharedResponses, &NamedListItems, &Links),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// utoipa inlines the item schema of each `ListResponse<T>`; this points it at `T`'s
/// named schema instead, so that a generated client has one `SiteResponse` type, not one
/// per route.
struct NamedListItems;

impl Modify for NamedListItems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let named: Vec<String> = components.schemas.keys().cloned().collect();
        for (name, schema) in &mut components.schemas {
            let Some(item) = name.strip_prefix("ListResponse_") else {
                continue;
            };
            if !named.iter().any(|n| n == item) {
                continue;
            }
            if let RefOr::T(Schema::Object(list)) = schema
                && let Some(RefOr::T(Schema::Array(data))) = list.properties.get_mut("data")
            {
                data.items = ArrayItems::RefOrSchema(Box::new(Ref::from_schema_name(item).into()));
            }
        }
    }
}

/// Operations whose answer names a resource: (operation id, status, the path parameter
/// the id fills, JSON pointer of the id in the body).
const PRODUCERS: &[(&str, &str, &str, &str)] = &[
    ("createSite", "201", "site_id", "/id"),
    ("createApiKey", "201", "key_id", "/id"),
    ("createWebhook", "201", "webhook_id", "/id"),
    ("createEvent", "202", "event_id", "/id"),
    ("listDeliveries", "200", "delivery_id", "/data/0/id"),
];

/// OpenAPI links from each producer's answer to every operation it supplies: one whose
/// path parameters are the produced id and parameters of the producer's own path. With
/// them a client (or a fuzzer's stateful phase) can go from a created site to its
/// webhooks, events and deliveries.
struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut consumers = Vec::new();
        for (path, item) in &openapi.paths.paths {
            for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                .into_iter()
                .flatten()
            {
                if let Some(id) = &op.operation_id {
                    consumers.push((id.clone(), path_parameters(path)));
                }
            }
        }
        for (path, item) in &mut openapi.paths.paths {
            let own = path_parameters(path);
            for op in [&mut item.get, &mut item.post, &mut item.patch]
                .into_iter()
                .flatten()
            {
                let Some((_, status, produced, pointer)) = PRODUCERS
                    .iter()
                    .find(|p| op.operation_id.as_deref() == Some(p.0))
                else {
                    continue;
                };
                let Some(RefOr::T(response)) = op.responses.responses.get_mut(*status) else {
                    continue;
                };
                for (target, params) in &consumers {
                    let supplied = params.iter().any(|p| p == produced)
                        && params.iter().all(|p| p == produced || own.contains(p));
                    if !supplied {
                        continue;
                    }
                    let link = params.iter().fold(LinkBuilder::new(), |link, p| {
                        let value = if p == produced {
                            format!("$response.body#{pointer}")
                        } else {
                            format!("$request.path.{p}")
                        };
                        link.parameter(p.clone(), value)
                    });
                    response.links.insert(
                        target.clone(),
                        link.operation_id(target.clone()).build().into(),
                    );
                }
            }
        }
    }
}

/// The `{name}` parameters of a path template, in order.
fn path_parameters(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

/// Operations whose request body may be absent (every field optional; no body is `{}`).
const OPTIONAL_BODIES: &[&str] = &["rotateWebhookSecret"];

/// Adds to each `/v1` operation the error responses its shape implies, describes the
/// responses the annotations left bare, and documents path parameters.
struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            let authenticated = path.starts_with("/v1/");
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                add_path_parameters(path, op);
                if authenticated {
                    add_error_responses(op);
                }
                describe(op);
            }
        }
    }
}

/// Declares each `{name}` of `path` as a required path parameter of `op`, first and in
/// order (the handlers take them through `ApiPath`, which utoipa does not read).
fn add_path_parameters(path: &str, op: &mut Operation) {
    let params = op.parameters.get_or_insert_with(Vec::new);
    for (at, name) in path_parameters(path).into_iter().enumerate() {
        if params.iter().any(|p| p.name == name) {
            continue;
        }
        let param = ParameterBuilder::new()
            .name(&name)
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(path_parameter_description(&name))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build();
        params.insert(at.min(params.len()), param);
    }
}

/// The error statuses `op` can answer, from its shape.
fn add_error_responses(op: &mut Operation) {
    let params = op.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
    let (path, query, header) = (
        has(ParameterIn::Path),
        has(ParameterIn::Query),
        has(ParameterIn::Header),
    );
    let body = op.request_body.is_some();
    // Any caller may be refused: 401 (no valid token), 403 (a site key on an admin
    // route, or without the scope the route needs), 429 (its address failed too often).
    let mut statuses = vec!["401", "403", "429", "500", "503"];
    if query || header || body {
        statuses.push("400");
    }
    if path {
        statuses.push("404");
    }
    if body {
        statuses.extend(["413", "415", "422"]);
    }
    for status in statuses {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(status));
    }
    let optional_body = op
        .operation_id
        .as_deref()
        .is_some_and(|id| OPTIONAL_BODIES.contains(&id));
    if let Some(RequestBody { required, .. }) = &mut op.request_body {
        *required = Some(if optional_body {
            Required::False
        } else {
            Required::True
        });
    }
}

/// Fills the descriptions the annotations left empty: responses and path parameters.
fn describe(op: &mut Operation) {
    for (status, response) in &mut op.responses.responses {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            response.description = status_description(status).to_owned();
        }
    }
    for param in op.parameters.iter_mut().flatten() {
        if param.parameter_in == ParameterIn::Path && param.description.is_none() {
            param.description = path_parameter_description(&param.name).map(str::to_owned);
        }
    }
}

/// A response with the error body.
fn error_response(status: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(status_description(status))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

/// What a status means in this API (`docs/api.md`, "Errors").
fn status_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        "204" => "Done; no body",
        "400" => {
            "The request cannot be parsed: a body that is not JSON, a query parameter or header \
             outside its format (`invalid_request`), a cursor no page returned (`invalid_cursor`)"
        }
        "401" => {
            "No `Authorization: Bearer <token>` header, or a token that is not valid (`unauthorized`)"
        }
        "403" => {
            "The route needs the admin token, which a site API key is not (`forbidden`), or a \
             scope the key lacks: `manage` for anything but ingest and reading events and \
             deliveries (`insufficient_scope`)"
        }
        "404" => {
            "The site, or the resource in it, does not exist or is not the caller's (`not_found`)"
        }
        "409" => "The request conflicts with the resource's state; the code says which",
        "413" => {
            "The body is larger than the route accepts; the message states the limit in bytes (`payload_too_large`)"
        }
        "415" => "The body is not `application/json`, or is compressed (`unsupported_media_type`)",
        "422" => {
            "The body is JSON, but a field is missing, mistyped or not acceptable; the code names \
             the rule (`invalid_body`, `invalid_url`, …)"
        }
        "429" => {
            "This client address failed authentication too often (`too_many_failures`), or this \
             credential sent events faster than its ingest rate limit (`rate_limited`); retry \
             after `Retry-After` seconds"
        }
        "500" => {
            "A fault of the service or its database; the server log has the cause (`internal`)"
        }
        "503" => "The request did not complete within the API timeout (`timeout`); retry it",
        _ => "",
    }
}

/// What a path parameter holds.
fn path_parameter_description(name: &str) -> Option<&'static str> {
    Some(match name {
        "site_id" => "`site_` + ULID",
        "key_id" => "`key_` + ULID",
        "webhook_id" => "`wh_` + ULID",
        "event_id" => "`evt_` + ULID",
        "delivery_id" => "`dlv_` + ULID",
        "name" => "an event type, such as `form.submitted`",
        _ => return None,
    })
}

/// The document as pretty JSON (what `GET /openapi.json` serves and `docs/openapi.json` holds).
pub fn document() -> String {
    static DOCUMENT: LazyLock<String> =
        LazyLock::new(|| serde_json::to_string_pretty(&document_value()).unwrap_or_default());
    DOCUMENT.clone()
}

/// The document as a JSON value. utoipa 5.5 writes a link's `operationId` as
/// `operation_id` (its `Link` lacks serde's camelCase rename), which OpenAPI tools do
/// not read; this renames it.
fn document_value() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let links = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses")?.as_object_mut())
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links")?.as_object_mut())
        .flat_map(|links| links.values_mut())
        .filter_map(Value::as_object_mut);
    for link in links {
        if let Some(id) = link.remove("operation_id") {
            link.insert("operationId".to_owned(), id);
        }
    }
    doc
}

/// This document.
#[utoipa::path(get, operation_id = "getOpenApiDocument", path = "/openapi.json", tag = "monitoring",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", body = Object)))]
pub async fn serve() -> Response {
    ([(CONTENT_TYPE, "application/json")], document()).into_response()
}
