//! The event-type catalog: what a site says it sends (description, JSON Schema,
//! example), the check of each ingested event against its type's schema, and strict
//! mode (see [`crate::domain::catalog`]).
//!
//! Compiled schemas are cached per node by site and type, keyed by the schema's text:
//! an ingest reads its type's row (one primary-key lookup) and reuses the compiled
//! validator while the stored schema is the one it was compiled from, so a change on
//! any node takes effect on every node at its next ingest of that type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{Service, ServiceError, ServiceResult};
use crate::domain::canonical_json::CanonicalJson;
use crate::domain::catalog::{
    EventSchema, EventTypeEntry, MAX_EVENT_TYPES_PER_SITE, SchemaError, check_example,
    first_mismatch, strict_filters,
};
use crate::domain::event_type::{EventFilter, EventType};
use crate::domain::ids::SiteId;
use crate::domain::models::Site;
use crate::domain::operational;
use crate::metrics::StoreOp;

/// Compiled schemas a node keeps at most; past it the cache starts over (recompiling
/// costs a bounded time: schemas are bounded).
pub const MAX_CACHED_SCHEMAS: usize = 1024;

/// A catalog entry's new content, parsed.
#[derive(Debug, Default)]
pub struct EventTypeInput {
    /// Free text (see [`super::webhooks::parse_description`]).
    pub description: String,
    /// The schema of `data`, if any.
    pub schema: Option<EventSchema>,
    /// An example of `data`, checked against the schema by the use case.
    pub example: Option<Value>,
}

/// A schema document, bounded and compiled once (422 `invalid_schema` otherwise).
pub fn parse_schema(raw: Option<Value>) -> ServiceResult<Option<EventSchema>> {
    raw.map(|schema| {
        EventSchema::parse(&schema)
            .map_err(|e| ServiceError::invalid("invalid_schema", e.to_string()))
    })
    .transpose()
}

/// A compiled validator with the schema text it was compiled from.
type Compiled = (String, Arc<jsonschema::Validator>);

/// Compiled validators by site and type.
#[derive(Default)]
pub(crate) struct SchemaCache {
    entries: Mutex<HashMap<(SiteId, String), Compiled>>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("SchemaCache")
            .field("entries", &len)
            .finish()
    }
}

impl SchemaCache {
    /// The validator of `schema`, the type `name` of `site`: cached, or compiled now.
    fn validator(
        &self,
        site: SiteId,
        name: &str,
        schema: &EventSchema,
    ) -> Result<Arc<jsonschema::Validator>, SchemaError> {
        let key = (site, name.to_owned());
        if let Ok(entries) = self.entries.lock()
            && let Some((text, validator)) = entries.get(&key)
            && text == schema.as_str()
        {
            return Ok(Arc::clone(validator));
        }
        let validator = schema.compile()?;
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_CACHED_SCHEMAS {
                entries.clear();
            }
            entries.insert(key, (schema.as_str().to_owned(), Arc::clone(&validator)));
        }
        Ok(validator)
    }

    /// Drops the validator of a changed or deleted type.
    fn forget(&self, site: SiteId, name: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&(site, name.to_owned()));
        }
    }
}

impl Service {
    /// Catalogues `name` for `site`, or replaces its entry; true when it is new. The
    /// example must match the schema; a site holds at most
    /// [`MAX_EVENT_TYPES_PER_SITE`] types.
    pub async fn put_event_type(
        &self,
        site: &Site,
        name: EventType,
        input: EventTypeInput,
    ) -> ServiceResult<(EventTypeEntry, bool)> {
        refuse_operational(&name)?;
        let example = input
            .example
            .map(|example| check_example(input.schema.as_ref(), &example))
            .transpose()
            .map_err(|e| ServiceError::invalid("invalid_example", e.to_string()))?;
        let existing = self.counted(
            StoreOp::Read,
            self.store.get_event_type(site.id, name.as_str()).await,
        )?;
        if existing.is_none() {
            let count = self
                .counted(StoreOp::Read, self.store.event_type_names(site.id).await)?
                .len();
            if count >= MAX_EVENT_TYPES_PER_SITE {
                return Err(ServiceError::conflict(
                    "limit_reached",
                    format!(
                        "a site's catalog holds at most {MAX_EVENT_TYPES_PER_SITE} event types; delete one first"
                    ),
                ));
            }
        }
        let now = self.clock.now();
        let entry = EventTypeEntry {
            site_id: site.id,
            name,
            description: input.description,
            schema: input.schema,
            example,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        self.counted(StoreOp::Write, self.store.put_event_type(&entry).await)?;
        self.schemas.forget(site.id, entry.name.as_str());
        Ok((entry, existing.is_none()))
    }

    /// The catalogued type `name` of `site`.
    pub async fn event_type(&self, site: &Site, name: &str) -> ServiceResult<EventTypeEntry> {
        self.counted(
            StoreOp::Read,
            self.store.get_event_type(site.id, name).await,
        )?
        .ok_or_else(|| ServiceError::NotFound(format!("event type {name}")))
    }

    /// The catalog of `site`, by name.
    pub async fn event_types(&self, site: &Site) -> ServiceResult<Vec<EventTypeEntry>> {
        Ok(self.counted(StoreOp::Read, self.store.list_event_types(site.id).await)?)
    }

    /// Removes `name` from the catalog of `site`. Webhooks subscribed to it keep their
    /// filters; in strict mode, events of the type are refused from now on.
    pub async fn delete_event_type(&self, site: &Site, name: &str) -> ServiceResult<()> {
        let deleted = self.counted(
            StoreOp::Write,
            self.store.delete_event_type(site.id, name).await,
        )?;
        self.schemas.forget(site.id, name);
        if deleted {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!("event type {name}")))
        }
    }

    /// Turns strict mode of `site` on or off. Existing webhooks keep their filters.
    pub async fn set_strict_event_types(
        &self,
        mut site: Site,
        strict: bool,
    ) -> ServiceResult<Site> {
        site.strict_event_types = strict;
        site.updated_at = self.clock.now();
        self.counted(
            StoreOp::Write,
            self.store
                .set_strict_event_types(site.id, strict, site.updated_at)
                .await,
        )?;
        Ok(site)
    }

    /// Checks an event of `site` against its catalog: its type's schema, if it has one
    /// (422 `schema_mismatch` naming the JSON Pointer of the first error), and in strict
    /// mode that the type is catalogued (422 `unknown_event_type`).
    pub(super) async fn check_against_catalog(
        &self,
        site: &Site,
        event_type: &EventType,
        data: &CanonicalJson,
    ) -> ServiceResult<()> {
        let entry = self.counted(
            StoreOp::Read,
            self.store
                .get_event_type(site.id, event_type.as_str())
                .await,
        )?;
        let Some(entry) = entry else {
            if site.strict_event_types {
                return Err(ServiceError::invalid(
                    "unknown_event_type",
                    crate::domain::catalog::StrictError::Unknown(event_type.to_string())
                        .to_string(),
                ));
            }
            return Ok(());
        };
        let Some(schema) = &entry.schema else {
            return Ok(());
        };
        let validator = self
            .schemas
            .validator(site.id, event_type.as_str(), schema)
            .map_err(|e| ServiceError::invalid("invalid_schema", e.to_string()))?;
        let data: Value = serde_json::from_slice(data.as_bytes())
            .map_err(|e| ServiceError::invalid("invalid_data", e.to_string()))?;
        match first_mismatch(&validator, &data) {
            None => Ok(()),
            Some(mismatch) => Err(ServiceError::invalid(
                "schema_mismatch",
                format!(
                    "data does not match the schema of event type `{event_type}` {mismatch} (JSON Pointer into data)"
                ),
            )),
        }
    }

    /// In strict mode, refuses webhook filters that name no catalogued type (422
    /// `unknown_event_type`).
    pub(super) async fn check_subscription(
        &self,
        site: &Site,
        filters: &[EventFilter],
    ) -> ServiceResult<()> {
        if !site.strict_event_types {
            return Ok(());
        }
        let names = self.counted(StoreOp::Read, self.store.event_type_names(site.id).await)?;
        strict_filters(filters, names.iter().map(String::as_str))
            .map_err(|e| ServiceError::invalid("unknown_event_type", e.to_string()))
    }
}

/// The service's own event types are never catalogued: only the service sends them.
fn refuse_operational(name: &EventType) -> ServiceResult<()> {
    if operational::is_operational(name.as_str()) {
        return Err(ServiceError::invalid(
            "reserved_event_type",
            format!(
                "`{name}` is one of the service's own event types ({}); they are documented in docs/protocol.md",
                operational::TYPES.join(", ")
            ),
        ));
    }
    Ok(())
}
