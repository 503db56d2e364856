//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{deliveries, error, events, monitoring, sites, webhooks};
use crate::domain::operational;

/// The API's OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Fullup webhooks API", description = "Manage sites, webhooks and events; inspect deliveries and attempts."),
    paths(
        super::health, monitoring::healthz, monitoring::readyz, monitoring::metrics, serve,
        sites::create, sites::list, sites::get, sites::update, sites::delete,
        sites::create_key, sites::list_keys, sites::delete_key, sites::create_portal_link,
        webhooks::create, webhooks::list, webhooks::get, webhooks::update, webhooks::delete,
        webhooks::secret, webhooks::rotate_secret, webhooks::recover, webhooks::test,
        events::create, events::list, events::get,
        deliveries::list, deliveries::get, deliveries::retry, deliveries::attempts,
    ),
    components(schemas(
        error::ErrorBody, error::ErrorDetail, monitoring::Readiness,
        operational::WebhookFailing, operational::WebhookRecovered,
        operational::WebhookDisabled, operational::DeliveryExhausted,
    )),
    modifiers(&BearerAuth),
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

/// The document as pretty JSON (what `GET /openapi.json` serves and `docs/openapi.json` holds).
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 description of this API", body = Object)))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
